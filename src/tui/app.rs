//! The screen's state and how it changes: an event in, the state updated,
//! and what must happen outside (a lab action, a reload) handed back as
//! [`Effect`]s. Nothing here touches the engine or the terminal, so every
//! key and every engine change can be tested without either.

use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind};

mod form;
mod lab;

pub use form::{Form, FormKind};

pub use lab::deposit_words;
use lab::describe_lab_event;

use super::action::UiAction;
use super::keymap::{self, Binding, Context};

use crate::apps::lab::{Action, LabEvent, LabSnapshot};

use crate::engine::{
    EventAttributes, HistoryEvent, WorkflowDescription, WorkflowExecutionInfo,
    WorkflowExecutionStatus,
};

/// Runs read a page at a time.
pub const PAGE: usize = 200;

/// The panes that take the focus, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Workflows,
    History,
    Pending,
}

impl Pane {
    const ORDER: [Pane; 3] = [Pane::Workflows, Pane::History, Pane::Pending];

    fn context(self) -> Context {
        match self {
            Pane::Workflows => Context::Workflows,
            Pane::History => Context::History,
            Pane::Pending => Context::Pending,
        }
    }
}

/// Which runs the list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    All,
    Running,
    Retrying,
    Completed,
    Failed,
    Canceled,
    Terminated,
}

impl StatusFilter {
    const ORDER: [StatusFilter; 7] = [
        StatusFilter::All,
        StatusFilter::Running,
        StatusFilter::Retrying,
        StatusFilter::Completed,
        StatusFilter::Failed,
        StatusFilter::Canceled,
        StatusFilter::Terminated,
    ];

    pub fn label(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Running => "running",
            StatusFilter::Retrying => "retrying",
            StatusFilter::Completed => "completed",
            StatusFilter::Failed => "failed",
            StatusFilter::Canceled => "canceled",
            StatusFilter::Terminated => "terminated",
        }
    }

    pub fn to_filter(self, text: &str) -> crate::engine::ListFilter {
        crate::engine::ListFilter {
            status: match self {
                StatusFilter::All | StatusFilter::Retrying => None,
                StatusFilter::Running => Some(WorkflowExecutionStatus::Running),
                StatusFilter::Completed => Some(WorkflowExecutionStatus::Completed),
                StatusFilter::Failed => Some(WorkflowExecutionStatus::Failed),
                StatusFilter::Canceled => Some(WorkflowExecutionStatus::Canceled),
                StatusFilter::Terminated => Some(WorkflowExecutionStatus::Terminated),
            },
            retrying: self == StatusFilter::Retrying,
            text: (!text.is_empty()).then(|| text.to_string()),
            ..Default::default()
        }
    }
}

/// What covers the main screen.
#[derive(Clone, Debug)]
pub enum Overlay {
    /// A form that starts work.
    Form(Form),
    Help {
        scroll: u16,
    },
    /// A text to read (an event's attributes, the report's draft).
    Text {
        title: String,
        body: String,
        scroll: u16,
    },
    /// "Are you sure?" before a destructive action.
    Confirm {
        action: UiAction,
        question: String,
    },
}

/// The engine as the top bar shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineState {
    Up,
    /// A crash was asked for; recovery runs.
    Recovering,
}

/// The selected run, as last read.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub description: WorkflowDescription,
    /// From `first_event_id` on (1: all of it) as loaded; the screen's copy
    /// always holds all of it.
    pub history: Vec<HistoryEvent>,
    pub first_event_id: u64,
    /// The app's own state for this run (balances, LLM calls paid, files).
    pub facts: Vec<String>,
}

/// What the guide pane shows: a scenario's current step (filled by the
/// scenario runner; `None` in free play, and the pane takes no room).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guide {
    /// The scenario's title.
    pub title: String,
    /// "step 2 of 5".
    pub progress: String,
    /// The words of the step.
    pub text: String,
    /// The action the step asks for; its key is looked up in the key table.
    pub action: Option<UiAction>,
    /// Nothing happened for a while: say the key louder.
    pub hint: bool,
    /// What the story noticed of a key pressed off the script.
    pub note: Option<String>,
    /// The step's checks as last observed.
    pub checks: Vec<GuideCheck>,
    /// Every step held.
    pub done: bool,
}

/// One check of a guided step, as last observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideCheck {
    pub name: String,
    pub holds: bool,
    pub seen: String,
}

/// Outside work the state asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Re-read the list and the selected run.
    Reload,
    Lab(Action),
    /// Ask the report its draft (a query) and show it.
    ShowDraft {
        workflow_id: String,
    },
    Quit,
    /// Start the finished scenario again, from a fresh run.
    Replay,
}

/// Something that happened: a key, an engine change, a result coming back.
#[derive(Clone, Debug)]
pub enum Event {
    Term(TermEvent),
    /// The engine committed something; what is shown may be stale.
    Changed,
    /// A fresh read of what the screen shows, for the request `request`.
    Loaded {
        request: u64,
        loaded: Box<super::Loaded>,
    },
    LabDone {
        result: Result<Vec<LabEvent>, String>,
        snapshot: Box<LabSnapshot>,
    },
    Text {
        title: String,
        body: String,
    },
    /// The guide's step changed, or its checks were observed again.
    Guide(Box<Guide>),
    Error(String),
    /// The engine's clock moved (the countdowns).
    Tick {
        now_ms: u64,
    },
}

/// Everything the screen draws.
pub struct App {
    pub keymap: Vec<Binding>,
    pub focus: Pane,
    pub overlay: Option<Overlay>,
    pub runs: Vec<WorkflowExecutionInfo>,
    /// How many of the newest runs the list reads; grows as the person
    /// scrolls to the end, a page at a time.
    pub list_limit: usize,
    /// More runs match than the list holds.
    pub more: bool,
    pub retrying: std::collections::HashSet<String>,
    pub selected: usize,
    /// The workflow id the selection follows across reloads.
    pub selected_id: Option<String>,
    pub run: Option<RunView>,
    pub history_cursor: usize,
    pub pending_cursor: usize,
    pub compact: bool,
    pub status_filter: StatusFilter,
    pub text_filter: String,
    pub editing_filter: bool,
    pub lab: LabSnapshot,
    pub engine_state: EngineState,
    /// The last thing that happened, for the status line.
    pub message: Option<(String, bool)>,
    pub now_ms: u64,
    /// Requests sent for reloads; only the newest one's answer is drawn.
    pub request: u64,
    pub quit: bool,
    /// Actions sent to the lab and not answered yet.
    pub busy: u32,
    /// The engine's and the apps' log lines.
    pub logs: super::log::LogBuffer,
    pub guide: Option<Guide>,
}

impl App {
    pub fn new(lab: LabSnapshot, now_ms: u64) -> App {
        App {
            keymap: keymap::table(),
            focus: Pane::Workflows,
            overlay: None,
            runs: Vec::new(),
            list_limit: PAGE,
            more: false,
            retrying: Default::default(),
            selected: 0,
            selected_id: None,
            run: None,
            history_cursor: 0,
            pending_cursor: 0,
            compact: false,
            status_filter: StatusFilter::default(),
            text_filter: String::new(),
            editing_filter: false,
            lab,
            engine_state: EngineState::Up,
            message: None,
            now_ms,
            request: 0,
            quit: false,
            busy: 0,
            logs: super::log::LogBuffer::new(500),
            guide: None,
        }
    }

    /// Where keys go now.
    pub fn context(&self) -> Context {
        match &self.overlay {
            Some(Overlay::Confirm { .. }) => Context::Confirm,
            Some(Overlay::Form(_)) => Context::Form,
            Some(_) => Context::Overlay,
            None => self.focus.context(),
        }
    }

    pub fn selected_run(&self) -> Option<&WorkflowExecutionInfo> {
        self.runs.get(self.selected)
    }

    /// The history as drawn: all of it, or without the workflow-task events.
    pub fn visible_history(&self) -> Vec<&HistoryEvent> {
        let Some(run) = &self.run else {
            return Vec::new();
        };
        run.history
            .iter()
            .filter(|e| !self.compact || !is_workflow_task_event(e))
            .collect()
    }

    /// One event in, the state updated; what must happen outside, out.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Term(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => self.key(key),
            Event::Term(_) => Vec::new(),
            Event::Changed => vec![Effect::Reload],
            Event::Loaded { request, loaded } => {
                if request == self.request {
                    let super::Loaded {
                        runs,
                        more,
                        retrying,
                        run,
                    } = *loaded;
                    self.retrying = retrying;
                    self.more = more;
                    if self.loaded(runs, run) {
                        return vec![Effect::Reload];
                    }
                }
                Vec::new()
            }
            Event::LabDone { result, snapshot } => {
                self.busy = self.busy.saturating_sub(1);
                self.lab = *snapshot;
                self.engine_state = EngineState::Up;
                match result {
                    Ok(events) => {
                        if let Some(text) = events.last().map(describe_lab_event) {
                            self.say(text);
                        }
                        if let Some(LabEvent::WorkflowStarted { workflow_id, .. }) = events
                            .iter()
                            .find(|e| matches!(e, LabEvent::WorkflowStarted { .. }))
                        {
                            self.selected_id = Some(workflow_id.clone());
                        }
                    }
                    Err(e) => self.complain(e),
                }
                vec![Effect::Reload]
            }
            Event::Text { title, body } => {
                self.overlay = Some(Overlay::Text {
                    title,
                    body,
                    scroll: 0,
                });
                Vec::new()
            }
            Event::Guide(g) => {
                self.guide = Some(*g);
                Vec::new()
            }
            Event::Error(e) => {
                self.complain(e);
                Vec::new()
            }
            Event::Tick { now_ms } => {
                self.now_ms = now_ms;
                Vec::new()
            }
        }
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some((text.into(), false));
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.message = Some((text.into(), true));
    }

    /// Takes a reload in; says whether another is needed.
    fn loaded(&mut self, runs: Vec<WorkflowExecutionInfo>, run: Option<RunView>) -> bool {
        let mut reload = false;
        self.runs = runs;
        if let Some(id) = &self.selected_id
            && let Some(i) = self.runs.iter().position(|r| &r.workflow_id == id)
        {
            self.selected = i;
        }
        self.selected = self.selected.min(self.runs.len().saturating_sub(1));
        self.selected_id = self.selected_run().map(|r| r.workflow_id.clone());
        let same_run = match (&self.run, &run) {
            (Some(a), Some(b)) => a.description.info.run_id == b.description.info.run_id,
            _ => false,
        };
        let follow_tail =
            !same_run || self.history_cursor + 1 >= self.visible_history().len().max(1);
        // Only the new events came: add them to what is held.
        let run = match (run, self.run.take()) {
            (Some(mut new), Some(mut old))
                if new.first_event_id > 1
                    && old.description.info.run_id == new.description.info.run_id
                    && old.history.len() as u64 + 1 == new.first_event_id =>
            {
                old.history.append(&mut new.history);
                old.description = new.description;
                old.facts = new.facts;
                Some(old)
            }
            (Some(new), _) if new.first_event_id > 1 => {
                // What they belong after is gone: read it whole again.
                reload = true;
                None
            }
            (new, _) => new,
        };
        self.run = run;
        let n = self.visible_history().len();
        if follow_tail {
            self.history_cursor = n.saturating_sub(1);
        } else {
            self.history_cursor = self.history_cursor.min(n.saturating_sub(1));
        }
        let pending = self
            .run
            .as_ref()
            .map_or(0, |r| r.description.pending_activities.len());
        self.pending_cursor = self.pending_cursor.min(pending.saturating_sub(1));
        reload
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if self.editing_filter {
            return self.filter_key(key);
        }
        if let Some(Overlay::Form(form)) = &mut self.overlay {
            // The form's own keys; anything else is typed into the field.
            return match keymap::resolve(&self.keymap, &key, Context::Form) {
                Some(action) => self.update(action),
                None => {
                    form.type_key(&TermEvent::Key(key));
                    Vec::new()
                }
            };
        }
        match keymap::resolve(&self.keymap, &key, self.context()) {
            Some(action) => self.update(action),
            None => Vec::new(),
        }
    }

    fn filter_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Esc => {
                self.editing_filter = false;
                self.text_filter.clear();
            }
            KeyCode::Backspace => {
                self.text_filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() && self.text_filter.len() < 100 => {
                self.text_filter.push(c)
            }
            _ => return Vec::new(),
        }
        self.selected = 0;
        vec![Effect::Reload]
    }

    /// What an action does to the screen, and what it asks of the world.
    pub fn update(&mut self, action: UiAction) -> Vec<Effect> {
        if action.needs_run() && self.selected_run().is_none() {
            self.complain("select a workflow first (start one with t)");
            return Vec::new();
        }
        if action.is_destructive() {
            let question = self.question(&action);
            self.overlay = Some(Overlay::Confirm { action, question });
            return Vec::new();
        }
        self.perform(action)
    }

    /// Does what `action` asks (a destructive one was confirmed).
    fn perform(&mut self, action: UiAction) -> Vec<Effect> {
        match action {
            UiAction::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            UiAction::ReplayScenario => {
                if self.guide.as_ref().is_some_and(|g| g.done) {
                    self.quit = true;
                    vec![Effect::Replay]
                } else {
                    self.complain("r replays a scenario once it is done");
                    Vec::new()
                }
            }
            UiAction::Help => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                Vec::new()
            }
            UiAction::Back => {
                self.overlay = None;
                Vec::new()
            }
            UiAction::Confirm => match self.overlay.take() {
                Some(Overlay::Confirm { action, .. }) => self.perform(action),
                _ => Vec::new(),
            },
            UiAction::Up | UiAction::Down | UiAction::PageUp | UiAction::PageDown => {
                let delta: i64 = match action {
                    UiAction::Up => -1,
                    UiAction::Down => 1,
                    UiAction::PageUp => -10,
                    _ => 10,
                };
                self.scroll(delta)
            }
            UiAction::Top => self.scroll(i64::MIN / 2),
            UiAction::Bottom => self.scroll(i64::MAX / 2),
            UiAction::NextPane | UiAction::PrevPane => {
                let i = Pane::ORDER
                    .iter()
                    .position(|p| *p == self.focus)
                    .unwrap_or(0);
                let n = Pane::ORDER.len();
                let next = if action == UiAction::NextPane {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.focus = Pane::ORDER[next];
                Vec::new()
            }
            UiAction::Open => self.open(),
            UiAction::Filter => {
                self.editing_filter = true;
                Vec::new()
            }
            UiAction::CycleStatusFilter => {
                self.list_limit = PAGE;
                let i = StatusFilter::ORDER
                    .iter()
                    .position(|s| *s == self.status_filter)
                    .unwrap_or(0);
                self.status_filter = StatusFilter::ORDER[(i + 1) % StatusFilter::ORDER.len()];
                self.selected = 0;
                vec![Effect::Reload]
            }
            UiAction::ClearFilter => {
                self.status_filter = StatusFilter::All;
                self.text_filter.clear();
                vec![Effect::Reload]
            }
            UiAction::ToggleCompact => {
                self.compact = !self.compact;
                self.history_cursor = self.visible_history().len().saturating_sub(1);
                Vec::new()
            }
            UiAction::StartTransfer | UiAction::StartReport
                if self.guide.as_ref().and_then(|g| g.action.as_ref()) == Some(&action) =>
            {
                // No form: the guided step starts its own run, with its own
                // parameters (the lab's task puts them in for this action).
                self.busy += 1;
                let form = if action == UiAction::StartTransfer {
                    Form::transfer()
                } else {
                    Form::report()
                };
                form.action(String::new())
                    .ok()
                    .map(Effect::Lab)
                    .into_iter()
                    .collect()
            }
            UiAction::StartTransfer => {
                self.overlay = Some(Overlay::Form(Form::transfer()));
                Vec::new()
            }
            UiAction::StartReport => {
                self.overlay = Some(Overlay::Form(Form::report()));
                Vec::new()
            }
            UiAction::NextField | UiAction::PrevField => {
                if let Some(Overlay::Form(form)) = &mut self.overlay {
                    if action == UiAction::NextField {
                        form.next();
                    } else {
                        form.prev();
                    }
                }
                Vec::new()
            }
            UiAction::Submit => {
                let Some(Overlay::Form(form)) = &mut self.overlay else {
                    return Vec::new();
                };
                // Fresh and short, so the list tells runs apart; a clash
                // with a running id is refused by the engine.
                let prefix = match form.kind {
                    FormKind::Transfer => "pay-invoice",
                    FormKind::Report => "report",
                };
                let id = format!("{prefix}-{:04x}", fastrand::u16(..));
                match form.action(id) {
                    Ok(a) => {
                        self.overlay = None;
                        self.busy += 1;
                        vec![Effect::Lab(a)]
                    }
                    Err(e) => {
                        form.error = Some(e);
                        Vec::new()
                    }
                }
            }
            UiAction::ShowDraft => {
                let id = self.selected_id.clone().unwrap_or_default();
                vec![Effect::ShowDraft { workflow_id: id }]
            }
            other => match self.lab_action(other) {
                Some(a) => {
                    if matches!(a, Action::Signal { .. }) {
                        // Answered from the draft's view: it closes.
                        self.overlay = None;
                    }
                    self.busy += 1;
                    if matches!(a, Action::CrashEngine) {
                        self.engine_state = EngineState::Recovering;
                    }
                    vec![Effect::Lab(a)]
                }
                None => Vec::new(),
            },
        }
    }

    fn scroll(&mut self, delta: i64) -> Vec<Effect> {
        let step = |v: usize, len: usize| -> usize {
            let max = len.saturating_sub(1) as i64;
            (v as i64).saturating_add(delta).clamp(0, max.max(0)) as usize
        };
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) | Some(Overlay::Text { scroll, .. }) => {
                *scroll = (*scroll as i64).saturating_add(delta).clamp(0, 10_000) as u16;
                return Vec::new();
            }
            Some(Overlay::Confirm { .. }) | Some(Overlay::Form(_)) => return Vec::new(),
            None => {}
        }
        match self.focus {
            Pane::Workflows => {
                let before = self.selected;
                self.selected = step(self.selected, self.runs.len());
                self.selected_id = self.selected_run().map(|r| r.workflow_id.clone());
                let at_end = self.selected + 1 >= self.runs.len();
                if at_end && self.more && delta > 0 {
                    // The next page, read as the person reaches the end.
                    self.list_limit += PAGE;
                    self.run = None;
                    return vec![Effect::Reload];
                }
                if before != self.selected {
                    self.run = None;
                    return vec![Effect::Reload];
                }
            }
            Pane::History => {
                self.history_cursor = step(self.history_cursor, self.visible_history().len());
            }
            Pane::Pending => {
                let n = self
                    .run
                    .as_ref()
                    .map_or(0, |r| r.description.pending_activities.len());
                self.pending_cursor = step(self.pending_cursor, n);
            }
        }
        Vec::new()
    }

    fn open(&mut self) -> Vec<Effect> {
        match self.focus {
            Pane::Workflows => {
                self.focus = Pane::History;
                Vec::new()
            }
            Pane::History | Pane::Pending => {
                let event = self.visible_history().get(self.history_cursor).map(|e| {
                    (
                        format!("event {} · {}", e.event_id, e.event_type()),
                        super::view::pretty_attributes(&e.attributes),
                    )
                });
                if let Some((title, body)) = event {
                    self.overlay = Some(Overlay::Text {
                        title,
                        body,
                        scroll: 0,
                    });
                }
                Vec::new()
            }
        }
    }
}

/// Workflow-task events, which compact mode folds away.
pub fn is_workflow_task_event(e: &HistoryEvent) -> bool {
    matches!(
        e.attributes,
        EventAttributes::WorkflowTaskScheduled { .. }
            | EventAttributes::WorkflowTaskStarted { .. }
            | EventAttributes::WorkflowTaskCompleted { .. }
    )
}
