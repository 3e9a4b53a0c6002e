//! The lab's actions and faults, each a real failing path the engine then
//! handles: the deposit bug fixed by a hot swap, by a restart with fixed
//! code, across an engine crash; the LLM failing and slow; the PDF write
//! error; the worker killed mid-call.

use std::time::Duration;

use crate::common;
use holdfast::apps::bank::{self, PaymentDetails};
use holdfast::apps::faults::Fault;
use holdfast::apps::lab::{Action, Lab, LabEvent};
use holdfast::apps::research::{self, GenerateReportInput, Llm};
use holdfast::engine::{
    Clock, EngineConfig, EventAttributes, EventType, Failure, PendingActivityInfo,
    WorkflowExecutionStatus, WorkflowOutcome,
};

fn lab() -> (Lab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time());
    (Lab::open(config, Llm::Offline).unwrap(), dir)
}

use common::pending_activity as until_pending;

fn failure_message(a: &PendingActivityInfo) -> &str {
    a.last_failure
        .as_ref()
        .map(|f| f.message.as_str())
        .unwrap_or("")
}

async fn start_transfer(lab: &Lab) {
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(lab.engine(), bank::WORKFLOW_ID, &details)
        .await
        .unwrap();
}

fn deposit_started_identity(h: &[holdfast::engine::HistoryEvent]) -> (u32, String) {
    h.iter()
        .filter_map(|e| match &e.attributes {
            EventAttributes::ActivityTaskStarted {
                attempt, identity, ..
            } => Some((*attempt, identity.clone())),
            _ => None,
        })
        .nth(1)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn deposit_bug_then_hot_swap() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::DepositBug, true).unwrap();
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 3 && failure_message(a) == "This deposit has failed."
    })
    .await;
    let events = lab.apply(Action::HotSwapFix).await.unwrap();
    assert!(events.contains(&LabEvent::DepositSwapped {
        deposit: bank::DepositCode::Fixed
    }));
    let out = lab.engine().result(bank::WORKFLOW_ID, None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    assert_eq!(lab.bank().account("43-812").unwrap().balance, 250);
}

#[tokio::test(start_paused = true)]
async fn deposit_bug_then_restart_with_fixed_code() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::DepositBug, true).unwrap();
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 3
    })
    .await;
    let events = lab.apply(Action::RestartWorkerWithFix).await.unwrap();
    let Some(LabEvent::WorkersStarted { identity, deposit }) = events.last().cloned() else {
        panic!("{events:?}")
    };
    assert_eq!(deposit, bank::DepositCode::Fixed);
    let out = lab.engine().result(bank::WORKFLOW_ID, None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = lab.engine().history(bank::WORKFLOW_ID, None).await.unwrap();
    let (attempt, by) = deposit_started_identity(&h);
    assert!(attempt >= 3, "attempt {attempt}");
    assert_eq!(by, identity, "the restarted worker ran the deposit");
}

/// The engine crashes mid-transfer: reopened from disk, the run is still
/// there, still retrying; fixed, it completes and no money was lost.
#[tokio::test(start_paused = true)]
async fn engine_crash_mid_transfer_loses_nothing() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::DepositBug, true).unwrap();
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 2
    })
    .await;
    // A screen's handle on the engine, held across the crash.
    let screen = lab.engine().clone();
    let events = lab.apply(Action::CrashEngine).await.unwrap();
    assert_eq!(events[0], LabEvent::EngineCrashed);
    assert!(
        matches!(events[1], LabEvent::EngineRecovered { runs: 1, .. }),
        "{events:?}"
    );
    assert!(lab.workers_running());
    assert_eq!(lab.snapshot().engine_generation, 1);
    let d = screen.describe(bank::WORKFLOW_ID, None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Running);
    assert_eq!(
        lab.bank().account("85-150").unwrap().balance,
        1750,
        "withdrawn once"
    );
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 3
    })
    .await;
    lab.hot_swap_fix().unwrap();
    let out = screen.result(bank::WORKFLOW_ID, None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    assert_eq!(lab.bank().journal().unwrap().len(), 2);
}

async fn start_report(lab: &Lab, id: &str) {
    research::start_report(
        lab.engine(),
        id,
        &GenerateReportInput::new("Lighthouses").without_approval(),
    )
    .await
    .unwrap();
}

fn count(h: &[holdfast::engine::HistoryEvent], ty: EventType) -> usize {
    h.iter().filter(|e| e.event_type() == ty).count()
}

#[tokio::test(start_paused = true)]
async fn llm_failing_then_slow_then_healthy() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::LlmFailing, true).unwrap();
    lab.start_workers();
    start_report(&lab, "r").await;
    let a = until_pending(lab.engine(), "r", "llm_call", |a| a.attempt >= 3).await;
    assert!(failure_message(&a).contains("HTTP 503"), "{a:?}");
    lab.set_fault(Fault::LlmFailing, false).unwrap();
    lab.set_fault(Fault::LlmSlow, true).unwrap();
    let a = until_pending(lab.engine(), "r", "llm_call", |a| {
        failure_message(a) == "activity StartToClose timeout"
    })
    .await;
    assert!(a.attempt >= 4);
    lab.set_fault(Fault::LlmSlow, false).unwrap();
    let out = lab.engine().result("r", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
}

/// The PDF cannot be written: create_pdf fails its three attempts (the
/// tutorial's policy) and the run fails, but the LLM's answer is in
/// history, completed once.
#[tokio::test(start_paused = true)]
async fn pdf_write_error_fails_the_run_after_three_attempts() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::PdfWriteError, true).unwrap();
    lab.start_workers();
    start_report(&lab, "p").await;
    let WorkflowOutcome::Failed(f) = lab.engine().result("p", None).await.unwrap() else {
        panic!("expected failure")
    };
    let root: &Failure = f.root_cause();
    assert_eq!(root.error_type(), Some("PdfWriteError"));
    assert!(
        root.message.contains("fault: pdf-write-error"),
        "{}",
        root.message
    );
    let h = lab.engine().history("p", None).await.unwrap();
    assert_eq!(
        count(&h, EventType::ActivityTaskCompleted),
        1,
        "llm_call once"
    );
    let failed = h
        .iter()
        .find_map(|e| match &e.attributes {
            EventAttributes::ActivityTaskStarted { attempt, .. } if *attempt > 1 => Some(*attempt),
            _ => None,
        })
        .unwrap();
    assert_eq!(failed, 3);
    assert!(!lab.research().reports_dir().join("p.pdf").exists());
}

/// The worker dies while the model is thinking: nothing is recorded for
/// that attempt; it times out, and a new worker makes the call again.
#[tokio::test(start_paused = true)]
async fn worker_killed_mid_llm_call_is_retried_after_the_timeout() {
    let (mut lab, _dir) = lab();
    lab.set_offline_think(Duration::from_secs(10));
    lab.start_workers();
    start_report(&lab, "k").await;
    until_pending(lab.engine(), "k", "llm_call", |a| {
        a.state == holdfast::engine::PendingActivityState::Started
    })
    .await;
    lab.kill_workers();
    let a = until_pending(lab.engine(), "k", "llm_call", |a| a.attempt == 2).await;
    assert_eq!(failure_message(&a), "activity StartToClose timeout");
    lab.start_workers();
    let out = lab.engine().result("k", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
}

/// The worker stopped cleanly while the model thinks: the call finishes
/// inside the grace period (nothing is paid twice), and the report goes on
/// as soon as a worker is back, with no timeout.
#[tokio::test(start_paused = true)]
async fn worker_stopped_mid_llm_call_finishes_it_first() {
    let (mut lab, _dir) = lab();
    lab.set_offline_think(Duration::from_secs(5));
    lab.start_workers();
    start_report(&lab, "s").await;
    until_pending(lab.engine(), "s", "llm_call", |a| {
        a.state == holdfast::engine::PendingActivityState::Started
    })
    .await;
    let events = lab.apply(Action::StopWorker).await.unwrap();
    assert!(
        matches!(events[..], [LabEvent::WorkersStopped { .. }]),
        "{events:?}"
    );
    assert!(lab.snapshot().worker.is_none());
    lab.apply(Action::StartWorker).await.unwrap();
    let out = lab.engine().result("s", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = lab.engine().history("s", None).await.unwrap();
    let llm_started: Vec<_> = h
        .iter()
        .filter(|e| {
            matches!(
                &e.attributes,
                EventAttributes::ActivityTaskStarted { attempt: 1, .. }
            )
        })
        .collect();
    assert!(!llm_started.is_empty());
    assert!(
        !h.iter().any(|e| matches!(
            &e.attributes,
            EventAttributes::ActivityTaskStarted { attempt, .. } if *attempt > 1
        )),
        "no attempt was retried"
    );
    assert!(
        !h.iter()
            .any(|e| e.event_type() == holdfast::engine::EventType::WorkflowTaskTimedOut)
    );
}

/// Actions are data: a scenario names them as the key table does, and a
/// mistake in one is refused with what was expected.
#[test]
fn actions_read_from_data() {
    let a: Action =
        serde_json::from_str(r#"{"action":"set_fault","fault":"deposit-bug","on":true}"#).unwrap();
    assert_eq!(
        a,
        Action::SetFault {
            fault: Fault::DepositBug,
            on: true
        }
    );
    assert_eq!(a.name(), "set_fault");
    let a: Action = serde_json::from_str(r#"{"action":"kill_worker"}"#).unwrap();
    assert_eq!(a, Action::KillWorker);
    let unknown = serde_json::from_str::<Action>(r#"{"action":"explode"}"#).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown variant `explode`"),
        "{unknown}"
    );
    let typo = serde_json::from_str::<Action>(
        r#"{"action":"set_fault","fault":"deposit-bug","onn":true}"#,
    )
    .unwrap_err();
    assert!(typo.to_string().contains("unknown field `onn`"), "{typo}");
    let bad_fault =
        serde_json::from_str::<Action>(r#"{"action":"set_fault","fault":"gremlins","on":true}"#)
            .unwrap_err();
    assert!(bad_fault.to_string().contains("gremlins"), "{bad_fault}");
}

/// The switches and the code a worker runs are the code on disk: a new lab
/// on the same data directory (holdfast restarted) finds them as they were.
#[tokio::test(start_paused = true)]
async fn faults_survive_a_restart_of_holdfast() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time());
    {
        let mut lab = Lab::open(config.clone(), Llm::Offline).unwrap();
        lab.apply(Action::SetFault {
            fault: Fault::DepositBug,
            on: true,
        })
        .await
        .unwrap();
        lab.apply(Action::SetFault {
            fault: Fault::EmailOutage,
            on: true,
        })
        .await
        .unwrap();
    }
    let mut lab = Lab::reopen(config, Llm::Offline).await.unwrap();
    let snap = lab.snapshot();
    let on: Vec<Fault> = snap
        .faults
        .iter()
        .filter(|f| f.on)
        .map(|f| f.fault)
        .collect();
    assert_eq!(on, [Fault::DepositBug, Fault::EmailOutage]);
    assert_eq!(snap.deposit_on_disk, bank::DepositCode::Buggy);
    assert!(snap.worker.is_none());
    lab.apply(Action::StartWorker).await.unwrap();
    let snap = lab.snapshot();
    assert_eq!(snap.worker.unwrap().deposit, bank::DepositCode::Buggy);
    let q = lab.engine().describe_task_queue(bank::QUEUE);
    assert!(
        q.pollers.iter().all(|p| p.build_id == "deposit: buggy"),
        "{q:?}"
    );
}

/// "Retry now" skips the rest of the backoff: the next attempt starts at
/// once, with the attempt number it would have had.
#[tokio::test(start_paused = true)]
async fn retry_now_skips_the_backoff() {
    let (mut lab, _dir) = lab();
    lab.apply(Action::SetFault {
        fault: Fault::DepositBug,
        on: true,
    })
    .await
    .unwrap();
    lab.apply(Action::StartWorker).await.unwrap();
    let started = lab
        .apply(Action::StartTransfer {
            workflow_id: Some("t1".into()),
            from: None,
            to: None,
            amount: None,
            reference: None,
            max_attempts: Some(0),
            delay_secs: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(&started[0], LabEvent::WorkflowStarted { workflow_id, .. } if workflow_id == "t1")
    );
    // Attempt 4 waits 4 s (1, 2, 2, 2 s with the tutorial's 2 s maximum).
    let a = until_pending(lab.engine(), "t1", "deposit", |a| {
        a.attempt == 4 && a.state == holdfast::engine::PendingActivityState::Scheduled
    })
    .await;
    let due = a.next_attempt_schedule_time_ms.unwrap();
    let asked = lab.engine().now_ms();
    assert!(due > asked);
    let events = lab
        .apply(Action::RetryNow {
            workflow_id: "t1".into(),
            activity_id: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(&events[0], LabEvent::RetriedNow { .. }),
        "{events:?}"
    );
    let a = until_pending(lab.engine(), "t1", "deposit", |a| a.attempt == 5).await;
    let fourth = a.attempts.iter().find(|r| r.attempt == 4).unwrap();
    assert!(
        fourth.started_time_ms.unwrap() < due,
        "attempt 4 started at {:?}, before its backoff ended at {due}",
        fourth.started_time_ms
    );
    let err = lab
        .apply(Action::RetryNow {
            workflow_id: "nope".into(),
            activity_id: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
