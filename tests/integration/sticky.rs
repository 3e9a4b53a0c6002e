//! Sticky queues and worker stop vs kill, as captured on Temporal
//! (`money-transfer-worker-stopped-cleanly`, `money-transfer-worker-killed`):
//! every workflow task after the first goes to the sticky queue of the
//! worker that has the run cached, with only the new events; a worker
//! stopped cleanly hands its runs to others at once; a killed one leaves
//! the next task on its sticky queue until WorkflowTaskTimedOut
//! (SCHEDULE_TO_START, 10 s).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::apps::bank::{self, PaymentDetails, QUEUE};
use holdfast::engine::{
    ActivityContext, ApplicationError, Engine, EventAttributes, EventType, Payload, WfContext,
    Worker, WorkerHandle, WorkerOptions, WorkflowError, WorkflowOutcome, activity_options,
};

/// The tutorial's workflow with a withdraw that takes 2 s (as the capture's).
fn slow_withdraw_worker(
    engine: &Engine,
    identity: &str,
    withdraws: Arc<AtomicU32>,
) -> WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new(QUEUE, identity));
    w.register_workflow(bank::WORKFLOW_TYPE, bank::money_transfer);
    w.register_activity(
        "withdraw",
        move |ctx: ActivityContext, p: PaymentDetails| {
            let withdraws = withdraws.clone();
            async move {
                ctx.sleep(Duration::from_secs(2)).await;
                withdraws.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ApplicationError>(format!("W-{}", p.reference_id))
            }
        },
    );
    w.register_activity(
        "deposit",
        |_: ActivityContext, p: PaymentDetails| async move {
            Ok::<_, ApplicationError>(format!("D-{}", p.reference_id))
        },
    );
    w.register_activity(
        "refund",
        |_: ActivityContext, p: PaymentDetails| async move {
            Ok::<_, ApplicationError>(format!("R-{}", p.reference_id))
        },
    );
    w.start()
}

fn sticky_queues(h: &[holdfast::engine::HistoryEvent]) -> Vec<Option<String>> {
    h.iter()
        .filter_map(|e| match &e.attributes {
            EventAttributes::WorkflowTaskScheduled { sticky_queue, .. } => {
                Some(sticky_queue.clone())
            }
            _ => None,
        })
        .collect()
}

/// Worker A is stopped cleanly while the withdraw runs: the withdraw
/// finishes inside the grace period, the next task is recorded on A's
/// sticky queue but worker B takes it at once; no timeout.
#[tokio::test(start_paused = true)]
async fn worker_stopped_cleanly_hands_its_runs_over_at_once() {
    let (engine, _dir) = virtual_engine();
    let withdraws = Arc::new(AtomicU32::new(0));
    let a = slow_withdraw_worker(&engine, "worker-A", withdraws.clone());
    let id = "pay-invoice-worker-stopped";
    bank::start_transfer(&engine, id, &PaymentDetails::tutorial())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = tokio::spawn(async move { a.shutdown().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _b = slow_withdraw_worker(&engine, "worker-B", withdraws.clone());
    stop.await.unwrap();
    let out = engine.result(id, None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = engine.history(id, None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-worker-stopped-cleanly")
    );
    assert_eq!(withdraws.load(Ordering::SeqCst), 1, "the withdraw ran once");
    let queues = sticky_queues(&h);
    assert_eq!(queues[0], None);
    assert!(queues[1].as_deref().unwrap().starts_with("worker-A"));
    assert!(queues[2].as_deref().unwrap().starts_with("worker-B"));
    // B took the task on A's sticky queue at once.
    let scheduled = h
        .iter()
        .filter(|e| e.event_type() == EventType::WorkflowTaskScheduled)
        .nth(1)
        .unwrap();
    let started = &h[scheduled.event_id as usize];
    assert_eq!(started.event_type(), EventType::WorkflowTaskStarted);
    assert!(started.event_time_ms - scheduled.event_time_ms < 1_000);
}

/// Worker A is killed while the withdraw runs; B starts at once. The
/// withdraw times out (5 s) and attempt 2 runs on B; the next task goes to
/// A's sticky queue (A polled it less than 10 s before), waits there 10 s,
/// times out SCHEDULE_TO_START and is rescheduled on the normal queue.
#[tokio::test(start_paused = true)]
async fn worker_killed_leaves_the_next_task_on_its_sticky_queue_for_10_s() {
    let (engine, _dir) = virtual_engine();
    let withdraws = Arc::new(AtomicU32::new(0));
    let a = slow_withdraw_worker(&engine, "worker-A", withdraws.clone());
    let id = "pay-invoice-worker-killed";
    bank::start_transfer(&engine, id, &PaymentDetails::tutorial())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let _b = slow_withdraw_worker(&engine, "worker-B", withdraws.clone());
    let out = engine.result(id, None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = engine.history(id, None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-worker-killed")
    );
    let timed_out = h
        .iter()
        .find(|e| e.event_type() == EventType::WorkflowTaskTimedOut)
        .unwrap();
    let sticky_scheduled = &h[timed_out.event_id as usize - 2];
    assert_eq!(
        timed_out.event_time_ms - sticky_scheduled.event_time_ms,
        10_000
    );
    let queues = sticky_queues(&h);
    assert!(queues[1].as_deref().unwrap().starts_with("worker-A"));
    assert_eq!(queues[2], None, "rescheduled on the normal queue");
}

/// What sticky queues are for: a worker with the run cached gets only the
/// events after the ones it has seen, so a run's cost grows with its
/// length, not its square; a worker without the run (evicted) reads the
/// rest itself and carries on.
#[tokio::test(start_paused = true)]
async fn sticky_tasks_carry_only_new_events() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "solo"));
    w.register_workflow("Many", |ctx: WfContext, n: u32| async move {
        let mut sum = 0u32;
        for i in 0..n {
            let o = activity_options().start_to_close(Duration::from_secs(5));
            sum += ctx.activity::<u32>("one", &i, o).await?;
        }
        Ok::<_, WorkflowError>(sum)
    });
    w.register_activity("one", |_: ActivityContext, _: u32| async move {
        Ok::<_, ApplicationError>(1)
    });
    let w = w.start();
    common::start(&engine, "many", "Many", "lab", 50u32).await;
    let out = engine.result("many", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value(&50).unwrap())
    );
    assert_eq!(w.stats().events_replayed.load(Ordering::Relaxed), 0);
    assert_eq!(w.stats().cache_hits.load(Ordering::Relaxed), 50);
    assert_eq!(
        w.stats().history_events_received.load(Ordering::Relaxed),
        2 + 50 * 6
    );
}

/// A worker that evicted a run from its cache still gets that run's next
/// task on its sticky queue: it reads the earlier events itself, replays,
/// and the runs complete.
#[tokio::test(start_paused = true)]
async fn a_sticky_task_for_an_evicted_run_replays_from_the_whole_history() {
    let (engine, _dir) = virtual_engine();
    let mut opts = WorkerOptions::new("lab", "small-cache");
    opts.max_cached_workflows = 1;
    let mut w = Worker::new(&engine, opts);
    w.register_workflow("Many", |ctx: WfContext, n: u32| async move {
        let mut sum = 0u32;
        for i in 0..n {
            let o = activity_options().start_to_close(Duration::from_secs(5));
            sum += ctx.activity::<u32>("one", &i, o).await?;
        }
        Ok::<_, WorkflowError>(sum)
    });
    w.register_activity("one", |ctx: ActivityContext, _: u32| async move {
        ctx.sleep(Duration::from_millis(100)).await;
        Ok::<_, ApplicationError>(1)
    });
    let w = w.start();
    for id in ["left", "right"] {
        common::start(&engine, id, "Many", "lab", 10u32).await;
    }
    for id in ["left", "right"] {
        let out = engine.result(id, None).await.unwrap();
        assert_eq!(
            out,
            WorkflowOutcome::Completed(Payload::from_value(&10).unwrap())
        );
    }
    assert!(w.stats().events_replayed.load(Ordering::Relaxed) > 0);
    assert_eq!(w.stats().workflow_tasks_failed.load(Ordering::Relaxed), 0);
}
