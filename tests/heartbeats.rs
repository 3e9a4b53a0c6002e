//! Heartbeats: a heartbeat timeout is a retryable failure carrying the last
//! details; the next attempt can read them (`g-activity-heartbeat-timeout`).

mod common;

use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::engine::{
    ActivityContext, ApplicationError, EventAttributes, FailureInfo, Payload, RetryPolicy,
    StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError, WorkflowOutcome,
    activity_options,
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
