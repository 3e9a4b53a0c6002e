//! The workflows pane: newest first, a status symbol and word, a mark on
//! runs with an activity retrying, start (relative) and duration.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::{ago, focused, pane_block, short_duration};
use crate::engine::WorkflowExecutionStatus;
use crate::text::one_line;
use crate::tui::app::{App, Pane, StatusFilter};
use crate::tui::theme::{Theme, status_symbol};

pub fn draw(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let mut title = if app.more {
        format!(
            "workflows (newest {}; ↓ at the end reads more)",
            app.runs.len()
        )
    } else {
        format!("workflows ({})", app.runs.len())
    };
    if app.status_filter != StatusFilter::All {
        title.push_str(&format!(" · {}", app.status_filter.label()));
    }
    if !app.text_filter.is_empty() {
        title.push_str(&format!(" · /{}", one_line(&app.text_filter)));
    }
    let block = pane_block(title, focused(app, Pane::Workflows), theme);
    if app.runs.is_empty() {
        let hint = if app.status_filter == StatusFilter::All && app.text_filter.is_empty() {
            "no workflows yet: press t to start a money transfer"
        } else {
            "no workflow matches the filter (Esc clears it)"
        };
        f.render_widget(
            ratatui::widgets::Paragraph::new(Line::styled(hint, theme.dim())).block(block),
            area,
        );
        return;
    }
    // Narrow: id, status and age only.
    let wide = area.width >= 60;
    let height = area.height.saturating_sub(3) as usize;
    let first = app.selected.saturating_sub(height.saturating_sub(1));
    let rows = app.runs.iter().skip(first).take(height).map(|r| {
        let (sym, word) = status_symbol(r.status);
        let retrying = app.retrying.contains(&r.run_id);
        let end = r.close_time_ms.unwrap_or(app.now_ms);
        let status = if retrying && r.status == WorkflowExecutionStatus::Running {
            Span::styled(format!("{sym} {word} ↻"), theme.warn())
        } else {
            Span::styled(format!("{sym} {word}"), theme.status(r.status))
        };
        let mut cells = vec![Cell::from(one_line(&r.workflow_id))];
        if wide {
            cells.push(Cell::from(one_line(&r.workflow_type)));
        }
        cells.push(Cell::from(status));
        cells.push(Cell::from(
            ago(app.now_ms, r.start_time_ms).replace(" ago", ""),
        ));
        if wide {
            cells.push(Cell::from(short_duration(
                end.saturating_sub(r.start_time_ms),
            )));
        }
        Row::new(cells)
    });
    let (widths, header) = if wide {
        (
            vec![
                Constraint::Min(14),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Length(6),
                Constraint::Length(6),
            ],
            vec!["id", "type", "status", "age", "took"],
        )
    } else {
        (
            vec![
                Constraint::Min(12),
                Constraint::Length(12),
                Constraint::Length(6),
            ],
            vec!["id", "status", "age"],
        )
    };
    let table = Table::new(rows, widths)
        .column_spacing(1)
        .header(Row::new(header).style(theme.dim()))
        .row_highlight_style(theme.selected())
        .block(block);
    let mut state = TableState::default().with_selected(Some(app.selected - first));
    f.render_stateful_widget(table, area, &mut state);
}
