//! Conformance with histories captured from a real Temporal server
//! (`shared/reference/temporal-histories/`). Each test runs the same workflow
//! on holdfast, on the virtual clock, and compares the event-type sequence
//! and the attributes that matter (attempt, lastFailure, retryState, failure
//! type and message) with the reference file. Ids, times and identities are
//! not compared.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::engine::{
    ActivityContext, ApplicationError, Engine, Payload, PendingActivityState, RetryPolicy,
    WfContext, Worker, WorkerHandle, WorkerOptions, WorkflowError, WorkflowOutcome,
    activity_options,
};

const QUEUE: &str = "lab";

async fn start(engine: &Engine, id: &str, ty: &str, input: serde_json::Value) {
    common::start(engine, id, ty, QUEUE, input).await;
}

async fn assert_matches_reference(engine: &Engine, id: &str, reference: &str) {
    let ours = signature_of(&engine.history(id, None).await.unwrap());
    let theirs = signature_of_reference(reference);
    assert_eq!(ours, theirs, "history of {id} differs from {reference}");
}

fn worker(engine: &Engine, identity: &str, setup: impl FnOnce(&mut Worker)) -> WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new(QUEUE, identity));
    setup(&mut w);
    w.start()
}

fn stc(secs: u64) -> holdfast::engine::ActivityOptions {
    activity_options().start_to_close(Duration::from_secs(secs))
}

/// (a) Two sequential activities: 17 events, each activity Started attempt 1.
#[tokio::test(start_paused = true)]
async fn a_two_activities_success() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "lab-worker", |w| {
        w.register_workflow("TwoSteps", |ctx: WfContext, _: String| async move {
            let a: String = ctx.activity("step", &"withdraw", stc(5)).await?;
            let b: String = ctx.activity("step", &"deposit", stc(5)).await?;
            Ok::<_, WorkflowError>(format!("{a},{b}"))
        });
        w.register_activity("step", |_: ActivityContext, s: String| async move {
            Ok::<_, ApplicationError>(format!("done-{s}"))
        });
    });
    start(&engine, "two-steps", "TwoSteps", serde_json::json!("x")).await;
    let out = engine.result("two-steps", None).await.unwrap();
    assert_eq!(
        out,
        WorkflowOutcome::Completed(Payload::from_value("done-withdraw,done-deposit").unwrap())
    );
    assert_matches_reference(&engine, "two-steps", "a-two-activities-success").await;
}

/// (b) Attempts 1–3 fail, 4 succeeds: no events for the failed attempts,
/// one ActivityTaskStarted{attempt 4, lastFailure of attempt 3}; attempts at
/// +0, +1, +3, +7 s on the default policy.
#[tokio::test(start_paused = true)]
async fn b_activity_fails_3x_then_succeeds() {
    let (engine, _dir) = virtual_engine();
    let instants = Arc::new(Mutex::new(Vec::new()));
    let seen = instants.clone();
    let _w = worker(&engine, "lab-worker", move |w| {
        w.register_workflow("FlakyThenOk", |ctx: WfContext, n: u32| async move {
            Ok::<String, WorkflowError>(ctx.activity("flaky", &n, stc(5)).await?)
        });
        w.register_activity("flaky", move |ctx: ActivityContext, n: u32| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(ctx.clock().now_ms());
                if ctx.attempt < n {
                    Err(ApplicationError::retryable(
                        "FlakyError",
                        format!("flaky failure on attempt {}", ctx.attempt),
                    ))
                } else {
                    Ok(format!("ok on attempt {}", ctx.attempt))
                }
            }
        });
    });
    start(&engine, "flaky", "FlakyThenOk", serde_json::json!(4)).await;
    engine.result("flaky", None).await.unwrap();
    assert_matches_reference(&engine, "flaky", "b-activity-fails-3x-then-succeeds").await;
    let t = instants.lock().unwrap().clone();
    let rel: Vec<u64> = t.iter().map(|x| x - t[0]).collect();
    assert_eq!(
        rel,
        vec![0, 1000, 3000, 7000],
        "attempt start instants (ms)"
    );
}

/// (c) A non-retryable application error: one attempt, ActivityTaskFailed
/// NON_RETRYABLE_FAILURE, then WorkflowExecutionFailed "Activity task failed".
#[tokio::test(start_paused = true)]
async fn c_activity_nonretryable_workflow_fails() {
    let (engine, _dir) = virtual_engine();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let _w = worker(&engine, "lab-worker", move |w| {
        w.register_workflow("NonRetryable", |ctx: WfContext, _: ()| async move {
            Ok::<String, WorkflowError>(ctx.activity("non_retryable", &(), stc(5)).await?)
        });
        w.register_activity("non_retryable", move |_: ActivityContext, _: ()| {
            *c.lock().unwrap() += 1;
            async move {
                Err::<(), _>(
                    ApplicationError::non_retryable("CardDeclined", "card declined")
                        .with_details(&serde_json::json!({"code": 51})),
                )
            }
        });
    });
    start(&engine, "nonretry", "NonRetryable", serde_json::Value::Null).await;
    let out = engine.result("nonretry", None).await.unwrap();
    let WorkflowOutcome::Failed(f) = out else {
        panic!("expected failure, got {out:?}")
    };
    assert_eq!(f.message, "Activity task failed");
    assert_eq!(f.root_cause().error_type(), Some("CardDeclined"));
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_matches_reference(
        &engine,
        "nonretry",
        "c-activity-nonretryable-workflow-fails",
    )
    .await;
}

/// (c2) maximum_attempts=3 with a plain retryable error: Started attempt 3,
/// Failed MAXIMUM_ATTEMPTS_REACHED.
#[tokio::test(start_paused = true)]
async fn c2_activity_max_attempts_reached_workflow_fails() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "lab-worker", |w| {
        w.register_workflow("MaxAttempts", |ctx: WfContext, _: ()| async move {
            let policy = RetryPolicy {
                initial_interval: Duration::from_millis(200),
                maximum_interval: Duration::from_secs(20),
                maximum_attempts: 3,
                ..RetryPolicy::default()
            };
            Ok::<String, WorkflowError>(
                ctx.activity("raises_value_error", &(), stc(5).retry(policy))
                    .await?,
            )
        });
        w.register_activity(
            "raises_value_error",
            |_: ActivityContext, _: ()| async move {
                Err::<(), _>(ApplicationError::retryable(
                    "ValueError",
                    "plain python ValueError",
                ))
            },
        );
    });
    start(
        &engine,
        "max-attempts",
        "MaxAttempts",
        serde_json::Value::Null,
    )
    .await;
    engine.result("max-attempts", None).await.unwrap();
    assert_matches_reference(
        &engine,
        "max-attempts",
        "c2-activity-max-attempts-reached-workflow-fails",
    )
    .await;
}

/// An activity that sleeps on the engine clock for `secs` (its input).
async fn slow(ctx: ActivityContext, secs: f64) -> Result<String, ApplicationError> {
    ctx.sleep(Duration::from_secs_f64(secs)).await;
    Ok(format!("slept {secs}"))
}

/// (g) Start-to-close 2 s on a 10 s activity, 2 attempts: both time out;
/// ActivityTaskTimedOut MAXIMUM_ATTEMPTS_REACHED whose cause is attempt 1's
/// timeout; the workflow fails "Activity task timed out". Attempt 1's late
/// result is rejected.
#[tokio::test(start_paused = true)]
async fn g_activity_start_to_close_timeout_max_attempts() {
    let (engine, _dir) = virtual_engine();
    let w = worker(&engine, "lab-worker", |w| {
        w.register_workflow("StartToCloseTimeout", |ctx: WfContext, _: ()| async move {
            let policy = RetryPolicy {
                maximum_attempts: 2,
                ..RetryPolicy::default()
            };
            Ok::<String, WorkflowError>(ctx.activity("slow", &10.0, stc(2).retry(policy)).await?)
        });
        w.register_activity("slow", slow);
    });
    start(
        &engine,
        "stc-timeout",
        "StartToCloseTimeout",
        serde_json::Value::Null,
    )
    .await;
    let out = engine.result("stc-timeout", None).await.unwrap();
    let WorkflowOutcome::Failed(f) = out else {
        panic!("expected failure")
    };
    assert_eq!(f.message, "Activity task timed out");
    assert_matches_reference(
        &engine,
        "stc-timeout",
        "g-activity-start-to-close-timeout-max-attempts",
    )
    .await;
    // Let the timed-out attempts finish sleeping: their results are rejected.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        w.stats()
            .results_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// (g) Schedule-to-close 5 s, always failing: attempts at 0, 1, 3 s; the
/// next (at 7 s) would pass the deadline, so the activity closes as
/// ActivityTaskFailed (not TimedOut) with RETRY_STATE_TIMEOUT.
#[tokio::test(start_paused = true)]
async fn g_activity_schedule_to_close_timeout_with_retries() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "lab-worker", |w| {
        w.register_workflow("ScheduleToClose", |ctx: WfContext, _: ()| async move {
            let opts = activity_options().schedule_to_close(Duration::from_secs(5));
            Ok::<String, WorkflowError>(ctx.activity("always_fails", &(), opts).await?)
        });
        w.register_activity("always_fails", always_fails);
    });
    start(&engine, "s2c", "ScheduleToClose", serde_json::Value::Null).await;
    engine.result("s2c", None).await.unwrap();
    assert_matches_reference(
        &engine,
        "s2c",
        "g-activity-schedule-to-close-timeout-with-retries",
    )
    .await;
}

async fn always_fails(ctx: ActivityContext, _: ()) -> Result<(), ApplicationError> {
    Err(ApplicationError::retryable(
        "AlwaysError",
        format!("always fails (attempt {})", ctx.attempt),
    )
    .with_details(&serde_json::json!({"attempt": ctx.attempt})))
}

/// (h) Worker A is killed 2 s into a 6 s activity (start-to-close 10 s).
/// Nothing happens until the timeout at +10 s; attempt 2 runs on worker B
/// at +11 s; history shows one ActivityTaskStarted{attempt 2, lastFailure
/// StartToClose timeout} by B.
#[tokio::test(start_paused = true)]
async fn h_worker_killed_mid_activity_retried() {
    let (engine, _dir) = virtual_engine();
    let setup = |w: &mut Worker| {
        w.register_workflow("WorkerDeath", |ctx: WfContext, _: ()| async move {
            Ok::<String, WorkflowError>(ctx.activity("slow", &6.0, stc(10)).await?)
        });
        w.register_activity("slow", slow);
    };
    let a = worker(&engine, "lab-worker-A", setup);
    let t0 = engine.now_ms();
    start(
        &engine,
        "worker-death",
        "WorkerDeath",
        serde_json::Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = engine.describe("worker-death", None).await.unwrap();
    assert_eq!(d.pending_activities[0].state, PendingActivityState::Started);
    assert_eq!(d.pending_activities[0].last_worker_identity, "lab-worker-A");
    a.kill();
    let _b = worker(&engine, "lab-worker-B", setup);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Still attempt 1, still A's: the engine cannot know A died.
    let d = engine.describe("worker-death", None).await.unwrap();
    assert_eq!(d.pending_activities[0].attempt, 1);
    assert_eq!(d.pending_activities[0].last_worker_identity, "lab-worker-A");
    engine.result("worker-death", None).await.unwrap();
    let events = engine.history("worker-death", None).await.unwrap();
    assert_matches_reference(
        &engine,
        "worker-death",
        "h-worker-killed-mid-activity-retried",
    )
    .await;
    let started = events
        .iter()
        .find(|e| e.event_type().name() == "ActivityTaskStarted")
        .unwrap();
    assert_eq!(
        started.event_time_ms - t0,
        11_000,
        "attempt 2 starts at +11 s"
    );
    match &started.attributes {
        holdfast::engine::EventAttributes::ActivityTaskStarted { identity, .. } => {
            assert_eq!(identity, "lab-worker-B")
        }
        _ => unreachable!(),
    }
}

/// Mid-retry, history ends at ActivityTaskScheduled (5 events) and describe
/// shows the pending activity as Temporal does 9 s after start: Scheduled,
/// attempt 5, last failure of attempt 4, retry interval 8 s, next attempt at
/// +15 s (compared with `describe-stuck-retrying.json`).
#[tokio::test(start_paused = true)]
async fn stuck_retrying_mid_retry_history_and_describe() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine, "lab-worker-8196", |w| {
        w.register_workflow("StuckRetrying", |ctx: WfContext, _: ()| async move {
            let policy = RetryPolicy {
                maximum_interval: Duration::from_secs(30),
                ..RetryPolicy::default()
            };
            Ok::<(), WorkflowError>(
                ctx.activity("always_fails", &(), stc(5).retry(policy))
                    .await?,
            )
        });
        w.register_activity("always_fails", always_fails);
    });
    let t0 = engine.now_ms();
    start(
        &engine,
        "stuck-retrying",
        "StuckRetrying",
        serde_json::Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_matches_reference(
        &engine,
        "stuck-retrying",
        "stuck-retrying-mid-retry-history",
    )
    .await;

    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::reference_dir().join("temporal-describe/describe-stuck-retrying.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let r = &reference["pendingActivities"][0];
    let d = engine.describe("stuck-retrying", None).await.unwrap();
    assert_eq!(d.info.history_length, 5);
    let p = &d.pending_activities[0];
    assert_eq!(p.activity_id, r["activityId"].as_str().unwrap());
    assert_eq!(p.activity_type, r["activityType"]["name"].as_str().unwrap());
    assert_eq!(p.state, PendingActivityState::Scheduled);
    assert_eq!(r["state"], "PENDING_ACTIVITY_STATE_SCHEDULED");
    assert_eq!(p.attempt as u64, r["attempt"].as_u64().unwrap());
    assert_eq!(
        p.maximum_attempts, 0,
        "unlimited, omitted in Temporal's JSON"
    );
    assert!(r.get("maximumAttempts").is_none());
    let lf = p.last_failure.as_ref().unwrap();
    assert_eq!(lf.message, r["lastFailure"]["message"].as_str().unwrap());
    assert_eq!(
        lf.error_type().unwrap(),
        r["lastFailure"]["applicationFailureInfo"]["type"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        p.last_worker_identity,
        r["lastWorkerIdentity"].as_str().unwrap()
    );
    assert_eq!(p.current_retry_interval, Some(Duration::from_secs(8)));
    assert_eq!(p.last_attempt_complete_time_ms, Some(t0 + 7_000));
    assert_eq!(p.next_attempt_schedule_time_ms, Some(t0 + 15_000));
    assert_eq!(
        p.scheduled_time_ms,
        t0 + 15_000,
        "scheduledTime = next attempt time"
    );
    assert_eq!(p.retry_policy.maximum_interval, Duration::from_secs(30));
    assert_eq!(p.start_to_close_timeout, Duration::from_secs(5));
    // In backoff Temporal shows no lastStartedTime (the attempt record keeps it).
    assert!(r.get("lastStartedTime").is_none());
    assert_eq!(p.last_started_time_ms, None);
    assert_eq!(p.attempts.len(), 4, "the timeline keeps every attempt");
}
