//! One engine clock: engine time is persisted and never goes backwards, its
//! speed changes while it runs, and a restart at another speed never makes
//! anything wait for the wall clock to catch up (a run at 10× stores times
//! ahead of the wall clock; the 1× run that follows starts from them).

use std::time::Duration;

use holdfast::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, Payload, RetryPolicy,
    StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError, activity_options,
};

fn worker(engine: &Engine, fail: bool) -> holdfast::engine::WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new("q", "w"));
    w.register_workflow("Deposit", |ctx: WfContext, _: ()| async move {
        ctx.sleep(Duration::from_secs(60)).await?;
        let policy = RetryPolicy {
            initial_interval: Duration::from_secs(20),
            ..RetryPolicy::default()
        };
        let o = activity_options()
            .start_to_close(Duration::from_secs(5))
            .retry(policy);
        let r: String = ctx.activity("deposit", &(), o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("deposit", move |_: ActivityContext, _: ()| async move {
        if fail {
            Err(ApplicationError::retryable(
                "DepositError",
                "This deposit has failed.",
            ))
        } else {
            Ok("deposited".to_string())
        }
    });
    w.start()
}

/// 10×, then 1× after a restart: the retry comes when engine time says, the
/// clock starts where the stored history ends, and no time goes backwards.
#[tokio::test(start_paused = true)]
async fn a_restart_at_another_speed_neither_waits_nor_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fast = Clock::virtual_time();
    fast.set_speed(10.0);
    let engine = Engine::open(EngineConfig::new(&data).clock(fast.clone())).unwrap();
    let w = worker(&engine, true);
    engine
        .start_workflow(StartWorkflowOptions::new(
            "t",
            "Deposit",
            "q",
            Payload("null".into()),
        ))
        .await
        .unwrap();
    let d = engine
        .wait_until("t", |d| {
            d.pending_activities.first().is_some_and(|a| a.attempt == 2)
        })
        .await
        .unwrap();
    let failed_at = d.pending_activities[0]
        .last_attempt_complete_time_ms
        .unwrap();
    let next_attempt = d.pending_activities[0]
        .next_attempt_schedule_time_ms
        .unwrap();
    assert!(failed_at >= holdfast::engine::VIRTUAL_EPOCH_MS + 60_000);
    // 10 s of engine time later (1 s of real time), the process stops.
    fast.sleep(Duration::from_secs(10)).await;
    w.kill();
    drop(w);
    drop(engine);

    // The fixed code, at 1×, on a clock that starts behind the stored times
    // (as the wall clock is behind a run made at 10×).
    let slow = Clock::virtual_time();
    assert!(slow.now_ms() < failed_at);
    let engine = Engine::reopen(EngineConfig::new(&data).clock(slow.clone()))
        .await
        .unwrap();
    let reopened_at = slow.now_ms();
    assert!(
        reopened_at >= failed_at,
        "engine time went backwards: {reopened_at} < {failed_at}"
    );
    let _w = worker(&engine, false);
    let real = tokio::time::Instant::now();
    engine.result("t", None).await.unwrap();
    let waited = real.elapsed();
    let left = Duration::from_millis(next_attempt.saturating_sub(reopened_at));
    assert!(
        waited <= left + Duration::from_millis(100),
        "waited {waited:?} for a retry due in {left:?} of engine time"
    );
    assert!(slow.now_ms() >= next_attempt);
    let history = engine.history("t", None).await.unwrap();
    assert!(
        history
            .windows(2)
            .all(|w| w[0].event_time_ms <= w[1].event_time_ms),
        "event times never go backwards"
    );
}
