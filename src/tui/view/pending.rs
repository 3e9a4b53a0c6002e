//! Pending activities, as the Temporal UI's pending-activity card: type,
//! id, state, "attempt N of M" (∞ when unlimited), last failure, last
//! worker, a countdown to the next attempt that moves, with a gauge; under
//! it the selected activity's attempts on a timeline, each a mark at its
//! instant (✗ failed, ✓ completed, ⌛ timed out, ● running), the gaps
//! growing with the backoff and the wait written under each gap.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};

use super::{focused, pane_block, short_duration};
use crate::engine::{
    AttemptOutcome, AttemptRecord, PendingActivityInfo, PendingActivityState,
    WorkflowExecutionStatus,
};
use crate::text::one_line;
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

pub fn draw(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let pending = app
        .run
        .as_ref()
        .map(|r| r.description.pending_activities.as_slice())
        .unwrap_or_default();
    let block = pane_block(
        format!("pending activities ({})", pending.len()),
        focused(app, Pane::Pending),
        theme,
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(a) = pending.get(app.pending_cursor) else {
        let text = match &app.run {
            Some(_) => "nothing pending",
            None => "select a workflow",
        };
        f.render_widget(Paragraph::new(Line::styled(text, theme.dim())), inner);
        return;
    };
    let [card, gauge, timeline] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(1),
        Constraint::Min(2),
    ])
    .areas(inner);
    f.render_widget(
        Paragraph::new(card_lines(a, pending.len(), app, theme)),
        card,
    );
    let status = app
        .run
        .as_ref()
        .map(|r| r.description.info.status)
        .unwrap_or(WorkflowExecutionStatus::Running);
    if status != WorkflowExecutionStatus::Running {
        // Temporal keeps listing it; nothing will run it again.
        f.render_widget(
            Paragraph::new(Line::styled(
                format!("the run is {}: no further attempt", status.name()),
                theme.dim(),
            )),
            gauge,
        );
    } else {
        countdown(f, a, app.now_ms, app.lab.worker.is_some(), theme, gauge);
    }
    f.render_widget(
        Paragraph::new(timeline_lines(
            &a.attempts,
            timeline.width as usize,
            app.now_ms,
            theme,
        )),
        timeline,
    );
}

fn attempts_text(a: &PendingActivityInfo) -> String {
    match a.maximum_attempts {
        0 => format!("attempt {} of ∞", a.attempt),
        m => format!(
            "attempt {} of {m} · {} remaining",
            a.attempt,
            m.saturating_sub(a.attempt)
        ),
    }
}

fn card_lines(
    a: &PendingActivityInfo,
    count: usize,
    app: &App,
    theme: Theme,
) -> Vec<Line<'static>> {
    let (state, style) = match a.state {
        PendingActivityState::Scheduled if a.attempt > 1 => ("↻ waiting to retry", theme.warn()),
        PendingActivityState::Scheduled => ("○ scheduled", theme.dim()),
        PendingActivityState::Started => ("● running", theme.good()),
        PendingActivityState::CancelRequested => ("⊘ cancel requested", theme.warn()),
    };
    let which = if count > 1 {
        format!("  ({} of {count}, ↑↓)", app.pending_cursor + 1)
    } else {
        String::new()
    };
    vec![
        Line::from(vec![
            Span::styled(one_line(&a.activity_type), theme.title()),
            Span::styled(format!("  id {}  ", one_line(&a.activity_id)), theme.dim()),
            Span::styled(state, style),
            Span::raw(format!("  {}", attempts_text(a))),
            Span::styled(which, theme.dim()),
        ]),
        Line::from(vec![
            Span::styled("last failure: ", theme.dim()),
            Span::styled(
                a.last_failure
                    .as_ref()
                    .map_or("none".into(), |f| one_line(&f.message)),
                theme.bad(),
            ),
        ]),
        Line::from(vec![
            Span::styled("last worker: ", theme.dim()),
            Span::raw(if a.last_worker_identity.is_empty() {
                "none yet".into()
            } else {
                one_line(&a.last_worker_identity)
            }),
            Span::styled(
                format!(
                    "   retry every {} ×{} up to {}",
                    short_duration(a.retry_policy.initial_interval.as_millis() as u64),
                    a.retry_policy.backoff_coefficient,
                    short_duration(a.retry_policy.maximum_interval.as_millis() as u64)
                ),
                theme.dim(),
            ),
        ]),
        match a.last_heartbeat_time_ms {
            Some(t) => Line::styled(
                format!(
                    "last heartbeat {} ago",
                    short_duration(app.now_ms.saturating_sub(t))
                ),
                theme.dim(),
            ),
            None => Line::raw(""),
        },
    ]
}

fn countdown(
    f: &mut Frame,
    a: &PendingActivityInfo,
    now_ms: u64,
    worker: bool,
    theme: Theme,
    area: Rect,
) {
    let (Some(next), Some(interval)) = (a.next_attempt_schedule_time_ms, a.current_retry_interval)
    else {
        let text = match (a.state, worker) {
            (PendingActivityState::Started, _) => "running now",
            (_, false) => "waiting for a worker (w starts one)",
            _ => "",
        };
        f.render_widget(Paragraph::new(Line::styled(text, theme.dim())), area);
        return;
    };
    let total = interval.as_millis().max(1) as u64;
    let left = next.saturating_sub(now_ms);
    let ratio = 1.0 - (left as f64 / total as f64).clamp(0.0, 1.0);
    // Whole seconds, rounded up, so the label moves once a second.
    let secs = left.div_ceil(1000);
    let label = match (left, worker) {
        (0, false) => "due now · waiting for a worker (w starts one)".to_string(),
        (0, true) => "next attempt now".to_string(),
        _ => format!("next attempt in {secs}s of {}", short_duration(total)),
    };
    let width = (label.chars().count() as u16 + 1).min(area.width / 2);
    let [text, bar] =
        Layout::horizontal([Constraint::Length(width), Constraint::Min(1)]).areas(area);
    f.render_widget(Paragraph::new(Line::styled(label, theme.warn())), text);
    f.render_widget(
        // Filled and empty told apart by glyph, not colour alone.
        LineGauge::default()
            .ratio(ratio)
            .label("")
            .filled_symbol("█")
            .unfilled_symbol("░")
            .filled_style(theme.warn()),
        bar,
    );
}

fn glyph(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Running => "●",
        AttemptOutcome::Completed => "✓",
        AttemptOutcome::Failed => "✗",
        AttemptOutcome::TimedOut(_) => "⌛",
        AttemptOutcome::Canceled => "⊘",
    }
}

/// Two lines: the marks at their instants, scaled to `width`, and the wait
/// before each attempt under its gap.
fn timeline_lines(
    attempts: &[AttemptRecord],
    width: usize,
    now_ms: u64,
    theme: Theme,
) -> Vec<Line<'static>> {
    if attempts.is_empty() || width < 10 {
        return vec![Line::styled("no attempt yet", theme.dim())];
    }
    let at = |r: &AttemptRecord| r.started_time_ms.or(r.ended_time_ms).unwrap_or(now_ms);
    // The latest attempts that fit, at least 4 columns apart.
    let shown: Vec<&AttemptRecord> = attempts.iter().rev().take(width / 5).rev().collect();
    let first = at(shown[0]);
    let next = shown.last().and_then(|r| r.next_attempt_time_ms);
    let last = next
        .unwrap_or_else(|| at(shown[shown.len() - 1]))
        .max(now_ms);
    let span = last.saturating_sub(first).max(1);
    let usable = width.saturating_sub(6).max(1);
    let mut marks = vec![' '; width];
    let mut labels = vec![' '; width];
    let mut prev_col: Option<usize> = None;
    let mut prev_t = first;
    let mut put =
        |col: usize, g: &str, prev_col: &mut Option<usize>, gap_ms: u64, labels: &mut Vec<char>| {
            let col = match *prev_col {
                Some(p) => col.max(p + 4),
                None => col,
            }
            .min(width - 1);
            if let Some(p) = *prev_col {
                for c in marks.iter_mut().take(col).skip(p + 1) {
                    *c = '─';
                }
                let text = short_duration(gap_ms);
                let mid = (p + col) / 2;
                let start = mid.saturating_sub(text.chars().count() / 2).max(p + 1);
                for (i, ch) in text.chars().enumerate() {
                    if start + i < col && start + i < width {
                        labels[start + i] = ch;
                    }
                }
            }
            for (i, ch) in g.chars().enumerate() {
                if col + i < width {
                    marks[col + i] = ch;
                }
            }
            *prev_col = Some(col);
        };
    for r in &shown {
        let t = at(r);
        let col = ((t - first) as u128 * usable as u128 / span as u128) as usize;
        put(
            col,
            glyph(r.outcome),
            &mut prev_col,
            t - prev_t,
            &mut labels,
        );
        prev_t = t;
    }
    if let Some(n) = next {
        let col = ((n.saturating_sub(first)) as u128 * usable as u128 / span as u128) as usize;
        put(
            col,
            "○",
            &mut prev_col,
            n.saturating_sub(prev_t),
            &mut labels,
        );
    }
    vec![
        Line::styled(marks.into_iter().collect::<String>(), theme.title()),
        Line::styled(labels.into_iter().collect::<String>(), theme.dim()),
    ]
}
