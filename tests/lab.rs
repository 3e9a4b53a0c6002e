//! The lab's actions and faults, each a real failing path the engine then
//! handles: the deposit bug fixed by a hot swap, by a restart with fixed
//! code, across an engine crash; the LLM failing and slow; the PDF write
//! error; the worker killed mid-call.

use std::time::Duration;

use holdfast::apps::bank::{self, PaymentDetails};
use holdfast::apps::faults::Fault;
use holdfast::apps::lab::{Lab, LabEvent};
use holdfast::apps::research::{self, GenerateReportInput, Llm};
use holdfast::engine::{
    Clock, Engine, EngineConfig, EventAttributes, EventType, Failure, PendingActivityInfo,
    WorkflowExecutionStatus, WorkflowOutcome,
};

fn lab() -> (Lab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time());
    (Lab::open(config, Llm::Offline).unwrap(), dir)
}

/// Waits (on the virtual clock) until `id`'s pending `activity` satisfies `f`.
async fn until_pending(
    engine: &Engine,
    id: &str,
    activity: &str,
    f: impl Fn(&PendingActivityInfo) -> bool,
) -> PendingActivityInfo {
    for _ in 0..2_000 {
        let d = engine.describe(id, None).await.unwrap();
        if let Some(a) = d
            .pending_activities
            .iter()
            .find(|a| a.activity_type == activity)
            && f(a)
        {
            return a.clone();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{id}: {activity} never got there");
}

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
    lab.set_fault(Fault::DepositBug, true);
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 3 && failure_message(a) == "This deposit has failed."
    })
    .await;
    let events = lab.hot_swap_fix();
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
    lab.set_fault(Fault::DepositBug, true);
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 3
    })
    .await;
    let events = lab.restart_workers_with_fix();
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
    lab.set_fault(Fault::DepositBug, true);
    lab.start_workers();
    start_transfer(&lab).await;
    until_pending(lab.engine(), bank::WORKFLOW_ID, "deposit", |a| {
        a.attempt >= 2
    })
    .await;
    let (mut lab, events) = lab.crash_engine().await.unwrap();
    assert_eq!(events[0], LabEvent::EngineCrashed);
    assert_eq!(events[1], LabEvent::EngineRecovered);
    assert!(lab.workers_running());
    let d = lab
        .engine()
        .describe(bank::WORKFLOW_ID, None)
        .await
        .unwrap();
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
    lab.hot_swap_fix();
    let out = lab.engine().result(bank::WORKFLOW_ID, None).await.unwrap();
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
    lab.set_fault(Fault::LlmFailing, true);
    lab.start_workers();
    start_report(&lab, "r").await;
    let a = until_pending(lab.engine(), "r", "llm_call", |a| a.attempt >= 3).await;
    assert!(failure_message(&a).contains("HTTP 503"), "{a:?}");
    lab.set_fault(Fault::LlmFailing, false);
    lab.set_fault(Fault::LlmSlow, true);
    let a = until_pending(lab.engine(), "r", "llm_call", |a| {
        failure_message(a) == "activity StartToClose timeout"
    })
    .await;
    assert!(a.attempt >= 4);
    lab.set_fault(Fault::LlmSlow, false);
    let out = lab.engine().result("r", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
}

/// The PDF cannot be written: create_pdf fails its three attempts (the
/// tutorial's policy) and the run fails, but the LLM's answer is in
/// history, completed once.
#[tokio::test(start_paused = true)]
async fn pdf_write_error_fails_the_run_after_three_attempts() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::PdfWriteError, true);
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
