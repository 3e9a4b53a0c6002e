//! Durable timers, signals and queries, against the reference histories
//! `d-timer` and `e-signal` and Temporal's documented query behaviour.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::engine::{
    Engine, EngineError, EventType, Payload, WfContext, Worker, WorkerHandle, WorkerOptions,
    WorkflowError, WorkflowOutcome,
};

const QUEUE: &str = "lab";

fn setup(w: &mut Worker) {
    w.register_workflow("TimerWf", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(2)).await?;
        Ok::<_, WorkflowError>("timer fired".to_string())
    });
    w.register_workflow("SignalWf", |ctx: WfContext, _: ()| async move {
        let status = Arc::new(Mutex::new("waiting".to_string()));
        let s = status.clone();
        ctx.set_query_handler("status", move |_: ()| s.lock().unwrap().clone());
        let approve = ctx.signal_channel::<String>("approve");
        let who = approve.recv().await?;
        *status.lock().unwrap() = format!("approved by {who}");
        Ok::<_, WorkflowError>(format!("approved by {who}"))
    });
}

fn worker(engine: &Engine, identity: &str) -> WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new(QUEUE, identity));
    setup(&mut w);
    w.start()
}

async fn start(engine: &Engine, id: &str, ty: &str) {
    common::start(engine, id, ty, QUEUE, ()).await;
}

/// (d) A 2 s timer: TimerStarted, TimerFired 2 s later, then completion (10 events).
#[tokio::test(start_paused = true)]
async fn d_timer() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "lab-worker");
    start(&engine, "timer", "TimerWf").await;
    let out = engine.result("timer", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("timer fired").unwrap())
    );
    let h = engine.history("timer", None).await.unwrap();
    assert_eq!(signature_of(&h), signature_of_reference("d-timer"));
    let started = h
        .iter()
        .find(|e| e.event_type() == EventType::TimerStarted)
        .unwrap();
    let fired = h
        .iter()
        .find(|e| e.event_type() == EventType::TimerFired)
        .unwrap();
    assert_eq!(fired.event_time_ms - started.event_time_ms, 2_000);
}

/// (e) A workflow blocked on a signal: WorkflowExecutionSignaled, then completion (9 events).
/// The signal is sent while no worker runs, and delivered when one starts.
#[tokio::test(start_paused = true)]
async fn e_signal_sent_without_worker_is_delivered_later() {
    let (engine, _dir) = virtual_engine();
    let first = worker(&engine, "lab-worker-1");
    start(&engine, "signal", "SignalWf").await;
    // let the first workflow task run, then stop the worker cleanly (a
    // killed one would leave the next task on its sticky queue for 10 s)
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.shutdown().await;
    engine
        .signal(
            "signal",
            None,
            "approve",
            Payload::from_value("alice").unwrap(),
            "temporal-cli",
        )
        .await
        .unwrap();
    let h = engine.history("signal", None).await.unwrap();
    assert_eq!(
        h.last().unwrap().event_type(),
        EventType::WorkflowTaskScheduled
    );
    let _second = worker(&engine, "lab-worker-2");
    let out = engine.result("signal", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("approved by alice").unwrap())
    );
    let h = engine.history("signal", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("e-signal"),
        "{h:#?}"
    );
}

/// Signalling a closed run fails with Temporal's words; nothing is written.
#[tokio::test(start_paused = true)]
async fn signal_to_closed_run_fails_cleanly() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "w");
    start(&engine, "done", "TimerWf").await;
    engine.result("done", None).await.unwrap();
    let before = engine.history("done", None).await.unwrap().len();
    let err = engine
        .signal(
            "done",
            None,
            "approve",
            Payload::from_value("x").unwrap(),
            "cli",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::AlreadyCompleted { .. }));
    assert!(
        err.to_string()
            .starts_with("workflow execution already completed"),
        "{err}"
    );
    assert_eq!(engine.history("done", None).await.unwrap().len(), before);
}

/// Queries answer from workflow state and write nothing; they work on a
/// closed run (by replay) while a worker runs; an unknown name lists the
/// known ones; with no worker the error is immediate.
#[tokio::test(start_paused = true)]
async fn queries_read_state_and_write_nothing() {
    let (engine, _dir) = virtual_engine();
    let w = worker(&engine, "w1");
    start(&engine, "q", "SignalWf").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let len = engine.history("q", None).await.unwrap().len();
    let v = engine
        .query("q", None, "status", Payload::from_value(&()).unwrap())
        .await
        .unwrap();
    assert_eq!(v, Payload::from_value("waiting").unwrap());
    assert_eq!(
        engine.history("q", None).await.unwrap().len(),
        len,
        "a query wrote history"
    );

    let err = engine
        .query("q", None, "nope", Payload::from_value(&()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query failed: Query handler for 'nope' expected but not found, known queries: [status]"
    );

    engine
        .signal(
            "q",
            None,
            "approve",
            Payload::from_value("bob").unwrap(),
            "cli",
        )
        .await
        .unwrap();
    engine.result("q", None).await.unwrap();
    // Closed run, fresh worker with nothing cached: answered by replay.
    w.kill();
    let _w2 = worker(&engine, "w2");
    let v = engine
        .query("q", None, "status", Payload::from_value(&()).unwrap())
        .await
        .unwrap();
    assert_eq!(v, Payload::from_value("approved by bob").unwrap());
}

#[tokio::test(start_paused = true)]
async fn query_without_worker_fails_at_once() {
    let (engine, _dir) = virtual_engine();
    let w = worker(&engine, "w1");
    start(&engine, "lonely", "SignalWf").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.kill();
    tokio::task::yield_now().await;
    let err = engine
        .query("lonely", None, "status", Payload::from_value(&()).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NoWorker { .. }), "{err:?}");
    assert!(err.to_string().contains("\"lab\""), "{err}");
}
