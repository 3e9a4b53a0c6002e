//! The screen's styles, in one place; views name a role, never a colour.
//! With `NO_COLOR` set every role is plain (bold and reverse stay, so the
//! selection is still visible), and nothing relies on colour alone: each
//! status also has a symbol and a word.

use ratatui::style::{Color, Modifier, Style};

use crate::engine::WorkflowExecutionStatus;

#[derive(Clone, Copy, Debug)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to something (no-color.org).
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    pub fn plain() -> Theme {
        Theme { color: false }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn title(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    pub fn focused_border(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn border(self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn bad(self) -> Style {
        self.fg(Color::Red)
    }
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn status(self, s: WorkflowExecutionStatus) -> Style {
        match s {
            WorkflowExecutionStatus::Running => self.fg(Color::Blue),
            WorkflowExecutionStatus::Completed => self.good(),
            WorkflowExecutionStatus::Failed | WorkflowExecutionStatus::TimedOut => self.bad(),
            _ => self.warn(),
        }
    }
}

/// A status as a symbol and a word.
pub fn status_symbol(s: WorkflowExecutionStatus) -> (&'static str, &'static str) {
    match s {
        WorkflowExecutionStatus::Running => ("●", "Running"),
        WorkflowExecutionStatus::Completed => ("✓", "Completed"),
        WorkflowExecutionStatus::Failed => ("✗", "Failed"),
        WorkflowExecutionStatus::Canceled => ("⊘", "Canceled"),
        WorkflowExecutionStatus::Terminated => ("■", "Terminated"),
        WorkflowExecutionStatus::TimedOut => ("⌛", "TimedOut"),
        WorkflowExecutionStatus::ContinuedAsNew => ("↪", "ContinuedAsNew"),
    }
}
