//! The crash-test workload, run as a child process that the crash tests kill
//! with SIGKILL at random points. It prints one line per fact the parent
//! checks after every kill:
//!
//! - `ACK <workflow id>`: the start was acknowledged (durable);
//! - `CALL <workflow id> <activity id> <attempt>`: an activity body ran;
//! - `SIGNALED <workflow id>`: a signal was acknowledged (durable);
//! - `DONE <workflow id>`: the run completed.
//!
//! Run again on the same data dir, it starts only what does not exist yet
//! and waits for everything to complete.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, EngineError, Payload,
    RetryPolicy, StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError,
    WorkflowOutcome, activity_options,
};

#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// Workflows `chaos-0` … `chaos-<n-1>`.
    #[arg(long, default_value_t = 40)]
    pub workflows: usize,
    /// How many to start at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

pub const QUEUE: &str = "chaos";

fn say(line: String) {
    // stdout is line-buffered: each line is one write, so the parent sees
    // every line printed before the kill.
    println!("{line}");
}

pub async fn run_child(args: ChaosArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::open(EngineConfig::new(&args.data_dir).clock(Clock::system()))?;
    let mut w = Worker::new(
        &engine,
        WorkerOptions::new(QUEUE, format!("chaos-{}", std::process::id())),
    );
    w.register_workflow("ChaosTransfer", |ctx: WfContext, n: u64| async move {
        let opts = activity_options()
            .start_to_close(Duration::from_millis(300))
            .retry(RetryPolicy {
                initial_interval: Duration::from_millis(50),
                maximum_interval: Duration::from_millis(200),
                ..RetryPolicy::default()
            });
        let a: u64 = ctx.activity("withdraw", &n, opts.clone()).await?;
        // A durable timer between the steps: kills land while it is pending too.
        ctx.sleep(Duration::from_millis(30)).await?;
        // And a signal, sent by the client (possibly before a crash).
        ctx.signal_channel::<u64>("go").recv().await?;
        let b: u64 = ctx.activity("deposit", &n, opts).await?;
        Ok::<_, WorkflowError>(a + b)
    });
    for name in ["withdraw", "deposit"] {
        w.register_activity(name, |ctx: ActivityContext, n: u64| async move {
            say(format!(
                "CALL {} {} {}",
                ctx.workflow_id, ctx.activity_id, ctx.attempt
            ));
            // A transient failure now and then, so retries are in play too.
            if (n + ctx.attempt as u64).is_multiple_of(5) && ctx.attempt == 1 {
                return Err(ApplicationError::retryable("Flaky", "transient failure"));
            }
            tokio::task::yield_now().await;
            Ok::<_, ApplicationError>(n)
        });
    }
    let _worker = w.start();

    let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut waits = Vec::new();
    for i in 0..args.workflows {
        let id = format!("chaos-{i}");
        let permit = slots.clone().acquire_owned().await?;
        match engine.describe(&id, None).await {
            Ok(_) => {}
            Err(EngineError::WorkflowNotFound { .. }) => {
                engine
                    .start_workflow(StartWorkflowOptions::new(
                        &id,
                        "ChaosTransfer",
                        QUEUE,
                        Payload::from_value(&(i as u64))?,
                    ))
                    .await?;
                say(format!("ACK {id}"));
            }
            Err(e) => return Err(e.into()),
        }
        let signaled = engine
            .history(&id, None)
            .await?
            .iter()
            .any(|e| e.event_type() == crate::engine::EventType::WorkflowExecutionSignaled);
        if !signaled {
            match engine
                .signal(&id, None, "go", Payload::from_value(&(i as u64))?, "chaos")
                .await
            {
                Ok(()) => say(format!("SIGNALED {id}")),
                Err(EngineError::AlreadyCompleted { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let engine = engine.clone();
        waits.push(tokio::spawn(async move {
            let out = engine.result(&id, None).await;
            drop(permit);
            (id, out)
        }));
    }
    for w in waits {
        let (id, out) = w.await?;
        match out? {
            WorkflowOutcome::Completed(_) => say(format!("DONE {id}")),
            other => return Err(format!("{id} did not complete: {other:?}").into()),
        }
    }
    Ok(())
}
