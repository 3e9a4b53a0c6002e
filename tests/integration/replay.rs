//! Replay: a worker with no cached state rebuilds workflow state from
//! history, never calling a completed activity again; code that no longer
//! matches history fails the workflow task with a nondeterminism error; a
//! panic in workflow code fails the task, never the engine; activity
//! failures reach workflow code as typed errors it can catch.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::virtual_engine;
use holdfast::engine::{
    ActivityContext, ApplicationError, Engine, EventAttributes, EventType, Payload, RetryPolicy,
    WfContext, Worker, WorkerHandle, WorkerOptions, WorkflowError, WorkflowExecutionStatus,
    WorkflowOutcome, WorkflowTaskFailedCause, activity_options,
};

const QUEUE: &str = "lab";

fn opts() -> holdfast::engine::ActivityOptions {
    activity_options().start_to_close(Duration::from_secs(5))
}

async fn start(engine: &Engine, id: &str, ty: &str, input: serde_json::Value) {
    common::start(engine, id, ty, QUEUE, input).await;
}

/// Waits, on the feed, until `pred` holds for the run's history.
async fn wait_for(
    engine: &Engine,
    id: &str,
    pred: impl Fn(&[holdfast::engine::HistoryEvent]) -> bool,
) {
    common::history_until(engine, id, pred).await;
}

fn count(h: &[holdfast::engine::HistoryEvent], t: EventType) -> usize {
    h.iter().filter(|e| e.event_type() == t).count()
}

/// Worker A completes step 1 and is killed while step 2 runs; worker B,
/// with no cached state, replays the history: step 1 is not called again
/// (exactly one call in all), and B reports the events it replayed.
#[tokio::test(start_paused = true)]
async fn killed_worker_replacement_replays_without_recalling_completed_activity() {
    let (engine, _dir) = virtual_engine();
    let step1 = Arc::new(AtomicU32::new(0));
    let make = |identity: &str, step1: Arc<AtomicU32>| -> WorkerHandle {
        let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, identity));
        w.register_workflow("TwoSteps", |ctx: WfContext, _: ()| async move {
            let a: String = ctx.activity("step1", &(), opts()).await?;
            let b: String = ctx.activity("step2", &(), opts()).await?;
            Ok::<_, WorkflowError>(format!("{a}+{b}"))
        });
        w.register_activity("step1", move |_: ActivityContext, _: ()| {
            step1.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ApplicationError>("one".to_string()) }
        });
        w.register_activity("step2", |ctx: ActivityContext, _: ()| async move {
            ctx.sleep(Duration::from_secs(3)).await;
            Ok::<_, ApplicationError>("two".to_string())
        });
        w.start()
    };
    let a = make("worker-A", step1.clone());
    start(&engine, "replay-me", "TwoSteps", serde_json::Value::Null).await;
    wait_for(&engine, "replay-me", |h| {
        count(h, EventType::ActivityTaskScheduled) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill();
    let b = make("worker-B", step1.clone());
    let out = engine.result("replay-me", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("one+two").unwrap())
    );
    assert_eq!(
        step1.load(Ordering::SeqCst),
        1,
        "a completed activity ran again"
    );
    assert!(
        b.stats().events_replayed.load(Ordering::Relaxed) >= 10,
        "worker B replayed {} events",
        b.stats().events_replayed.load(Ordering::Relaxed)
    );
    assert_eq!(a.stats().events_replayed.load(Ordering::Relaxed), 0);
}

/// A worker that keeps the run cached does not replay at all.
#[tokio::test(start_paused = true)]
async fn cached_worker_does_not_replay() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "solo"));
    w.register_workflow("Three", |ctx: WfContext, _: ()| async move {
        for _ in 0..3 {
            let _: () = ctx.activity("noop", &(), opts()).await?;
        }
        Ok::<_, WorkflowError>(())
    });
    w.register_activity("noop", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>(())
    });
    let w = w.start();
    start(&engine, "cached", "Three", serde_json::Value::Null).await;
    engine.result("cached", None).await.unwrap();
    assert_eq!(w.stats().events_replayed.load(Ordering::Relaxed), 0);
    assert_eq!(w.stats().cache_hits.load(Ordering::Relaxed), 3);
}

/// v1 ran an activity; v2 of the code (deployed on a new worker) issues a
/// different activity first. The workflow task fails with cause
/// NonDeterministicError and a message naming the event id, what history
/// holds and what the code issued; the run stays Running.
#[tokio::test(start_paused = true)]
async fn changed_code_fails_workflow_task_with_nondeterminism() {
    let (engine, _dir) = virtual_engine();
    let mut v1 = Worker::new(&engine, WorkerOptions::new(QUEUE, "worker-v1"));
    v1.register_workflow("Versioned", |ctx: WfContext, _: ()| async move {
        let _: () = ctx.activity("charge", &(), opts()).await?;
        let _: () = ctx.activity("ship", &(), opts()).await?;
        Ok::<_, WorkflowError>(())
    });
    v1.register_activity("charge", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>(())
    });
    v1.register_activity("ship", |ctx: ActivityContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(60)).await;
        Ok::<_, ApplicationError>(())
    });
    let v1 = v1.start();
    start(&engine, "versioned", "Versioned", serde_json::Value::Null).await;
    wait_for(&engine, "versioned", |h| {
        count(h, EventType::ActivityTaskScheduled) == 2
    })
    .await;
    v1.kill();

    let mut v2 = Worker::new(&engine, WorkerOptions::new(QUEUE, "worker-v2"));
    v2.register_workflow("Versioned", |ctx: WfContext, _: ()| async move {
        let _: () = ctx.activity("reserve", &(), opts()).await?;
        Ok::<_, WorkflowError>(())
    });
    v2.register_activity("ship", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>(())
    });
    v2.register_activity("reserve", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>(())
    });
    let _v2 = v2.start();
    // ship times out after 5 s on the dead worker, retries on v2, completes;
    // the workflow task that follows replays v2 code against v1's history.
    wait_for(&engine, "versioned", |h| {
        count(h, EventType::WorkflowTaskFailed) == 1
    })
    .await;
    let h = engine.history("versioned", None).await.unwrap();
    let failed = h
        .iter()
        .find(|e| e.event_type() == EventType::WorkflowTaskFailed)
        .unwrap();
    let EventAttributes::WorkflowTaskFailed {
        cause,
        failure,
        identity,
        ..
    } = &failed.attributes
    else {
        unreachable!()
    };
    assert_eq!(*cause, WorkflowTaskFailedCause::NonDeterministicError);
    assert_eq!(identity, "worker-v2");
    assert!(failure.message.contains("TMPRL1100"), "{}", failure.message);
    assert!(
        failure.message.contains("history event 5"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("\"charge\""),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("\"reserve\""),
        "{}",
        failure.message
    );
    // Later attempts write nothing, and the run stays Running.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let d = engine.describe("versioned", None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Running);
    let h2 = engine.history("versioned", None).await.unwrap();
    assert_eq!(h2.len(), h.len(), "transient attempts wrote events");
    let wt = d.pending_workflow_task.expect("a pending workflow task");
    assert!(wt.attempt >= 3, "workflow task attempt {}", wt.attempt);
}

/// A panic in workflow code fails the workflow task (the run stays Running)
/// and leaves the engine serving other runs; terminating the run ends it.
#[tokio::test(start_paused = true)]
async fn panic_in_workflow_code_fails_the_task_not_the_engine() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "w"));
    w.register_workflow("Buggy", |_ctx: WfContext, _: ()| async move {
        if true {
            panic!("bug in workflow code");
        }
        Ok::<(), WorkflowError>(())
    });
    w.register_workflow("Fine", |ctx: WfContext, _: ()| async move {
        let _: () = ctx.activity("noop", &(), opts()).await?;
        Ok::<_, WorkflowError>(())
    });
    w.register_activity("noop", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>(())
    });
    let _w = w.start();
    start(&engine, "buggy", "Buggy", serde_json::Value::Null).await;
    start(&engine, "fine", "Fine", serde_json::Value::Null).await;
    engine.result("fine", None).await.unwrap();
    wait_for(&engine, "buggy", |h| {
        count(h, EventType::WorkflowTaskFailed) == 1
    })
    .await;
    let h = engine.history("buggy", None).await.unwrap();
    let types: Vec<_> = h.iter().map(|e| e.event_type().name()).collect();
    assert_eq!(
        types,
        [
            "WorkflowExecutionStarted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted",
            "WorkflowTaskFailed"
        ]
    );
    let EventAttributes::WorkflowTaskFailed { cause, failure, .. } = &h[3].attributes else {
        unreachable!()
    };
    assert_eq!(
        *cause,
        WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure
    );
    assert!(failure.message.contains("bug in workflow code"));
    assert_eq!(
        engine.describe("buggy", None).await.unwrap().info.status,
        WorkflowExecutionStatus::Running
    );
    engine
        .terminate("buggy", None, "lab: stop buggy workflow", "test")
        .await
        .unwrap();
    let h = engine.history("buggy", None).await.unwrap();
    assert_eq!(
        h.last().unwrap().event_type(),
        EventType::WorkflowExecutionTerminated
    );
}

/// The tutorial's saga: the deposit fails for good, workflow code catches the
/// typed activity error, refunds, then fails the workflow with the deposit's error.
#[tokio::test(start_paused = true)]
async fn activity_failure_is_a_typed_error_workflow_code_can_catch() {
    let (engine, _dir) = virtual_engine();
    let refunds = Arc::new(AtomicU32::new(0));
    let r = refunds.clone();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "bank"));
    w.register_workflow("MoneyTransfer", |ctx: WfContext, amount: u64| async move {
        let policy = RetryPolicy {
            maximum_attempts: 3,
            maximum_interval: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let o = opts().retry(policy);
        let _: String = ctx.activity("withdraw", &amount, o.clone()).await?;
        match ctx.activity::<String>("deposit", &amount, o.clone()).await {
            Ok(d) => Ok(d),
            Err(deposit_err) => {
                assert_eq!(deposit_err.error_type(), Some("ValueError"));
                let _: String = ctx.activity("refund", &amount, o).await?;
                Err(WorkflowError::from(deposit_err))
            }
        }
    });
    w.register_activity("withdraw", |_: ActivityContext, _: u64| async {
        Ok::<_, ApplicationError>("W".to_string())
    });
    w.register_activity("deposit", |_: ActivityContext, _: u64| async {
        Err::<String, _>(ApplicationError::retryable(
            "ValueError",
            "This deposit has failed.",
        ))
    });
    w.register_activity("refund", move |_: ActivityContext, _: u64| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, ApplicationError>("R".to_string()) }
    });
    let _w = w.start();
    start(
        &engine,
        "pay-invoice-701",
        "MoneyTransfer",
        serde_json::json!(250),
    )
    .await;
    let out = engine.result("pay-invoice-701", None).await.unwrap();
    let WorkflowOutcome::Failed(f) = out else {
        panic!("expected failure")
    };
    assert_eq!(f.message, "Activity task failed");
    assert_eq!(f.root_cause().message, "This deposit has failed.");
    assert_eq!(refunds.load(Ordering::SeqCst), 1);
    let h = engine.history("pay-invoice-701", None).await.unwrap();
    let sig = common::signature_of(&h);
    let reference = common::signature_of_reference("money-transfer-deposit-fails-refund");
    assert_eq!(sig, reference);
}

/// A killed worker takes nothing more, even a task already queued for it
/// when it died: before, it could take one more workflow task after the
/// kill and hold it until the task's timeout (10 s of silence, then a
/// WorkflowTaskTimedOut that Temporal would not write).
#[tokio::test(start_paused = true)]
async fn a_killed_worker_takes_no_more_tasks() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new(QUEUE, "doomed"));
    w.register_workflow("Noop", |_: WfContext, _: ()| async move {
        Ok::<_, WorkflowError>(())
    });
    let w = w.start();
    tokio::time::sleep(Duration::from_millis(10)).await; // it is polling now
    // The task is queued and the worker woken; it is killed before it runs.
    start(&engine, "after-kill", "Noop", serde_json::Value::Null).await;
    w.kill();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let d = engine.describe("after-kill", None).await.unwrap();
    assert!(
        d.pending_workflow_task.as_ref().is_some_and(|t| !t.started),
        "the killed worker took the task: {d:?}"
    );
    assert!(
        engine
            .describe_task_queue(QUEUE)
            .pollers
            .iter()
            .all(|p| !p.polling_now)
    );
}
