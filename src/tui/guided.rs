//! The lab's task, and a scenario guiding the person through it: the
//! step's words and key go to the guide pane; when the person presses that
//! key the step's own action (with its parameters) is applied; its checks
//! are observed on every engine change and each second until they hold;
//! then the next step. At the end, a summary from the engine's records.

use std::time::Duration;

use tokio::sync::mpsc;

use super::action::UiAction;
use super::app::{Event, Guide, GuideCheck};
use crate::apps::bank::SEED_ACCOUNTS;
use crate::apps::lab::{Action, Lab};
use crate::engine::{EventAttributes, EventType};
use crate::scenario::{self, Check, Scenario};

/// How long a step may wait for its key before the guide gives a hint.
const HINT_AFTER: Duration = Duration::from_secs(20);

/// The key (as an action of the key table) that performs a lab action.
pub fn ui_action_for(a: &Action) -> Option<UiAction> {
    Some(match a {
        Action::StartTransfer { .. } => UiAction::StartTransfer,
        Action::StartReport { .. } => UiAction::StartReport,
        Action::KillWorker => UiAction::KillWorker,
        Action::StopWorker => UiAction::StopWorker,
        Action::StartWorker => UiAction::StartWorker,
        Action::SetFault { fault, .. } => UiAction::ToggleFault(*fault),
        Action::HotSwapFix => UiAction::HotSwapFix,
        Action::RestartWorkerWithFix => UiAction::RestartWorkerWithFix,
        Action::CrashEngine => UiAction::CrashEngine,
        Action::SetSpeed { .. } => UiAction::SpeedUp,
        Action::RetryNow { .. } => UiAction::RetryNow,
        Action::Signal { input, .. } => {
            if input.get("decision").and_then(|d| d.as_str()) == Some("EDIT") {
                UiAction::EditDraft
            } else {
                UiAction::Approve
            }
        }
        Action::Query { .. } => UiAction::ShowDraft,
        Action::Cancel { .. } => UiAction::Cancel,
        Action::Terminate { .. } => UiAction::Terminate,
        Action::Reset { .. } => UiAction::Reset,
    })
}

struct Guided {
    scenario: Scenario,
    step: usize,
    /// The step's action was applied (or it has none).
    performed: bool,
    /// Engine time the step began, and until when its `wait` lasts.
    began_ms: u64,
    wait_until_ms: u64,
    checks: Vec<GuideCheck>,
    finished: bool,
    note: Option<String>,
}

impl Guided {
    fn new(scenario: Scenario) -> Guided {
        Guided {
            scenario,
            step: 0,
            performed: false,
            began_ms: 0,
            wait_until_ms: 0,
            checks: Vec::new(),
            finished: false,
            note: None,
        }
    }

    fn current(&self) -> Option<&scenario::Step> {
        self.scenario.steps.get(self.step)
    }

    fn guide(&self, now_ms: u64) -> Guide {
        let n = self.scenario.steps.len();
        let step = self.current();
        let waiting_for_key = !self.performed && step.is_some_and(|s| s.action.is_some());
        Guide {
            title: self.scenario.title.clone(),
            progress: if self.finished {
                "done".into()
            } else {
                format!("step {} of {n}", self.step + 1)
            },
            text: step.map_or_else(
                || {
                    "Every step held. What happened, from the engine's records, is on screen."
                        .into()
                },
                |s| s.say.clone(),
            ),
            action: step
                .and_then(|s| s.action.as_ref())
                .and_then(ui_action_for)
                .filter(|_| waiting_for_key),
            hint: waiting_for_key
                && now_ms.saturating_sub(self.began_ms) >= HINT_AFTER.as_millis() as u64,
            checks: self.checks.clone(),
            note: self.note.clone(),
            done: self.finished,
        }
    }

    fn begin_step(&mut self, now_ms: u64) {
        self.began_ms = now_ms;
        self.checks.clear();
        self.note = None;
        self.performed = self.current().is_none_or(|s| s.action.is_none());
        self.wait_until_ms = now_ms
            + self
                .current()
                .and_then(|s| s.wait)
                .filter(|_| self.performed)
                .map_or(0, |w| (w * 1000.0) as u64);
    }
}

/// Starts the lab's task. With a scenario, it guides; without, it runs the
/// actions the keys send (free play). Results and guide updates come back
/// as events.
pub(super) fn spawn_lab(
    mut lab: Lab,
    scenario: Option<Scenario>,
    tx: mpsc::UnboundedSender<Event>,
) -> mpsc::UnboundedSender<Action> {
    let (lab_tx, mut lab_rx) = mpsc::unbounded_channel::<Action>();
    let engine = lab.engine().clone();
    let mut guided = scenario.map(Guided::new);
    let prepared = match &guided {
        Some(g) => scenario::prepare(&g.scenario, &mut lab),
        None => {
            if lab.snapshot().worker.is_none() {
                // The screen starts its worker, running the code the switches say.
                lab.start_workers();
            }
            Ok(())
        }
    };
    let _ = tx.send(Event::LabDone {
        result: prepared.map(|()| Vec::new()),
        snapshot: Box::new(lab.snapshot()),
    });
    if let Some(g) = &mut guided {
        g.begin_step(engine.now_ms());
        let _ = tx.send(Event::Guide(Box::new(g.guide(engine.now_ms()))));
    }
    tokio::spawn(async move {
        let mut feed = engine.subscribe();
        loop {
            let active = guided.as_ref().is_some_and(|g| !g.finished);
            tokio::select! {
                msg = lab_rx.recv() => {
                    let Some(mut action) = msg else { break };
                    if let Some(g) = &mut guided {
                        g.note = notice(g, &action, lab.snapshot().worker.is_some());
                        if g.note.is_some() && already_so(g, &action, lab.snapshot().worker.is_some()) {
                            // Nothing to do: the step's state already holds.
                            g.performed = true;
                        }
                    }
                    if let Some(g) = &mut guided
                        && !g.performed
                        && let Some(step_action) = g.current().and_then(|s| g.scenario.action_of(s))
                        && step_action.name() == action.name()
                    {
                        // The step's key: its own action, with its parameters.
                        action = step_action;
                        g.performed = true;
                        let now = engine.now_ms();
                        g.wait_until_ms = now
                            + g.current().and_then(|s| s.wait).map_or(0, |w| (w * 1000.0) as u64);
                    }
                    let result = lab.apply(action).await.map_err(|e| e.to_string());
                    let snapshot = Box::new(lab.snapshot());
                    if tx.send(Event::LabDone { result, snapshot }).is_err() {
                        break;
                    }
                }
                _ = feed.recv(), if active => {}
                _ = engine.clock().sleep(Duration::from_secs(1)), if active => {}
            }
            let Some(g) = &mut guided else { continue };
            if g.finished {
                continue;
            }
            let now = engine.now_ms();
            if g.performed && now >= g.wait_until_ms {
                let step = g.current().cloned();
                let Some(step) = step else { continue };
                let mut checks = Vec::new();
                for c in &step.expect {
                    let o = scenario::observe(&lab, c).await;
                    checks.push(GuideCheck {
                        name: scenario::check::name(c).to_string(),
                        holds: o.holds,
                        seen: o.seen,
                    });
                }
                let all = checks.iter().all(|c| c.holds);
                g.checks = checks;
                if all {
                    g.step += 1;
                    if g.step >= g.scenario.steps.len() {
                        g.finished = true;
                        let summary = summary(&lab, &g.scenario).await;
                        let _ = tx.send(Event::Text {
                            title: format!("{} · what happened", g.scenario.title),
                            body: summary,
                        });
                    }
                    g.begin_step(now);
                }
            }
            if tx.send(Event::Guide(Box::new(g.guide(now)))).is_err() {
                break;
            }
        }
    });
    lab_tx
}

/// What the story says of a key pressed when the step asked for another,
/// or of one with nothing to do.
fn notice(g: &Guided, action: &Action, worker: bool) -> Option<String> {
    if g.finished {
        return None;
    }
    let expected = g.current().and_then(|s| s.action.as_ref());
    match (expected, action) {
        (
            Some(Action::KillWorker | Action::StopWorker),
            Action::KillWorker | Action::StopWorker,
        ) if !worker => Some("the worker is already dead: the story goes on".into()),
        (Some(Action::StartWorker), Action::StartWorker) if worker => {
            Some("a worker already runs: the story goes on".into())
        }
        (Some(e), a) if e.name() != a.name() && !g.performed => Some(format!(
            "that was {}; the story waits for this step's key",
            a.name().replace('_', " ")
        )),
        _ => None,
    }
}

/// Whether the key the step asks for has nothing left to do.
fn already_so(g: &Guided, action: &Action, worker: bool) -> bool {
    let expected = g.current().and_then(|s| s.action.as_ref());
    matches!(
        (expected, action, worker),
        (
            Some(Action::KillWorker | Action::StopWorker),
            Action::KillWorker | Action::StopWorker,
            false
        ) | (Some(Action::StartWorker), Action::StartWorker, true)
    )
}

/// The workflows a scenario names.
fn workflows_of(s: &Scenario) -> Vec<String> {
    let mut ids = Vec::new();
    let mut add = |id: &str| {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    };
    for step in &s.steps {
        if let Some(Action::StartTransfer {
            workflow_id: Some(id),
            ..
        })
        | Some(Action::StartReport {
            workflow_id: Some(id),
            ..
        }) = &step.action
        {
            add(id);
        }
        for c in &step.expect {
            match c {
                Check::Status { workflow, .. }
                | Check::Attempt { workflow, .. }
                | Check::Event { workflow, .. }
                | Check::Ran { workflow, .. }
                | Check::Completed { workflow, .. }
                | Check::File { workflow, .. }
                | Check::Running { workflow, .. }
                | Check::HistoryLength { workflow, .. } => add(workflow),
                _ => {}
            }
        }
    }
    ids
}

/// What happened, from the engine's records: retries made, time waited
/// between attempts, activity executions against events written, LLM calls
/// paid, money moved, and what was lost.
async fn summary(lab: &Lab, s: &Scenario) -> String {
    let engine = lab.engine();
    let mut lines = Vec::new();
    for id in workflows_of(s) {
        let Ok(d) = engine.describe(&id, None).await else {
            continue;
        };
        let Ok(h) = engine.history(&id, Some(&d.info.run_id)).await else {
            continue;
        };
        let mut executions = 0u32;
        let mut retries = 0u32;
        let mut waited_ms = 0u64;
        let mut llm_paid = 0;
        for e in &h {
            if let EventAttributes::ActivityTaskStarted {
                attempt,
                scheduled_event_id,
                ..
            } = &e.attributes
            {
                executions += attempt;
                retries += attempt - 1;
                if *attempt > 1
                    && let Some(sched) = h.iter().find(|x| x.event_id == *scheduled_event_id)
                {
                    waited_ms += e.event_time_ms.saturating_sub(sched.event_time_ms);
                }
            }
            if e.event_type() == EventType::ActivityTaskCompleted
                && let Some(s) = e.attributes.activity_scheduled_event_id()
                && h.iter().any(|x| {
                    x.event_id == s
                        && matches!(&x.attributes, EventAttributes::ActivityTaskScheduled { activity_type, .. } if activity_type == "llm_call")
                })
            {
                llm_paid += 1;
            }
        }
        for a in &d.pending_activities {
            executions += a
                .attempts
                .iter()
                .filter(|r| r.started_time_ms.is_some())
                .count() as u32;
            retries += a.attempt.saturating_sub(1);
        }
        lines.push(format!(
            "{id}: {} · {} activity executions, {retries} of them retries, {:.1} s waited before retrying · {} events written",
            d.info.status.name(),
            executions,
            waited_ms as f64 / 1000.0,
            h.len()
        ));
        if llm_paid > 0 {
            lines.push(format!("  LLM calls paid: {llm_paid}"));
        }
    }
    if let (Ok(journal), Ok(accounts), Ok(in_flight)) = (
        lab.bank().journal(),
        lab.bank().accounts(),
        lab.bank().in_flight(),
    ) {
        let seeded: i64 = SEED_ACCOUNTS.iter().map(|(_, b)| b).sum();
        let total: i64 = accounts.iter().map(|a| a.balance).sum();
        let moved: i64 = journal.iter().map(|e| e.delta.abs()).sum();
        lines.push(format!(
            "money moved: {} movements, ${moved} in all",
            journal.len()
        ));
        lines.push(if total + in_flight == seeded {
            format!("lost: nothing — the accounts hold ${total}, ${in_flight} in flight, ${seeded} in all")
        } else {
            format!("LOST: the accounts hold ${total} + ${in_flight} in flight, not ${seeded}")
        });
    }
    lines.push(String::new());
    lines.push(
        "Esc closes this; r plays the scenario again from a fresh run. Every step is also a test: holdfast scenario run.".into(),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guided(toml: &str) -> Guided {
        Guided::new(Scenario::parse(toml, "t.toml").unwrap())
    }

    const KILL_STEP: &str = r#"
title = "t"
summary = "s"
app = "transfer"
[[step]]
say = "Kill it."
do = { action = "kill_worker" }
"#;

    /// Other keys stay allowed; the story notices them, and a step whose
    /// action has nothing to do (the worker is already dead) goes on.
    #[test]
    fn the_story_notices_keys_off_the_script() {
        let g = guided(KILL_STEP);
        assert_eq!(
            notice(&g, &Action::KillWorker, false).as_deref(),
            Some("the worker is already dead: the story goes on")
        );
        assert!(already_so(&g, &Action::KillWorker, false));
        assert_eq!(notice(&g, &Action::KillWorker, true), None);
        assert!(!already_so(&g, &Action::KillWorker, true));
        assert_eq!(
            notice(&g, &Action::HotSwapFix, true).as_deref(),
            Some("that was hot swap fix; the story waits for this step's key")
        );
        assert_eq!(
            ui_action_for(&Action::KillWorker),
            Some(UiAction::KillWorker)
        );
    }
}
