//! Cancel is a request the workflow code answers; terminate is immediate;
//! a failing workflow task leaves one event and the run Running. Compared
//! with `workflow-cancelled-during-timer`, `terminated-with-activity-retrying`,
//! `f-workflow-task-failure-mid` and `f2-nondeterminism-workflow-task-failed`.

use crate::common;

use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::engine::{
    ActivityContext, ApplicationError, Engine, EngineError, EventType, Payload, RetryPolicy,
    StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError, WorkflowExecutionStatus,
    WorkflowOutcome, activity_options,
};

const QUEUE: &str = "lab";

async fn start(engine: &Engine, id: &str, ty: &str) {
    common::start(engine, id, ty, QUEUE, ()).await;
}

/// Cancelled while sleeping 60 s: CancelRequested, a workflow task, then
/// TimerCanceled and WorkflowExecutionCanceled; status Canceled.
#[tokio::test(start_paused = true)]
async fn workflow_cancelled_during_timer() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker"));
    w.register_workflow("SleepLong", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(60)).await?;
        Ok::<_, WorkflowError>("woke".to_string())
    });
    let _w = w.start();
    start(&engine, "sleeper", "SleepLong").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    engine
        .cancel("sleeper", None, "temporal-cli")
        .await
        .unwrap();
    let out = engine.result("sleeper", None).await.unwrap();
    assert_eq!(out, WorkflowOutcome::Canceled);
    let h = engine.history("sleeper", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("workflow-cancelled-during-timer")
    );
    let d = engine.describe("sleeper", None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Canceled);
    let err = engine.cancel("sleeper", None, "cli").await.unwrap_err();
    assert!(matches!(err, EngineError::AlreadyCompleted { .. }));
}

/// Workflow code may handle the cancel request itself and complete normally.
#[tokio::test(start_paused = true)]
async fn cancel_is_a_request_the_code_may_handle() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "w"));
    w.register_workflow("Stubborn", |ctx: WfContext, _: ()| async move {
        match ctx.sleep(Duration::from_secs(60)).await {
            Ok(()) => Ok::<_, WorkflowError>("slept".to_string()),
            Err(WorkflowError::Canceled) => Ok("cleaned up after cancel".to_string()),
            Err(e) => Err(e),
        }
    });
    let _w = w.start();
    start(&engine, "stubborn", "Stubborn").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    engine.cancel("stubborn", None, "cli").await.unwrap();
    let out = engine.result("stubborn", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("cleaned up after cancel").unwrap())
    );
}

/// Terminating a run whose activity is retrying writes one event and nothing
/// for the activity; the retrying attempt's late result is rejected.
#[tokio::test(start_paused = true)]
async fn terminated_with_activity_retrying() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker"));
    w.register_workflow("StuckRetrying", |ctx: WfContext, _: ()| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(5))
            .retry(RetryPolicy {
                maximum_interval: Duration::from_secs(30),
                ..RetryPolicy::default()
            });
        let r: () = ctx.activity("always_fails", &(), o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("always_fails", |ctx: ActivityContext, _: ()| async move {
        ctx.sleep(Duration::from_millis(500)).await;
        Err::<(), _>(ApplicationError::retryable("AlwaysError", "always fails"))
    });
    let w = w.start();
    start(&engine, "stuck-retrying", "StuckRetrying").await;
    // attempts at 0, 1.5, 4 and 8.5 s, each failing 0.5 s in: attempt 4 is running at 8.7 s
    tokio::time::sleep(Duration::from_millis(8_700)).await;
    engine
        .terminate(
            "stuck-retrying",
            None,
            "lab: stop stuck retries",
            "temporal-cli",
        )
        .await
        .unwrap();
    let h = engine.history("stuck-retrying", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("terminated-with-activity-retrying")
    );
    let out = engine.result("stuck-retrying", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Terminated {
            reason: "lab: stop stuck retries".into()
        }
    );
    // As Temporal's describe of a terminated run: the activity is still
    // listed (its attempt and last failure), with no next attempt.
    let d = engine.describe("stuck-retrying", None).await.unwrap();
    let p = d.pending_activities.first().expect("still listed");
    assert_eq!(p.attempt, 4);
    assert!(p.last_failure.is_some());
    assert_eq!(p.next_attempt_schedule_time_ms, None);
    let retrying = holdfast::engine::ListFilter {
        retrying: true,
        ..Default::default()
    };
    let listed = engine.list(&retrying, 10, None).await.unwrap();
    assert!(listed.executions.is_empty(), "a closed run is not retrying");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.stats()
            .results_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        engine.history("stuck-retrying", None).await.unwrap().len(),
        h.len()
    );
}

/// A bug in workflow code: one WorkflowTaskFailed (unhandled failure), then
/// nothing while it keeps failing; the run stays Running.
#[tokio::test(start_paused = true)]
async fn f_workflow_task_failure_mid() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker"));
    w.register_workflow("BuggyWf", |_ctx: WfContext, _: ()| async move {
        if true {
            panic!("bug in workflow code (not a Temporal failure)");
        }
        Ok::<(), WorkflowError>(())
    });
    let _w = w.start();
    start(&engine, "buggy", "BuggyWf").await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let h = engine.history("buggy", None).await.unwrap();
    let reference = signature_of_reference("f-workflow-task-failure-mid");
    // The failure type is the language's (RuntimeError in Python, Panic here): compare the rest.
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| {
                l.split(" failure=").next().unwrap().to_string()
                    + if l.contains(
                        "cause=WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE",
                    ) {
                        " UNHANDLED"
                    } else {
                        ""
                    }
            })
            .collect()
    };
    assert_eq!(strip(signature_of(&h)), strip(reference));
    let d = engine.describe("buggy", None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Running);
    let wt = d.pending_workflow_task.unwrap();
    // attempts at 0 s, 0 s, 10 s, 20 s, 35 s (Temporal's observed cadence)
    assert_eq!(wt.attempt, 6, "attempt after 40 s");
}

/// Version 1 of `NdWf`: an activity, then wait for `signal`.
fn v1_activity_then_signal(
    engine: &Engine,
    signal: &'static str,
) -> holdfast::engine::WorkerHandle {
    let mut v1 = Worker::new(engine, WorkerOptions::new(QUEUE, "lab-worker-v1"));
    v1.register_workflow("NdWf", move |ctx: WfContext, _: ()| async move {
        let o = activity_options().start_to_close(Duration::from_secs(5));
        let _: String = ctx.activity("step", &"a", o).await?;
        ctx.signal_channel::<serde_json::Value>(signal)
            .recv()
            .await?;
        Ok::<_, WorkflowError>("v1 done".to_string())
    });
    v1.register_activity("step", |_: ActivityContext, s: String| async move {
        Ok::<_, ApplicationError>(s)
    });
    v1.start()
}

/// v1 ran an activity then waited for a signal; v2 starts with a timer. The
/// signal's workflow task first waits on the killed v1's sticky queue and
/// times out (SCHEDULE_TO_START, 10 s), then fails NON_DETERMINISTIC on v2,
/// naming the event.
#[tokio::test(start_paused = true)]
async fn f2_nondeterminism_workflow_task_failed() {
    let (engine, _dir) = virtual_engine();
    let v1 = v1_activity_then_signal(&engine, "go");
    start(&engine, "nd-wf", "NdWf").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    v1.kill();
    let mut v2 = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker-v2"));
    v2.register_workflow("NdWf", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(1)).await?;
        Ok::<_, WorkflowError>("v2".to_string())
    });
    let _v2 = v2.start();
    engine
        .signal(
            "nd-wf",
            None,
            "go",
            Payload::from_value("x").unwrap(),
            "cli",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let h = engine.history("nd-wf", None).await.unwrap();
    let cut = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| l.split(" failure=").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        cut(signature_of(&h)),
        cut(signature_of_reference(
            "f2-nondeterminism-workflow-task-failed"
        ))
    );
    let failed = h
        .iter()
        .find(|e| e.event_type() == EventType::WorkflowTaskFailed)
        .unwrap();
    let holdfast::engine::EventAttributes::WorkflowTaskFailed { failure, .. } = &failed.attributes
    else {
        unreachable!()
    };
    assert!(
        failure
            .message
            .contains("[TMPRL1100] Nondeterminism error: history event 5 is ActivityTaskScheduled"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("StartTimer"),
        "{}",
        failure.message
    );
}

/// Execution timeout 3 s on a workflow sleeping 10 s: WorkflowExecutionTimedOut
/// straight after TimerStarted (no workflow task), status TimedOut; the task
/// timeout is clamped to the run timeout.
#[tokio::test(start_paused = true)]
async fn workflow_execution_timed_out() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker"));
    w.register_workflow("Slow", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(10)).await?;
        Ok::<_, WorkflowError>(())
    });
    let _w = w.start();
    let mut o = StartWorkflowOptions::new(
        "times-out",
        "Slow",
        QUEUE,
        Payload::from_value(&()).unwrap(),
    );
    o.execution_timeout = Some(Duration::from_secs(3));
    let t0 = engine.now_ms();
    engine.start_workflow(o).await.unwrap();
    let out = engine.result("times-out", None).await.unwrap();
    assert_eq!(out, WorkflowOutcome::TimedOut);
    let h = engine.history("times-out", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("workflow-execution-timed-out")
    );
    assert_eq!(h.last().unwrap().event_time_ms - t0, 3_000);
    let holdfast::engine::EventAttributes::WorkflowExecutionStarted {
        workflow_execution_timeout,
        workflow_run_timeout,
        workflow_task_timeout,
        ..
    } = &h[0].attributes
    else {
        unreachable!()
    };
    assert_eq!(*workflow_execution_timeout, Duration::from_secs(3));
    assert_eq!(*workflow_run_timeout, Duration::from_secs(3));
    assert_eq!(*workflow_task_timeout, Duration::from_secs(3));
    let d = engine.describe("times-out", None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::TimedOut);
}

/// Past the history count limit the run is terminated with Temporal's reason
/// (limits lowered here from 10,240 / 51,200 events).
#[tokio::test(start_paused = true)]
async fn history_count_limit_terminates_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = holdfast::engine::EngineConfig::new(dir.path().join("data"))
        .clock(holdfast::engine::Clock::virtual_time());
    cfg.history_limits = holdfast::engine::HistoryLimits {
        count_warn: 20,
        count_error: 40,
        ..Default::default()
    };
    let engine = Engine::open(cfg).unwrap();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "w"));
    w.register_workflow("Forever", |ctx: WfContext, _: ()| async move {
        loop {
            ctx.sleep(Duration::from_secs(1)).await?;
            if ctx.is_cancel_requested() {
                return Ok::<(), WorkflowError>(());
            }
        }
    });
    let _w = w.start();
    start(&engine, "forever", "Forever").await;
    let out = engine.result("forever", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Terminated {
            reason: "Workflow history count exceeds limit.".into()
        }
    );
    let h = engine.history("forever", None).await.unwrap();
    // one transition past the limit (up to 3 events here), then the termination
    assert!(
        (41..=44).contains(&h.len()),
        "terminated right past the limit, had {}",
        h.len()
    );
    assert_eq!(
        h.last().unwrap().event_type(),
        EventType::WorkflowExecutionTerminated
    );
}

/// Continue-as-new: run 1 closes with WorkflowExecutionContinuedAsNew (as
/// `continue-as-new-run1`), the next run links back to it and to the first
/// run, chained runs start ≥ 1 s apart, and `result` follows the chain to
/// the final run (as `continue-as-new-run3-final`).
#[tokio::test(start_paused = true)]
async fn continue_as_new_chain() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker"));
    w.register_workflow("ContinueAsNewWf", |ctx: WfContext, n: u32| async move {
        if n < 2 {
            return Err(ctx.continue_as_new(&(n + 1)));
        }
        Ok::<_, WorkflowError>(format!("final run n={n}"))
    });
    let _w = w.start();
    let first = engine
        .start_workflow(StartWorkflowOptions::new(
            "can-wf",
            "ContinueAsNewWf",
            QUEUE,
            Payload::from_value(&0).unwrap(),
        ))
        .await
        .unwrap();
    let out = engine.result("can-wf", Some(&first.run_id)).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("final run n=2").unwrap())
    );
    let run1 = engine.history("can-wf", Some(&first.run_id)).await.unwrap();
    assert_eq!(
        signature_of(&run1),
        signature_of_reference("continue-as-new-run1")
    );
    let last = engine.history("can-wf", None).await.unwrap();
    assert_eq!(
        signature_of(&last),
        signature_of_reference("continue-as-new-run3-final")
    );
    let holdfast::engine::EventAttributes::WorkflowExecutionStarted {
        first_execution_run_id,
        continued_execution_run_id,
        input,
        ..
    } = &last[0].attributes
    else {
        unreachable!()
    };
    assert_eq!(first_execution_run_id, &first.run_id);
    assert!(continued_execution_run_id.is_some());
    assert_eq!(input.as_json(), "2");
    let runs = engine.list(&Default::default(), 10, None).await.unwrap();
    let statuses: Vec<_> = runs.executions.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            WorkflowExecutionStatus::Completed,
            WorkflowExecutionStatus::ContinuedAsNew,
            WorkflowExecutionStatus::ContinuedAsNew
        ]
    );
    // Each run's first workflow task starts at least 1 s after the previous one's.
    let mut task_starts = Vec::new();
    for e in runs.executions.iter().rev() {
        let h = engine.history("can-wf", Some(&e.run_id)).await.unwrap();
        task_starts.push(h[2].event_time_ms);
    }
    assert!(
        task_starts.windows(2).all(|w| w[1] - w[0] >= 1_000),
        "{task_starts:?}"
    );
}

/// Reset to the first workflow task after a nondeterminism failure: the new
/// run copies events 1–3, records WorkflowTaskFailed RESET_WORKFLOW
/// ("root: <reason>"), re-applies the later signal and runs v2 code to
/// completion (as `reset-first-workflow-task-new-run`); the old run is Terminated.
#[tokio::test(start_paused = true)]
async fn reset_first_workflow_task_new_run() {
    let (engine, _dir) = virtual_engine();
    let v1 = v1_activity_then_signal(&engine, "proceed");
    let old = engine
        .start_workflow(StartWorkflowOptions::new(
            "nd-wf2",
            "NdWf",
            QUEUE,
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    v1.kill();
    let mut v2 = Worker::new(&engine, WorkerOptions::new(QUEUE, "lab-worker-v2"));
    v2.register_workflow("NdWf", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(1)).await?;
        Ok::<_, WorkflowError>("nd done".to_string())
    });
    let _v2 = v2.start();
    engine
        .signal(
            "nd-wf2",
            None,
            "proceed",
            Payload::from_value(&()).unwrap(),
            "temporal-cli",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Not a workflow-task event: refused with a clear error.
    let err = engine.reset("nd-wf2", None, 5, "x").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("reset needs a WorkflowTaskCompleted"),
        "{err}"
    );
    let new = engine
        .reset("nd-wf2", None, 4, "lab: reset after nondeterminism")
        .await
        .unwrap();
    assert_ne!(new.run_id, old.run_id);
    let out = engine.result("nd-wf2", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("nd done").unwrap())
    );
    let h = engine.history("nd-wf2", None).await.unwrap();
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| l.split(" failure=").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strip(signature_of(&h)),
        strip(signature_of_reference("reset-first-workflow-task-new-run"))
    );
    let holdfast::engine::EventAttributes::WorkflowTaskFailed {
        failure, identity, ..
    } = &h[3].attributes
    else {
        unreachable!()
    };
    assert_eq!(failure.message, "root: lab: reset after nondeterminism");
    assert_eq!(identity, "history-service");
    let old_outcome = engine.result("nd-wf2", Some(&old.run_id)).await.unwrap();
    assert_eq!(
        old_outcome,
        WorkflowOutcome::Terminated {
            reason: "root: lab: reset after nondeterminism".into()
        }
    );
}

/// A run waiting for a signal (a report waiting for approval) is canceled
/// by a cancel request, as a Temporal SDK's wait raises a cancellation; a
/// wait begun after the request (cleanup) is not canceled again.
#[tokio::test(start_paused = true)]
async fn cancel_reaches_code_waiting_for_a_signal() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "w"));
    w.register_workflow("Approval", |ctx: WfContext, _: ()| async move {
        let approvals = ctx.signal_channel::<String>("approve");
        match approvals.recv().await {
            Ok(who) => Ok::<_, WorkflowError>(format!("approved by {who}")),
            Err(WorkflowError::Canceled) => {
                // Cleanup after the cancel still waits normally.
                ctx.sleep(Duration::from_secs(1)).await?;
                Err(WorkflowError::Canceled)
            }
            Err(e) => Err(e),
        }
    });
    let _w = w.start();
    start(&engine, "approval", "Approval").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    engine.cancel("approval", None, "cli").await.unwrap();
    let out = engine.result("approval", None).await.unwrap();
    assert_eq!(out, WorkflowOutcome::Canceled);
    let h = engine.history("approval", None).await.unwrap();
    let types: Vec<_> = h.iter().map(|e| e.event_type()).collect();
    assert!(types.contains(&EventType::TimerFired), "{types:?}");
}
