//! `holdfast bench --sequential N`: one workflow that runs N trivial
//! activities one after the other, the shape whose cost sticky queues keep
//! linear: each workflow task carries only the events the worker has not
//! seen. Prints the time per length and per activity, and how the time grew
//! against the length.

use std::time::{Duration, Instant};

use crate::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, Payload, StartWorkflowOptions,
    WfContext, Worker, WorkerOptions, WorkflowError, activity_options,
};

pub async fn run(
    lengths: &[usize],
    root: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    if cfg!(debug_assertions) {
        println!(
            "note: this is a debug build; run `cargo run --release -- bench --sequential N` for real figures"
        );
    }
    let mut previous: Option<(usize, Duration)> = None;
    for (i, &n) in lengths.iter().enumerate() {
        let dir = root.join(format!("sequential-{i}"));
        // Temporal would end a run past 51,200 events (10,000 activities
        // write 60,005): lifted here, this measures cost, not the limit.
        let mut config = EngineConfig::new(&dir).clock(Clock::system());
        config.history_limits.count_warn = u64::MAX;
        config.history_limits.count_error = u64::MAX;
        let engine = Engine::open(config)?;
        let mut w = Worker::new(&engine, WorkerOptions::new("bench", "bench-worker"));
        w.register_workflow("Sequential", |ctx: WfContext, n: u64| async move {
            let o = activity_options().start_to_close(Duration::from_secs(30));
            let mut sum = 0u64;
            for i in 0..n {
                sum += ctx.activity::<u64>("step", &i, o.clone()).await?;
            }
            Ok::<_, WorkflowError>(sum)
        });
        w.register_activity("step", |_: ActivityContext, i: u64| async move {
            Ok::<_, ApplicationError>(i)
        });
        let worker = w.start();
        let started = Instant::now();
        engine
            .start_workflow(StartWorkflowOptions::new(
                "sequential",
                "Sequential",
                "bench",
                Payload(n.to_string()),
            ))
            .await?;
        let outcome = engine.result("sequential", None).await?;
        if !matches!(outcome, crate::engine::WorkflowOutcome::Completed(_)) {
            return Err(format!("the {n}-activity run did not complete: {outcome:?}").into());
        }
        let elapsed = started.elapsed();
        let events = engine.history("sequential", None).await?.len();
        let received = worker
            .stats()
            .history_events_received
            .load(std::sync::atomic::Ordering::Relaxed);
        worker.kill();
        drop(engine);
        let per = elapsed.as_secs_f64() * 1e6 / n as f64;
        print!(
            "sequential {n:>7} activities  {:>8.2} s  {per:>7.1} µs/activity  {events} events, {received} sent to the worker",
            elapsed.as_secs_f64()
        );
        if let Some((m, t)) = previous {
            print!(
                "  ({:.1}× the time for {:.1}× the activities)",
                elapsed.as_secs_f64() / t.as_secs_f64(),
                n as f64 / m as f64
            );
        }
        println!();
        previous = Some((n, elapsed));
    }
    Ok(())
}
