//! Checks, observed on the engine's and the apps' real records: a run's
//! status and history, an activity's attempts, the bank's balances and
//! journal, the report's files.

use super::format::{Check, FileKind, RunStatus};
use crate::apps::bank::SEED_ACCOUNTS;
use crate::apps::files::file_name_for_run;
use crate::apps::lab::Lab;
use crate::engine::{EventAttributes, EventType, HistoryEvent, WorkflowExecutionStatus};

/// A check as observed: whether it holds, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub holds: bool,
    pub seen: String,
}

fn seen(holds: bool, seen: impl Into<String>) -> Observed {
    Observed {
        holds,
        seen: seen.into(),
    }
}

/// The check's name, as a file writes it.
pub fn name(c: &Check) -> &'static str {
    match c {
        Check::Status { .. } => "status",
        Check::Attempt { .. } => "attempt",
        Check::Event { .. } => "event",
        Check::Ran { .. } => "ran",
        Check::Completed { .. } => "completed",
        Check::Balance { .. } => "balance",
        Check::MoneyConserved => "money_conserved",
        Check::File { .. } => "file",
        Check::NoWorker => "no_worker",
        Check::Running { .. } => "running",
        Check::HistoryLength { .. } => "history_length",
    }
}

fn status_of(s: RunStatus) -> WorkflowExecutionStatus {
    match s {
        RunStatus::Running => WorkflowExecutionStatus::Running,
        RunStatus::Completed => WorkflowExecutionStatus::Completed,
        RunStatus::Failed => WorkflowExecutionStatus::Failed,
        RunStatus::Canceled => WorkflowExecutionStatus::Canceled,
        RunStatus::Terminated => WorkflowExecutionStatus::Terminated,
        RunStatus::TimedOut => WorkflowExecutionStatus::TimedOut,
        RunStatus::ContinuedAsNew => WorkflowExecutionStatus::ContinuedAsNew,
    }
}

/// The scheduled event ids of the activities of `activity_type`.
fn scheduled_of(history: &[HistoryEvent], activity_type: &str) -> Vec<u64> {
    history
        .iter()
        .filter(|e| {
            matches!(&e.attributes, EventAttributes::ActivityTaskScheduled { activity_type: t, .. } if t == activity_type)
        })
        .map(|e| e.event_id)
        .collect()
}

/// The attempt numbers of the closed activities of `activity_type` (one
/// ActivityTaskStarted each: its attempt is how many times it ran).
fn closed_attempts<'a>(
    history: &'a [HistoryEvent],
    activity_type: &str,
) -> impl Iterator<Item = u32> + 'a {
    let ids = scheduled_of(history, activity_type);
    history.iter().filter_map(move |e| match &e.attributes {
        EventAttributes::ActivityTaskStarted {
            scheduled_event_id,
            attempt,
            ..
        } if ids.contains(scheduled_event_id) => Some(*attempt),
        _ => None,
    })
}

/// Whether `json` holds every key of `want` with the same value (tables
/// compared the same way, as a subset).
fn has(json: &serde_json::Value, want: &toml::Table) -> bool {
    let Ok(want) = serde_json::to_value(want) else {
        return false;
    };
    fn subset(have: &serde_json::Value, want: &serde_json::Value) -> bool {
        match (have, want) {
            (serde_json::Value::Object(h), serde_json::Value::Object(w)) => w
                .iter()
                .all(|(k, v)| h.get(k).is_some_and(|x| subset(x, v))),
            (h, w) => h == w,
        }
    }
    subset(json, &want)
}

/// Observes a check now.
pub async fn observe(lab: &Lab, check: &Check) -> Observed {
    let engine = lab.engine();
    let run = |id: &str| {
        let id = id.to_string();
        async move {
            let d = engine.describe(&id, None).await?;
            let h = engine.history(&id, Some(&d.info.run_id)).await?;
            Ok::<_, crate::engine::EngineError>((d, h))
        }
    };
    match check {
        Check::Status { workflow, is } => match engine.describe(workflow, None).await {
            Ok(d) => seen(d.info.status == status_of(*is), d.info.status.name()),
            Err(e) => seen(false, e.to_string()),
        },
        Check::Attempt {
            workflow,
            activity,
            at_least,
        } => match run(workflow).await {
            Ok((d, h)) => {
                let pending = d
                    .pending_activities
                    .iter()
                    .filter(|a| &a.activity_type == activity)
                    .map(|a| a.attempt);
                let max = pending
                    .chain(closed_attempts(&h, activity))
                    .max()
                    .unwrap_or(0);
                seen(max >= *at_least, format!("attempt {max}"))
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::Event {
            workflow,
            event_type,
            activity,
            attributes,
        } => match run(workflow).await {
            Ok((_, h)) => {
                let ids = activity.as_deref().map(|a| scheduled_of(&h, a));
                let n = h
                    .iter()
                    .filter(|e| e.event_type().name() == event_type)
                    .filter(|e| match &ids {
                        None => true,
                        Some(ids) => {
                            ids.contains(&e.event_id)
                                || e.attributes
                                    .activity_scheduled_event_id()
                                    .is_some_and(|s| ids.contains(&s))
                        }
                    })
                    .filter(|e| {
                        attributes
                            .as_ref()
                            .is_none_or(|want| has(&e.attributes.to_json(), want))
                    })
                    .count();
                seen(n > 0, format!("{n} {event_type} event(s)"))
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::Ran {
            workflow,
            activity,
            times,
        } => match run(workflow).await {
            Ok((d, h)) => {
                // A closed activity ran as many times as its last attempt's number.
                let closed: u32 = closed_attempts(&h, activity).sum();
                // A pending one: its attempts that started.
                let pending: u32 = d
                    .pending_activities
                    .iter()
                    .filter(|a| &a.activity_type == activity)
                    .map(|a| {
                        a.attempts
                            .iter()
                            .filter(|r| r.started_time_ms.is_some())
                            .count() as u32
                    })
                    .sum();
                let n = closed + pending;
                seen(n == *times, format!("ran {n} time(s)"))
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::Completed {
            workflow,
            activity,
            times,
        } => match run(workflow).await {
            Ok((_, h)) => {
                let ids = scheduled_of(&h, activity);
                let n = h
                    .iter()
                    .filter(|e| e.event_type() == EventType::ActivityTaskCompleted)
                    .filter(|e| {
                        e.attributes
                            .activity_scheduled_event_id()
                            .is_some_and(|s| ids.contains(&s))
                    })
                    .count() as u32;
                seen(n == *times, format!("completed {n} time(s)"))
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::Balance { account, equals } => match lab.bank().account(account) {
            Ok(a) => seen(a.balance == *equals, format!("${}", a.balance)),
            Err(e) => seen(false, e.to_string()),
        },
        Check::MoneyConserved => {
            let seeded: i64 = SEED_ACCOUNTS.iter().map(|(_, b)| b).sum();
            match (lab.bank().accounts(), lab.bank().in_flight()) {
                (Ok(a), Ok(f)) => {
                    let total: i64 = a.iter().map(|a| a.balance).sum();
                    seen(
                        total + f == seeded,
                        format!("accounts ${total} + in flight ${f}, seeded ${seeded}"),
                    )
                }
                (Err(e), _) | (_, Err(e)) => seen(false, e.to_string()),
            }
        }
        Check::File { workflow, kind } => match engine.describe(workflow, None).await {
            Ok(d) => {
                let deps = lab.research();
                let (dir, ext) = match kind {
                    FileKind::Pdf => (deps.reports_dir(), "pdf"),
                    FileKind::Eml => (deps.outbox_dir(), "eml"),
                };
                let path = dir.join(file_name_for_run(workflow, &d.info.run_id, ext));
                let there = path.is_file();
                seen(
                    there,
                    format!(
                        "{} {}",
                        path.display(),
                        if there { "exists" } else { "missing" }
                    ),
                )
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::NoWorker => {
            let none = lab.snapshot().worker.is_none();
            seen(none, if none { "no worker" } else { "a worker runs" })
        }
        Check::Running { workflow, activity } => match engine.describe(workflow, None).await {
            Ok(d) => {
                let running = d.pending_activities.iter().any(|a| {
                    &a.activity_type == activity
                        && a.state == crate::engine::PendingActivityState::Started
                });
                seen(running, if running { "running" } else { "not running" })
            }
            Err(e) => seen(false, e.to_string()),
        },
        Check::HistoryLength { workflow, events } => match engine.describe(workflow, None).await {
            Ok(d) => seen(
                d.info.history_length == *events,
                format!("{} events", d.info.history_length),
            ),
            Err(e) => seen(false, e.to_string()),
        },
    }
}
