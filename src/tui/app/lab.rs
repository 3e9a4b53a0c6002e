//! What a key means to the lab: the action it sends (with the selected
//! run filled in), the question a destructive one asks first, and the words
//! the status line says about what the lab did.

use super::App;
use crate::apps::bank::DepositCode;
use crate::apps::lab::{Action, LabEvent};
use crate::apps::research;
use crate::engine::SPEED_RANGE;
use crate::tui::action::UiAction;

impl App {
    pub(super) fn question(&self, action: &UiAction) -> String {
        let id = self
            .selected_id
            .clone()
            .unwrap_or_else(|| "the selected run".into());
        match action {
            UiAction::Terminate => {
                format!(
                    "Terminate {id}? Nothing more runs, no refund: cancel (C) is the way that refunds."
                )
            }
            UiAction::Reset => {
                format!(
                    "Reset {id} to its last workflow task? Its current run is terminated and a new one replays up to there."
                )
            }
            _ => {
                "Crash the engine? What is not on disk is lost; everything acknowledged comes back."
                    .into()
            }
        }
    }

    /// The lab action a key means here (with the selected run filled in).
    pub(super) fn lab_action(&self, action: UiAction) -> Option<Action> {
        let id = self.selected_id.clone().unwrap_or_default();
        Some(match action {
            UiAction::KillWorker => Action::KillWorker,
            UiAction::StopWorker => Action::StopWorker,
            UiAction::StartWorker => Action::StartWorker,
            UiAction::ToggleFault(fault) => {
                let on = self
                    .lab
                    .faults
                    .iter()
                    .find(|f| f.fault == fault)
                    .is_some_and(|f| f.on);
                Action::SetFault { fault, on: !on }
            }
            UiAction::HotSwapFix => Action::HotSwapFix,
            UiAction::RestartWorkerWithFix => Action::RestartWorkerWithFix,
            UiAction::CrashEngine => Action::CrashEngine,
            UiAction::RetryNow => Action::RetryNow {
                workflow_id: id,
                activity_id: None,
            },
            UiAction::Approve | UiAction::EditDraft => {
                let decision = if action == UiAction::Approve {
                    research::UserDecision::Keep
                } else {
                    research::UserDecision::Edit
                };
                let signal = research::UserDecisionSignal {
                    decision,
                    additional_prompt: if action == UiAction::EditDraft {
                        "Make it shorter.".into()
                    } else {
                        String::new()
                    },
                };
                Action::Signal {
                    workflow_id: id,
                    name: research::SIGNAL.into(),
                    input: serde_json::to_value(signal).unwrap_or_default(),
                }
            }
            UiAction::Cancel => Action::Cancel { workflow_id: id },
            UiAction::Terminate => Action::Terminate {
                workflow_id: id,
                reason: Some("terminated from holdfast".into()),
            },
            // To the last workflow task, as `temporal workflow reset --type LastWorkflowTask`.
            UiAction::Reset => Action::Reset {
                workflow_id: id,
                event_id: self.run.as_ref().and_then(|r| {
                    r.history
                        .iter()
                        .rev()
                        .find(|e| {
                            matches!(
                                e.attributes,
                                crate::engine::EventAttributes::WorkflowTaskCompleted { .. }
                            )
                        })
                        .map(|e| e.event_id)
                }),
            },
            UiAction::SpeedUp | UiAction::SpeedDown => {
                const STEPS: [f64; 5] = [1.0, 2.0, 5.0, 10.0, 60.0];
                let i = STEPS.iter().position(|s| *s >= self.lab.speed).unwrap_or(0);
                let next = if action == UiAction::SpeedUp {
                    STEPS[(i + 1).min(STEPS.len() - 1)]
                } else {
                    STEPS[i.saturating_sub(1)]
                };
                Action::SetSpeed {
                    speed: next.clamp(SPEED_RANGE.0, SPEED_RANGE.1),
                }
            }
            _ => return None,
        })
    }
}

/// One line for the status line about what the lab did.
pub(super) fn describe_lab_event(e: &LabEvent) -> String {
    match e {
        LabEvent::WorkflowStarted { workflow_id, .. } => format!("started {workflow_id}"),
        LabEvent::WorkersStarted { deposit, .. } => {
            format!("worker started (deposit: {})", deposit_words(*deposit))
        }
        LabEvent::WorkersKilled { .. } => {
            "worker killed: what it ran is lost; its attempts time out, its next task waits 10 s on its sticky queue".into()
        }
        LabEvent::WorkersStopped { .. } => {
            "worker stopped cleanly: its sticky queue is released, so the next worker (w) takes over at once, with no 10 s wait".into()
        }
        LabEvent::FaultSet { fault, on } => {
            format!("{} {}", fault.name(), if *on { "on" } else { "off" })
        }
        LabEvent::DepositSwapped { deposit } => format!(
            "the {} deposit is swapped into the running worker",
            deposit_words(*deposit)
        ),
        LabEvent::EngineCrashed => "engine crashed".into(),
        LabEvent::EngineRecovered { runs, elapsed } => format!(
            "engine recovered {runs} runs in {} ms",
            elapsed.as_millis()
        ),
        LabEvent::SpeedSet { speed } => format!("clock runs {speed}× real time"),
        LabEvent::RetriedNow { activity_id, .. } => {
            format!("activity {activity_id} retried now, without waiting out its backoff")
        }
        LabEvent::Signaled { workflow_id, name } => format!("signal {name} sent to {workflow_id}"),
        LabEvent::QueryAnswered { answer, .. } => format!("answer: {answer}"),
        LabEvent::CancelRequested { workflow_id } => {
            format!("cancel requested for {workflow_id}: its code decides (the transfer refunds)")
        }
        LabEvent::Terminated { workflow_id } => format!("{workflow_id} terminated"),
        LabEvent::Reset { workflow_id, .. } => format!("{workflow_id} reset: a new run started"),
    }
}

pub fn deposit_words(d: DepositCode) -> &'static str {
    match d {
        DepositCode::Buggy => "buggy",
        DepositCode::Fixed => "fixed",
    }
}
