//! The first screen of `holdfast`: the guided scenarios (title, one line,
//! ✓ once done — remembered in the data dir) and free play.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};

use super::theme::Theme;
use crate::scenario::Scenario;

/// What the person picked.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    FreePlay,
    Scenario(PathBuf),
    Quit,
}

/// The file in the data dir that remembers finished scenarios, a name a line.
const DONE_FILE: &str = "scenarios-done";

pub fn done_names(data_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(data_dir.join(DONE_FILE))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn mark_done(data_dir: &Path, name: &str) {
    let mut names = done_names(data_dir);
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
        let _ = std::fs::create_dir_all(data_dir);
        let _ = std::fs::write(data_dir.join(DONE_FILE), names.join("\n") + "\n");
    }
}

/// Shows the picker until the person chooses.
pub async fn pick<B: Backend, S>(
    terminal: &mut Terminal<B>,
    input: &mut S,
    data_dir: &Path,
    theme: Theme,
) -> Result<Choice, String>
where
    S: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let files = crate::scenario::files_in(&crate::scenario::default_dir()).unwrap_or_default();
    let done = done_names(data_dir);
    let entries: Vec<(String, String, bool, Option<PathBuf>)> = std::iter::once((
        "Free play".to_string(),
        "the lab with every key, no story".to_string(),
        false,
        None,
    ))
    .chain(files.into_iter().filter_map(|f| {
        let name = f.file_stem()?.to_string_lossy().into_owned();
        let s = Scenario::load(&f).ok()?;
        Some((s.title, s.summary, done.contains(&name), Some(f)))
    }))
    .collect();
    let mut selected = 0usize;
    loop {
        terminal
            .draw(|f| {
                let [top, list, bottom] = Layout::vertical([
                    Constraint::Length(3),
                    Constraint::Min(3),
                    Constraint::Length(1),
                ])
                .areas(f.area());
                f.render_widget(
                    Paragraph::new(vec![
                        Line::styled(
                            "holdfast · watch it fail, break it, fix it, watch it recover",
                            theme.title(),
                        ),
                        Line::styled(
                            "Pick a guided scenario (each one is also a test), or free play.",
                            theme.dim(),
                        ),
                    ]),
                    top,
                );
                let items: Vec<ListItem> = entries
                    .iter()
                    .map(|(title, summary, done, _)| {
                        ListItem::new(vec![
                            Line::from(vec![
                                Span::styled(if *done { "✓ " } else { "  " }, theme.good()),
                                Span::styled(crate::text::one_line(title), theme.title()),
                            ]),
                            Line::styled(
                                format!("    {}", crate::text::one_line(summary)),
                                theme.dim(),
                            ),
                        ])
                    })
                    .collect();
                let mut state = ListState::default().with_selected(Some(selected));
                f.render_stateful_widget(
                    List::new(items)
                        .highlight_style(theme.selected())
                        .block(super::view::pane_block("scenarios".into(), true, theme)),
                    list,
                    &mut state,
                );
                f.render_widget(
                    Line::from(vec![
                        Span::styled("↑↓", theme.key()),
                        Span::raw(" choose  "),
                        Span::styled("Enter", theme.key()),
                        Span::raw(" start  "),
                        Span::styled("q", theme.key()),
                        Span::raw(" quit"),
                    ]),
                    bottom,
                );
            })
            .map_err(|e| format!("cannot draw: {e}"))?;
        let Some(ev) = input.next().await else {
            return Ok(Choice::Quit);
        };
        let TermEvent::Key(key) = ev.map_err(|e| format!("cannot read the terminal: {e}"))? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => selected = (selected + 1).min(entries.len() - 1),
            KeyCode::Up | KeyCode::Char('k') => selected = selected.saturating_sub(1),
            KeyCode::Enter => {
                return Ok(match &entries[selected].3 {
                    None => Choice::FreePlay,
                    Some(p) => Choice::Scenario(p.clone()),
                });
            }
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ok(Choice::Quit);
            }
            KeyCode::Char('q') | KeyCode::Esc => return Ok(Choice::Quit),
            _ => {}
        }
    }
}
