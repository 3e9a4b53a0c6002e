//! Drawing: a pure function of [`App`]. The layout, the top bar, the
//! status line and the overlays are here; each pane has its own file.

mod history;
mod pending;
mod workflows;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{App, EngineState, Overlay, Pane, deposit_words};
use super::keymap::{self, Context};
use super::theme::Theme;
use crate::text::one_line;

/// The smallest screen the layout fits.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub fn draw(f: &mut Frame, app: &App, theme: Theme) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "make the window larger (needs {MIN_WIDTH}×{MIN_HEIGHT}, it is {}×{})",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let guide_height = if app.guide.is_some() { 4 } else { 0 };
    let [top, body, guide, status] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(10),
        Constraint::Length(guide_height),
        Constraint::Length(2),
    ])
    .areas(area);
    if let Some(g) = &app.guide {
        guide_pane(f, app, g, theme, guide);
    }
    top_bar(f, app, theme, top);
    let left_width = (area.width / 2).clamp(40, 72);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_width), Constraint::Min(20)]).areas(body);
    let [list, facts, log] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(6),
    ])
    .areas(left);
    workflows::draw(f, app, theme, list);
    facts_pane(f, app, theme, facts);
    log_pane(f, app, theme, log);
    let [hist, pend] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(right);
    history::draw(f, app, theme, hist);
    pending::draw(f, app, theme, pend);
    status_line(f, app, theme, status);
    if let Some(o) = &app.overlay {
        overlay(f, app, theme, o);
    }
}

/// A pane's frame: its title, brighter when it has the focus.
pub(super) fn pane_block(title: String, focused: bool, theme: Theme) -> Block<'static> {
    let marker = if focused { "▶ " } else { "" };
    Block::bordered()
        .title(Span::styled(format!(" {marker}{title} "), theme.title()))
        .border_style(if focused {
            theme.focused_border()
        } else {
            theme.border()
        })
}

pub(super) fn focused(app: &App, pane: Pane) -> bool {
    app.overlay.is_none() && app.focus == pane
}

fn runs(n: usize) -> String {
    if n == 1 {
        "1 run".into()
    } else {
        format!("{n} runs")
    }
}

fn top_bar(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let lab = &app.lab;
    let engine = match app.engine_state {
        EngineState::Recovering => Span::styled("◌ engine recovering…", theme.warn()),
        EngineState::Up => match (lab.engine_generation, lab.last_recovery) {
            (g, Some(r)) if g > 0 => Span::styled(
                format!(
                    "● engine up · crashed {g}×, recovered {} in {} ms",
                    runs(r.runs),
                    r.elapsed.as_millis()
                ),
                theme.good(),
            ),
            (_, Some(r)) if r.runs > 0 => Span::styled(
                format!(
                    "● engine up · recovered {} in {} ms",
                    runs(r.runs),
                    (r.elapsed + r.store_open).as_millis()
                ),
                theme.good(),
            ),
            _ => Span::styled("● engine up", theme.good()),
        },
    };
    let worker = match &lab.worker {
        Some(w) => Span::styled(
            format!("● worker running · deposit: {}", deposit_words(w.deposit)),
            theme.good(),
        ),
        None => Span::styled(
            format!(
                "✗ no worker · next one runs deposit: {}",
                deposit_words(lab.deposit_on_disk)
            ),
            theme.bad(),
        ),
    };
    let first = Line::from(vec![
        Span::styled("holdfast ", theme.title()),
        Span::raw(format!("clock {}× · ", lab.speed)),
        worker,
        Span::raw(" · "),
        engine,
        Span::styled(
            format!(" · {}", one_line(&lab.data_dir.display().to_string())),
            theme.dim(),
        ),
        if app.busy > 0 {
            Span::styled(" · working…", theme.dim())
        } else {
            Span::raw("")
        },
    ]);
    let mut faults = vec![Span::styled("faults ", theme.dim())];
    for fs in &lab.faults {
        let (state, style) = if fs.on {
            ("ON", theme.bad())
        } else {
            ("off", theme.dim())
        };
        faults.push(Span::styled(format!("{}:{state} ", fs.fault.name()), style));
    }
    f.render_widget(Paragraph::new(vec![first, Line::from(faults)]), area);
}

fn facts_pane(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let lines: Vec<Line> = match &app.run {
        Some(run) if run.description.info.workflow_type == crate::apps::research::WORKFLOW_TYPE => {
            let mut l: Vec<Line> = report_facts(&run.history)
                .into_iter()
                .map(Line::raw)
                .collect();
            let waiting = run.description.info.status
                == crate::engine::WorkflowExecutionStatus::Running
                && run.description.pending_activities.is_empty()
                && run.description.pending_workflow_task.is_none();
            if waiting {
                l.push(Line::styled(
                    "waiting for you: d draft · a approve · E edit",
                    theme.warn(),
                ));
            }
            l
        }
        Some(run) if !run.facts.is_empty() => {
            run.facts.iter().map(|l| Line::raw(one_line(l))).collect()
        }
        _ => vec![Line::styled(
            "the selected run's app: balances, LLM calls paid, files",
            theme.dim(),
        )],
    };
    f.render_widget(
        Paragraph::new(lines).block(pane_block("app".into(), false, theme)),
        area,
    );
}

/// What a report has paid for and made, from its history.
fn report_facts(history: &[crate::engine::HistoryEvent]) -> Vec<String> {
    use crate::engine::{EventAttributes, EventType};
    let completed = |ty: &str| {
        let scheduled: Vec<u64> = history
            .iter()
            .filter(|e| matches!(&e.attributes, EventAttributes::ActivityTaskScheduled { activity_type, .. } if activity_type == ty))
            .map(|e| e.event_id)
            .collect();
        history
            .iter()
            .filter(|e| e.event_type() == EventType::ActivityTaskCompleted)
            .filter(|e| {
                e.attributes
                    .activity_scheduled_event_id()
                    .is_some_and(|s| scheduled.contains(&s))
            })
            .count()
    };
    let done = |ty: &str, yes: &str, no: &str| {
        if completed(ty) > 0 {
            yes.to_string()
        } else {
            no.to_string()
        }
    };
    vec![
        format!("LLM calls paid: {}", completed("llm_call")),
        format!("PDF: {}", done("create_pdf", "written ✓", "not yet")),
        format!("e-mail: {}", done("send_email", "sent ✓", "not sent yet")),
    ]
}

fn guide_pane(f: &mut Frame, app: &App, g: &super::app::Guide, theme: Theme, area: Rect) {
    let mut first = vec![Span::styled(one_line(&g.text), theme.title())];
    if let Some(action) = &g.action
        && let Some(keys) = keymap::keys_for(&app.keymap, action, app.context())
    {
        first.push(Span::raw(if g.hint {
            "  → now press "
        } else {
            "  press "
        }));
        first.push(Span::styled(
            keys,
            if g.hint { theme.warn() } else { theme.key() },
        ));
    }
    let mut second = Vec::new();
    if let Some(n) = &g.note {
        second.push(Span::styled(format!("({}) ", one_line(n)), theme.warn()));
    }
    if g.done {
        second.push(Span::styled("✓ done", theme.good()));
    } else if g.action.is_none() {
        for c in &g.checks {
            let (mark, style) = if c.holds {
                ("✓", theme.good())
            } else {
                ("…", theme.dim())
            };
            second.push(Span::styled(
                format!("{mark} {}: {}   ", c.name, one_line(&c.seen)),
                style,
            ));
        }
        if g.checks.is_empty() {
            second.push(Span::styled("… watching", theme.dim()));
        }
    }
    f.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)])
            .wrap(Wrap { trim: true })
            .block(pane_block(
                format!("guide · {} · {}", one_line(&g.title), g.progress),
                false,
                theme,
            )),
        area,
    );
}

fn log_pane(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let n = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .logs
        .tail(n)
        .into_iter()
        .map(|l| {
            let style = if l.starts_with("ERROR") || l.starts_with(" WARN") {
                theme.bad()
            } else {
                theme.dim()
            };
            Line::styled(l, style)
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(pane_block("log".into(), false, theme)),
        area,
    );
}

/// Two lines: what just happened (or the filter being typed), then the
/// keys that matter here, always there.
fn status_line(f: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let said = if app.editing_filter {
        Line::from(vec![
            Span::styled("filter: ", theme.key()),
            Span::raw(one_line(&app.text_filter)),
            Span::styled("▏ Enter keep · Esc clear", theme.dim()),
        ])
    } else if let Some((text, error)) = &app.message {
        Line::styled(
            one_line(text),
            if *error { theme.bad() } else { theme.good() },
        )
    } else {
        Line::raw("")
    };
    f.render_widget(Paragraph::new(vec![said, hint_line(app, theme)]), area);
}

fn hint_line(app: &App, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (key, what) in keymap::hints(&app.keymap, app.context()) {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

fn centered(area: Rect, width_pct: u16, height_pct: u16) -> Rect {
    let [_, mid, _] = Layout::vertical([
        Constraint::Percentage((100 - height_pct) / 2),
        Constraint::Percentage(height_pct),
        Constraint::Percentage((100 - height_pct) / 2),
    ])
    .areas(area);
    let [_, c, _] = Layout::horizontal([
        Constraint::Percentage((100 - width_pct) / 2),
        Constraint::Percentage(width_pct),
        Constraint::Percentage((100 - width_pct) / 2),
    ])
    .areas(mid);
    c
}

fn overlay(f: &mut Frame, app: &App, theme: Theme, o: &Overlay) {
    match o {
        Overlay::Help { scroll } => {
            let area = centered(f.area(), 80, 80);
            f.render_widget(Clear, area);
            let mut lines = Vec::new();
            for ctx in [
                Context::Global,
                Context::Workflows,
                Context::History,
                Context::Pending,
                Context::Overlay,
                Context::Confirm,
                Context::Form,
            ] {
                let entries: Vec<_> = app.keymap.iter().filter(|b| b.context == ctx).collect();
                if entries.is_empty() {
                    continue;
                }
                lines.push(Line::styled(ctx.title().to_string(), theme.title()));
                for b in entries {
                    let keys = b
                        .keys
                        .iter()
                        .map(|k| k.label())
                        .collect::<Vec<_>>()
                        .join("/");
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {keys:<14}"), theme.key()),
                        Span::raw(b.description),
                    ]));
                }
            }
            f.render_widget(
                Paragraph::new(lines).scroll((*scroll, 0)).block(pane_block(
                    "help · Esc closes".into(),
                    true,
                    theme,
                )),
                area,
            );
        }
        Overlay::Text {
            title,
            body,
            scroll,
        } => {
            let area = centered(f.area(), 80, 80);
            f.render_widget(Clear, area);
            let lines: Vec<Line> = crate::text::printable(body)
                .lines()
                .map(|l| Line::raw(l.to_string()))
                .collect();
            f.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .scroll((*scroll, 0))
                    .block(pane_block(
                        format!("{} · Esc closes", one_line(title)),
                        true,
                        theme,
                    )),
                area,
            );
        }
        Overlay::Form(form) => {
            let area = centered(f.area(), 70, 50);
            f.render_widget(Clear, area);
            let mut lines = Vec::new();
            for (i, field) in form.fields.iter().enumerate() {
                let focused = i == form.focus;
                let value = one_line(field.input.value());
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("{} {:<14}", if focused { "▶" } else { " " }, field.label),
                        if focused { theme.key() } else { theme.dim() },
                    ),
                    Span::styled(
                        format!("{value}{}", if focused { "▏" } else { "" }),
                        if focused {
                            theme.selected()
                        } else {
                            theme.title()
                        },
                    ),
                ]));
            }
            lines.push(Line::raw(""));
            if let Some(e) = &form.error {
                lines.push(Line::styled(one_line(e), theme.bad()));
            }
            lines.push(hint_line(app, theme));
            f.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(pane_block(form.title().into(), true, theme)),
                area,
            );
        }
        Overlay::Confirm { question, .. } => {
            let area = centered(f.area(), 60, 30);
            f.render_widget(Clear, area);
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(one_line(question)),
                    Line::raw(""),
                    Line::from(vec![
                        Span::styled("y", theme.key()),
                        Span::raw(" yes   "),
                        Span::styled("n", theme.key()),
                        Span::raw(" no"),
                    ]),
                ])
                .wrap(Wrap { trim: true })
                .block(pane_block("are you sure?".into(), true, theme)),
                area,
            );
        }
    }
}

/// "0.4s", "2s", "2m05s", "1h02m": a short duration.
pub(super) fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 10_000 {
        let tenths = (ms + 50) / 100;
        if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// "3s ago".
pub(super) fn ago(now_ms: u64, t_ms: u64) -> String {
    format!(
        "{} ago",
        short_duration(now_ms.saturating_sub(t_ms) / 1000 * 1000)
    )
}

/// An event's attributes as pretty JSON, payloads shown as the JSON they hold.
pub fn pretty_attributes(a: &crate::engine::EventAttributes) -> String {
    serde_json::to_string_pretty(&a.to_json()).unwrap_or_default()
}
