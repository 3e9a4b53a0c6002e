//! The history pane: id, time since the run started, event type and the
//! one line that matters. Events before the last workflow task a restarted
//! worker took are history it *replayed*: a completed activity there is
//! marked as not run again.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};

use super::{focused, pane_block, short_duration};
use crate::engine::{EventAttributes, EventType, HistoryEvent};
use crate::text::one_line;
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

pub fn draw(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let Some(run) = &app.run else {
        let block = pane_block("history".into(), focused(app, Pane::History), theme);
        f.render_widget(
            Paragraph::new(Line::styled(
                "select a workflow to see its history",
                theme.dim(),
            ))
            .block(block),
            area,
        );
        return;
    };
    let events = app.visible_history();
    let title = format!(
        "history · {} · {} events{}",
        one_line(&run.description.info.workflow_id),
        run.history.len(),
        if app.compact { " · compact" } else { "" }
    );
    let block = pane_block(title, focused(app, Pane::History), theme);
    let start = run.history.first().map_or(0, |e| e.event_time_ms);
    let replayed_up_to = replayed_up_to(&run.history);
    // Only the lines that fit are built: a 10,000-event history costs no
    // more per frame than a short one.
    let height = area.height.saturating_sub(2) as usize;
    let first = app.history_cursor.saturating_sub(height.saturating_sub(1));
    let items: Vec<ListItem> = events
        .iter()
        .skip(first)
        .take(height)
        .map(|e| {
            let mut spans = vec![
                Span::styled(format!("{:>4} ", e.event_id), theme.dim()),
                Span::styled(
                    format!(
                        "+{:<7}",
                        short_duration(e.event_time_ms.saturating_sub(start))
                    ),
                    theme.dim(),
                ),
                Span::styled(format!("{:<34}", e.event_type().name()), style_of(e, theme)),
                Span::raw(one_line(&line_of(e))),
            ];
            if e.event_id <= replayed_up_to && e.event_type() == EventType::ActivityTaskCompleted {
                spans.push(Span::styled("  ⟲ replayed, not run again", theme.dim()));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let list = List::new(items)
        .highlight_style(theme.selected())
        .block(block);
    let mut state = ListState::default().with_selected(Some(app.history_cursor - first));
    f.render_stateful_widget(list, area, &mut state);
}

fn style_of(e: &HistoryEvent, theme: Theme) -> ratatui::style::Style {
    match e.event_type() {
        EventType::ActivityTaskFailed
        | EventType::ActivityTaskTimedOut
        | EventType::WorkflowTaskFailed
        | EventType::WorkflowTaskTimedOut
        | EventType::WorkflowExecutionFailed
        | EventType::WorkflowExecutionTimedOut => theme.bad(),
        EventType::ActivityTaskCompleted | EventType::WorkflowExecutionCompleted => theme.good(),
        EventType::WorkflowExecutionTerminated
        | EventType::WorkflowExecutionCanceled
        | EventType::WorkflowExecutionCancelRequested
        | EventType::ActivityTaskCancelRequested
        | EventType::ActivityTaskCanceled => theme.warn(),
        _ => ratatui::style::Style::default(),
    }
}

/// The events a worker replayed when it took over: those before the first
/// workflow task started by another identity than the one before it.
fn replayed_up_to(history: &[HistoryEvent]) -> u64 {
    let mut last_identity: Option<&str> = None;
    let mut replayed = 0;
    for e in history {
        if let EventAttributes::WorkflowTaskStarted { identity, .. } = &e.attributes {
            if last_identity.is_some_and(|l| l != identity) {
                replayed = e.event_id;
            }
            last_identity = Some(identity);
        }
    }
    replayed
}

/// The line that matters for an event.
fn line_of(e: &HistoryEvent) -> String {
    match &e.attributes {
        EventAttributes::ActivityTaskScheduled {
            activity_type,
            input,
            ..
        } => format!("{activity_type} {input}"),
        EventAttributes::ActivityTaskStarted {
            attempt,
            last_failure,
            identity,
            ..
        } => match last_failure {
            Some(f) => format!(
                "attempt {attempt} on {identity} · last failure: {}",
                f.message
            ),
            None => format!("attempt {attempt} on {identity}"),
        },
        EventAttributes::ActivityTaskCompleted { result, .. } => format!("→ {result}"),
        EventAttributes::ActivityTaskFailed {
            failure,
            retry_state,
            ..
        }
        | EventAttributes::ActivityTaskTimedOut {
            failure,
            retry_state,
            ..
        } => format!("{} ({})", failure.message, retry_state.temporal_name()),
        EventAttributes::WorkflowExecutionFailed { failure, .. } => failure.chain().to_string(),
        other => other.summary(),
    }
}
