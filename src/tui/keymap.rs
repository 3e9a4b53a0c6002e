//! The one key table: dispatch, the help overlay, the status line's hints
//! and the scenario guide ("press k to kill the worker") all read it, so
//! they cannot drift apart.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::UiAction;
use crate::apps::faults::Fault;

/// Where the keys are pressed: which pane has the focus, or which overlay is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere on the main screen.
    Global,
    Workflows,
    History,
    Pending,
    /// The help overlay, the event detail and other read-only overlays.
    Overlay,
    /// A question waiting for y/n.
    Confirm,
    /// A form: keys not listed are typed into the field.
    Form,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "everywhere",
            Context::Workflows => "workflows",
            Context::History => "history",
            Context::Pending => "pending activities",
            Context::Overlay => "overlays",
            Context::Confirm => "confirmation",
            Context::Form => "forms",
        }
    }
}

/// One key as the table writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

impl Key {
    /// How help and hints write the key.
    pub fn label(self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{}", base.to_uppercase())
        } else {
            base
        }
    }

    fn matches(self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl != self.ctrl {
            return false;
        }
        match (self.code, key.code) {
            // Shift-letter arrives as the upper-case char, with or without SHIFT.
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b,
            (a, b) => a == b,
        }
    }
}

/// One entry of the table.
#[derive(Clone, Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: UiAction,
    pub description: &'static str,
    pub context: Context,
    /// Shown in the status line when its context is active.
    pub hint: bool,
}

macro_rules! bind {
    ($ctx:ident, [$($k:expr),+], $action:expr, $desc:expr) => {
        Binding { keys: const { &[$($k),+] }, action: $action, description: $desc, context: Context::$ctx, hint: false }
    };
    ($ctx:ident, [$($k:expr),+], $action:expr, $desc:expr, hint) => {
        Binding { keys: const { &[$($k),+] }, action: $action, description: $desc, context: Context::$ctx, hint: true }
    };
}

/// Every key holdfast knows.
pub fn table() -> Vec<Binding> {
    use UiAction as A;
    vec![
        // Confirmation
        bind!(
            Confirm,
            [ch('y'), code(KeyCode::Enter)],
            A::Confirm,
            "yes, do it",
            hint
        ),
        bind!(
            Confirm,
            [ch('n'), code(KeyCode::Esc)],
            A::Back,
            "no, leave it",
            hint
        ),
        // Forms
        bind!(Form, [code(KeyCode::Enter)], A::Submit, "start it", hint),
        bind!(
            Form,
            [code(KeyCode::Tab), code(KeyCode::Down)],
            A::NextField,
            "next field",
            hint
        ),
        bind!(
            Form,
            [code(KeyCode::BackTab), code(KeyCode::Up)],
            A::PrevField,
            "previous field"
        ),
        bind!(Form, [code(KeyCode::Esc)], A::Back, "cancel", hint),
        // Overlays
        bind!(
            Overlay,
            [code(KeyCode::Esc), ch('q'), ch('?')],
            A::Back,
            "close",
            hint
        ),
        bind!(
            Overlay,
            [code(KeyCode::Down), ch('j')],
            A::Down,
            "scroll down",
            hint
        ),
        bind!(
            Overlay,
            [code(KeyCode::Up), ch('k')],
            A::Up,
            "scroll up",
            hint
        ),
        bind!(Overlay, [code(KeyCode::PageDown)], A::PageDown, "page down"),
        bind!(Overlay, [code(KeyCode::PageUp)], A::PageUp, "page up"),
        bind!(Overlay, [ch('g'), code(KeyCode::Home)], A::Top, "top"),
        bind!(Overlay, [ch('G'), code(KeyCode::End)], A::Bottom, "bottom"),
        bind!(Overlay, [ch('a')], A::Approve, "approve the draft shown"),
        bind!(
            Overlay,
            [ch('r')],
            A::ReplayScenario,
            "replay the scenario from a fresh run (its summary shown)"
        ),
        bind!(
            Overlay,
            [ch('E')],
            A::EditDraft,
            "ask for an edit of the draft shown"
        ),
        // Moving around
        bind!(Global, [code(KeyCode::Down), ch('j')], A::Down, "next line"),
        bind!(Global, [code(KeyCode::Up), ch('k')], A::Up, "previous line"),
        bind!(Global, [code(KeyCode::PageDown)], A::PageDown, "page down"),
        bind!(Global, [code(KeyCode::PageUp)], A::PageUp, "page up"),
        bind!(Global, [ch('g'), code(KeyCode::Home)], A::Top, "first line"),
        bind!(
            Global,
            [ch('G'), code(KeyCode::End)],
            A::Bottom,
            "last line"
        ),
        bind!(Global, [code(KeyCode::Tab)], A::NextPane, "next pane", hint),
        bind!(
            Global,
            [code(KeyCode::BackTab)],
            A::PrevPane,
            "previous pane"
        ),
        bind!(Global, [ch('?')], A::Help, "help: every key", hint),
        bind!(
            Global,
            [ch('q'), ctrl('c')],
            A::Quit,
            "quit (workflows carry on next time)",
            hint
        ),
        // Workflows pane
        bind!(
            Workflows,
            [code(KeyCode::Enter)],
            A::Open,
            "show the run's history",
            hint
        ),
        bind!(Workflows, [ch('/')], A::Filter, "filter by text", hint),
        bind!(
            Workflows,
            [ch('f')],
            A::CycleStatusFilter,
            "filter by status (all, running, retrying, …)",
            hint
        ),
        bind!(
            Workflows,
            [code(KeyCode::Esc)],
            A::ClearFilter,
            "clear the filters"
        ),
        // History pane
        bind!(
            History,
            [code(KeyCode::Enter)],
            A::Open,
            "the event's attributes, in full",
            hint
        ),
        bind!(
            History,
            [ch('c')],
            A::ToggleCompact,
            "fold workflow-task events",
            hint
        ),
        // Actions on the lab
        bind!(
            Global,
            [ch('t')],
            A::StartTransfer,
            "start a money transfer",
            hint
        ),
        bind!(Global, [ch('p')], A::StartReport, "start a research report"),
        bind!(
            Global,
            [ch('K')],
            A::KillWorker,
            "kill the worker (a crash)",
            hint
        ),
        bind!(Global, [ch('s')], A::StopWorker, "stop the worker cleanly"),
        bind!(Global, [ch('w')], A::StartWorker, "start the worker"),
        bind!(
            Global,
            [ch('b')],
            A::ToggleFault(Fault::DepositBug),
            "switch the deposit bug",
            hint
        ),
        bind!(
            Global,
            [ch('e')],
            A::ToggleFault(Fault::EmailOutage),
            "switch the e-mail outage"
        ),
        bind!(
            Global,
            [ch('l')],
            A::ToggleFault(Fault::LlmFailing),
            "switch the LLM failing"
        ),
        bind!(
            Global,
            [ch('L')],
            A::ToggleFault(Fault::LlmSlow),
            "switch the LLM slow"
        ),
        bind!(
            Global,
            [ch('P')],
            A::ToggleFault(Fault::PdfWriteError),
            "switch the PDF write error"
        ),
        bind!(
            Global,
            [ch('N')],
            A::ToggleFault(Fault::WorkflowChanged),
            "switch the changed workflow code (not replay-safe; the next worker runs it)"
        ),
        bind!(
            Global,
            [ch('h')],
            A::HotSwapFix,
            "hot-swap the fixed deposit into the worker",
            hint
        ),
        bind!(
            Global,
            [ch('R')],
            A::RestartWorkerWithFix,
            "restart the worker with the fix"
        ),
        bind!(
            Global,
            [ch('X')],
            A::CrashEngine,
            "crash the engine (asks first)"
        ),
        bind!(
            Global,
            [ch('r')],
            A::RetryNow,
            "retry the selected run's activity now",
            hint
        ),
        bind!(Global, [ch('a')], A::Approve, "approve the report's draft"),
        bind!(
            Global,
            [ch('E')],
            A::EditDraft,
            "ask for an edit of the draft"
        ),
        bind!(
            Global,
            [ch('d')],
            A::ShowDraft,
            "show the report's draft (query)"
        ),
        bind!(
            Global,
            [ch('C')],
            A::Cancel,
            "cancel the selected run (the code decides)"
        ),
        bind!(
            Global,
            [ch('T')],
            A::Terminate,
            "terminate the selected run (asks first)"
        ),
        bind!(
            Global,
            [ch('Z')],
            A::Reset,
            "reset the selected run to its last workflow task (asks first)"
        ),
        bind!(
            Global,
            [ch('+'), ch('=')],
            A::SpeedUp,
            "run the clock faster"
        ),
        bind!(Global, [ch('-')], A::SpeedDown, "run the clock slower"),
    ]
}

/// The action a key means in `context` (its own entries first, then the global ones).
pub fn resolve(table: &[Binding], key: &KeyEvent, context: Context) -> Option<UiAction> {
    let in_context = |c: Context| {
        table
            .iter()
            .find(|b| b.context == c && b.keys.iter().any(|k| k.matches(key)))
            .map(|b| b.action.clone())
    };
    match context {
        Context::Overlay | Context::Confirm | Context::Form => in_context(context).or_else(|| {
            // Quitting works from anywhere.
            let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
            (key.code == quit.code && key.modifiers.contains(KeyModifiers::CONTROL))
                .then_some(UiAction::Quit)
        }),
        _ => in_context(context).or_else(|| in_context(Context::Global)),
    }
}

/// The keys that do `action` in `context` (or everywhere), as help writes them.
pub fn keys_for(table: &[Binding], action: &UiAction, context: Context) -> Option<String> {
    table
        .iter()
        .find(|b| &b.action == action && (b.context == context || b.context == Context::Global))
        .map(|b| {
            b.keys
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join("/")
        })
}

/// A description as the status line says it: up to its first aside.
pub fn short(description: &'static str) -> &'static str {
    let end = description.find([':', '(']).unwrap_or(description.len());
    description[..end].trim_end()
}

/// The status line, most needed first so a narrow terminal keeps them:
/// help and quit, then the actions of the story, then this context's own,
/// then moving between panes.
pub fn hints(table: &[Binding], context: Context) -> Vec<(String, &'static str)> {
    let hint = |b: &Binding| (b.keys[0].label(), short(b.description));
    let in_ctx = |c: Context| table.iter().filter(move |b| b.context == c && b.hint);
    match context {
        Context::Overlay | Context::Confirm | Context::Form => in_ctx(context).map(hint).collect(),
        _ => {
            let first = |b: &&Binding| matches!(b.action, UiAction::Help | UiAction::Quit);
            let moving = |b: &&Binding| matches!(b.action, UiAction::NextPane);
            in_ctx(Context::Global)
                .filter(first)
                .chain(in_ctx(Context::Global).filter(|b| !first(b) && !moving(b)))
                .chain(in_ctx(context))
                .chain(in_ctx(Context::Global).filter(moving))
                .map(hint)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    /// Every action a person can take has a key, so help lists it.
    #[test]
    fn every_action_has_a_key_and_help_line() {
        let t = table();
        for a in UiAction::all() {
            assert!(
                t.iter().any(|b| b.action == a && !b.description.is_empty()),
                "{a:?} has no key"
            );
        }
    }

    /// No key means two things in one context, nor shadows a global key
    /// with another meaning by accident (a pane's own keys are listed).
    #[test]
    fn no_key_is_bound_twice_in_a_context() {
        let t = table();
        for (i, a) in t.iter().enumerate() {
            for b in &t[i + 1..] {
                if a.context != b.context {
                    continue;
                }
                for k in a.keys {
                    assert!(
                        !b.keys.contains(k),
                        "{} bound to {:?} and {:?} in {:?}",
                        k.label(),
                        a.action,
                        b.action,
                        a.context
                    );
                }
            }
        }
    }

    #[test]
    fn keys_resolve_per_context() {
        let t = table();
        assert_eq!(
            resolve(&t, &key('j'), Context::Workflows),
            Some(UiAction::Down)
        );
        assert_eq!(
            resolve(&t, &key('c'), Context::History),
            Some(UiAction::ToggleCompact)
        );
        // 'c' means nothing in the workflows pane.
        assert_eq!(resolve(&t, &key('c'), Context::Workflows), None);
        assert_eq!(
            resolve(&t, &key('y'), Context::Confirm),
            Some(UiAction::Confirm)
        );
        // In a confirmation only its own keys (and Ctrl-C) work.
        assert_eq!(resolve(&t, &key('K'), Context::Confirm), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(resolve(&t, &ctrl_c, Context::Overlay), Some(UiAction::Quit));
        assert_eq!(resolve(&t, &ctrl_c, Context::History), Some(UiAction::Quit));
        let shift_k = KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(
            resolve(&t, &shift_k, Context::Pending),
            Some(UiAction::KillWorker)
        );
        assert_eq!(
            keys_for(&t, &UiAction::HotSwapFix, Context::History).as_deref(),
            Some("h")
        );
    }

    /// The status line names keys that work where the focus is.
    #[test]
    fn hints_are_keys_of_the_context() {
        let t = table();
        for ctx in [
            Context::Workflows,
            Context::History,
            Context::Overlay,
            Context::Confirm,
        ] {
            for (label, what) in hints(&t, ctx) {
                assert!(
                    t.iter().any(|b| short(b.description) == what
                        && b.keys[0].label() == label
                        && (b.context == ctx || b.context == Context::Global)),
                    "{label} {what} in {ctx:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    /// Help and quit come first, then starting a transfer, so a narrow
    /// terminal still shows them; asides are left to help.
    #[test]
    fn the_status_line_leads_with_what_a_newcomer_needs() {
        let h = hints(&table(), Context::Workflows);
        let keys: Vec<&str> = h.iter().take(3).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["?", "q", "t"]);
        assert!(h.iter().all(|(_, what)| !what.contains('(')), "{h:?}");
        assert_eq!(short("quit (workflows carry on next time)"), "quit");
    }
}
