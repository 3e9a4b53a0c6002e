//! Heartbeats: a heartbeat timeout is a retryable failure carrying the last
//! details; the next attempt can read them (`g-activity-heartbeat-timeout`).

use crate::common;

use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::engine::{
    ActivityCancellationType, ActivityContext, ApplicationError, EventAttributes, EventType,
    FailureInfo, Payload, RetryPolicy, StartWorkflowOptions, WfContext, Worker, WorkerOptions,
    WorkflowError, WorkflowOutcome, activity_options,
};

/// Heartbeats progress 0, 1, 2 a second apart, then hangs: 2 s after the
/// last heartbeat the attempt times out (TIMEOUT_TYPE_HEARTBEAT) with
/// lastHeartbeatDetails {"progress":2}; maximum_attempts 1 ends it.
#[tokio::test(start_paused = true)]
async fn g_activity_heartbeat_timeout() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "lab-worker"));
    w.register_workflow("HeartbeatTimeout", |ctx: WfContext, n: u32| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(60))
            .heartbeat(Duration::from_secs(2))
            .retry(RetryPolicy {
                maximum_attempts: 1,
                ..RetryPolicy::default()
            });
        let r: () = ctx.activity("heartbeater", &n, o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("heartbeater", |ctx: ActivityContext, n: u32| async move {
        for i in 0..n {
            ctx.heartbeat(&serde_json::json!({ "progress": i }))?;
            ctx.sleep(Duration::from_secs(1)).await;
        }
        ctx.sleep(Duration::from_secs(3600)).await; // hangs without heartbeating
        Ok::<_, ApplicationError>(())
    });
    let _w = w.start();
    let t0 = engine.now_ms();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "hb-timeout",
            "HeartbeatTimeout",
            "lab",
            Payload::from_value(&3).unwrap(),
        ))
        .await
        .unwrap();
    let out = engine.result("hb-timeout", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Failed(_)));
    let h = engine.history("hb-timeout", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("g-activity-heartbeat-timeout")
    );
    let timed_out = &h[6];
    let EventAttributes::ActivityTaskTimedOut { failure, .. } = &timed_out.attributes else {
        panic!("{:?}", timed_out.event_type())
    };
    let FailureInfo::Timeout {
        last_heartbeat_details,
        ..
    } = &failure.info
    else {
        unreachable!()
    };
    assert_eq!(
        last_heartbeat_details.as_ref().unwrap().as_json(),
        r#"{"progress":2}"#
    );
    assert_eq!(
        timed_out.event_time_ms - t0,
        4_000,
        "2 s after the last heartbeat at +2 s"
    );
}

/// The next attempt reads the details the failed attempt heartbeated, and
/// describe shows them while the activity runs.
#[tokio::test(start_paused = true)]
async fn next_attempt_resumes_from_heartbeat_details() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "w"));
    w.register_workflow("Resume", |ctx: WfContext, _: ()| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(60))
            .heartbeat(Duration::from_secs(2));
        let r: u32 = ctx.activity("count_to_5", &(), o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("count_to_5", |ctx: ActivityContext, _: ()| async move {
        let start = ctx.heartbeat_details::<u32>().map_or(0, |n| n + 1);
        for i in start..5 {
            ctx.heartbeat(&i)?;
            ctx.sleep(Duration::from_secs(1)).await;
            if ctx.attempt == 1 && i == 2 {
                ctx.sleep(Duration::from_secs(3600)).await; // stalls: heartbeat timeout
            }
        }
        Ok::<_, ApplicationError>(start)
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "resume",
            "Resume",
            "lab",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let d = engine.describe("resume", None).await.unwrap();
    assert_eq!(
        d.pending_activities[0]
            .heartbeat_details
            .as_ref()
            .unwrap()
            .as_json(),
        "1"
    );
    let out = engine.result("resume", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value(&3).unwrap()),
        "attempt 2 resumed after 2"
    );
}

/// Cancellation requested for a running activity that does not heartbeat:
/// ActivityTaskCancelRequested is written, the activity never learns of it,
/// its result is accepted (as `activity-cancel-requested-wait-completed`);
/// describe showed it as CancelRequested meanwhile.
#[tokio::test(start_paused = true)]
async fn activity_cancel_requested_wait_completed() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "lab-worker"));
    w.register_workflow("CancelRequestedWf", |ctx: WfContext, _: ()| async move {
        let mut act = ctx.activity::<String>(
            "slow",
            &8.0,
            activity_options()
                .start_to_close(Duration::from_secs(60))
                .cancellation(ActivityCancellationType::WaitCancellationCompleted),
        );
        act.start()?;
        ctx.sleep(Duration::from_secs(1)).await?;
        act.cancel();
        Ok::<_, WorkflowError>(act.await?)
    });
    w.register_activity("slow", |ctx: ActivityContext, secs: f64| async move {
        ctx.sleep(Duration::from_secs_f64(secs)).await;
        Ok::<_, ApplicationError>(format!("slept {secs:.1}"))
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "cancel-act",
            "CancelRequestedWf",
            "lab",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = engine.describe("cancel-act", None).await.unwrap();
    assert_eq!(
        d.pending_activities[0].state,
        holdfast::engine::PendingActivityState::CancelRequested
    );
    let out = engine.result("cancel-act", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("slept 8.0").unwrap())
    );
    let h = engine.history("cancel-act", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("activity-cancel-requested-wait-completed")
    );
}

/// A heartbeating activity learns of the cancellation from its next
/// heartbeat; when it stops, the activity closes as ActivityTaskCanceled
/// and the workflow sees a canceled activity error.
#[tokio::test(start_paused = true)]
async fn heartbeating_activity_learns_of_cancellation() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "w"));
    w.register_workflow("CancelHb", |ctx: WfContext, _: ()| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(600))
            .heartbeat(Duration::from_secs(5))
            .cancellation(ActivityCancellationType::WaitCancellationCompleted);
        let mut act = ctx.activity::<u32>("long", &(), o);
        act.start()?;
        ctx.sleep(Duration::from_secs(3)).await?;
        act.cancel();
        match act.await {
            Ok(n) => Ok::<_, WorkflowError>(format!("finished {n}")),
            Err(e) => Ok(e.failure.message.clone()),
        }
    });
    w.register_activity("long", |ctx: ActivityContext, _: ()| async move {
        for i in 0..600u32 {
            ctx.heartbeat(&i)?; // returns CanceledError once cancellation is requested
            ctx.sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, ApplicationError>(600)
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "cancel-hb",
            "CancelHb",
            "lab",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    let out = engine.result("cancel-hb", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("Activity task canceled").unwrap())
    );
    let h = engine.history("cancel-hb", None).await.unwrap();
    let requested = h
        .iter()
        .find(|e| e.event_type() == EventType::ActivityTaskCancelRequested)
        .unwrap();
    let i = h
        .iter()
        .position(|e| e.event_type() == EventType::ActivityTaskCanceled)
        .unwrap();
    assert_eq!(h[i - 1].event_type(), EventType::ActivityTaskStarted);
    let EventAttributes::ActivityTaskCanceled {
        latest_cancel_requested_event_id,
        started_event_id,
        identity,
        ..
    } = &h[i].attributes
    else {
        unreachable!()
    };
    assert_eq!(*latest_cancel_requested_event_id, requested.event_id);
    assert_eq!(*started_event_id, h[i - 1].event_id);
    assert_eq!(identity, "w");
    assert!(
        h.last().unwrap().event_time_ms - h[0].event_time_ms < 10_000,
        "canceled within seconds, not after 600 s"
    );
}

/// TRY_CANCEL (the default) on a running activity: the workflow goes on at
/// once with a canceled error while the activity learns of the request at
/// its next heartbeat; ABANDON asks the engine nothing and the activity
/// runs to its end, its result recorded but no longer awaited.
#[tokio::test(start_paused = true)]
async fn try_cancel_resolves_at_once_and_abandon_asks_nothing() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("lab", "w"));
    w.register_workflow("Cancels", |ctx: WfContext, ty: String| async move {
        let cancellation = match ty.as_str() {
            "abandon" => ActivityCancellationType::Abandon,
            _ => ActivityCancellationType::TryCancel,
        };
        let o = activity_options()
            .start_to_close(Duration::from_secs(600))
            .heartbeat(Duration::from_secs(5))
            .cancellation(cancellation);
        let mut act = ctx.activity::<u32>("long", &(), o);
        act.start()?;
        ctx.sleep(Duration::from_secs(3)).await?;
        act.cancel();
        let seen = match act.await {
            Ok(n) => format!("finished {n}"),
            Err(e) => format!("{} ({})", e.failure.message, e.cause().message),
        };
        // Still running when the code moves on: waits for a signal to end.
        ctx.signal_channel::<()>("done").recv().await?;
        Ok::<_, WorkflowError>(seen)
    });
    w.register_activity("long", |ctx: ActivityContext, _: ()| async move {
        for i in 0..10u32 {
            ctx.heartbeat(&i)?;
            ctx.sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, ApplicationError>(10)
    });
    let _w = w.start();
    for ty in ["try", "abandon"] {
        engine
            .start_workflow(StartWorkflowOptions::new(
                ty,
                "Cancels",
                "lab",
                Payload::from_value(&ty).unwrap(),
            ))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    for ty in ["try", "abandon"] {
        engine
            .signal(ty, None, "done", Payload::from_value(&()).unwrap(), "cli")
            .await
            .unwrap();
        let out = engine.result(ty, None).await.unwrap();
        assert_eq!(
            out,
            WorkflowOutcome::Completed(
                Payload::from_value("Activity task canceled (Activity cancelled)").unwrap()
            ),
            "{ty}"
        );
    }
    let types = |h: &[holdfast::engine::HistoryEvent]| -> Vec<EventType> {
        h.iter()
            .map(|e| e.event_type())
            .filter(|t| t.name().starts_with("Activity"))
            .collect()
    };
    let h = engine.history("try", None).await.unwrap();
    assert_eq!(
        types(&h),
        [
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskCancelRequested,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCanceled
        ]
    );
    // The activity stopped at its first heartbeat after the request (3 s).
    let canceled = h
        .iter()
        .find(|e| e.event_type() == EventType::ActivityTaskCanceled)
        .unwrap();
    assert!(canceled.event_time_ms - h[0].event_time_ms <= 5_000);
    let h = engine.history("abandon", None).await.unwrap();
    assert_eq!(
        types(&h),
        [
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted
        ]
    );
}
