//! The engine replays everything it writes. Random workflows from a small
//! grammar (activities that fail or succeed, heartbeat or not, in sequence
//! or two at once; timers; waits for a signal; activities the code cancels
//! itself with each cancellation type) run on the virtual clock while a
//! seeded driver sends signals, cancels, terminates, kills and stops
//! workers and crashes the engine at random instants. Then every run must
//! have closed, its history must never hold a nondeterminism failure, and a
//! fresh worker with the same code must replay it from scratch to the very
//! same commands.
//!
//! `HOLDFAST_REPLAY_SEEDS=5000 cargo test replay_property` runs more seeds;
//! `HOLDFAST_REPLAY_SEED=N` runs one (the failure message names it).

use crate::common;

use std::time::Duration;

use holdfast::engine::{
    ActivityCancellationType, ActivityContext, ApplicationError, Engine, EventAttributes,
    EventType, HistoryEvent, Payload, RetryPolicy, WfContext, Worker, WorkerHandle, WorkerOptions,
    WorkflowError, WorkflowExecutionStatus, WorkflowTaskFailedCause, activity_options,
};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "prop";
const WORKFLOW: &str = "Program";

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Cancellation {
    Try,
    Wait,
    Abandon,
}

impl Cancellation {
    fn sdk(self) -> ActivityCancellationType {
        match self {
            Cancellation::Try => ActivityCancellationType::TryCancel,
            Cancellation::Wait => ActivityCancellationType::WaitCancellationCompleted,
            Cancellation::Abandon => ActivityCancellationType::Abandon,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Work {
    /// Attempts that fail before one succeeds.
    fail_first: u32,
    millis: u64,
    heartbeat: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Step {
    Activity {
        work: Work,
        max_attempts: u32,
        cancellation: Cancellation,
    },
    Parallel(Work, Work),
    Timer(u64),
    WaitSignal,
    /// Start an activity, sleep, cancel it, await what it resolves to.
    CancelOwn {
        work: Work,
        after_secs: u64,
        cancellation: Cancellation,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Program {
    steps: Vec<Step>,
    /// An activity failure ends the run (else it is noted and the run goes on).
    stop_on_error: bool,
}

fn options(work: &Work, max_attempts: u32, c: Cancellation) -> holdfast::engine::ActivityOptions {
    let mut o = activity_options()
        .start_to_close(Duration::from_secs(10))
        .retry(RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(4),
            maximum_attempts: max_attempts,
            ..RetryPolicy::default()
        })
        .cancellation(c.sdk());
    if work.heartbeat {
        o = o.heartbeat(Duration::from_secs(3));
    }
    o
}

async fn program(ctx: WfContext, p: Program) -> Result<Vec<String>, WorkflowError> {
    let mut seen = Vec::new();
    let signals = ctx.signal_channel::<u32>("go");
    for step in p.steps {
        let outcome = match step {
            Step::Activity {
                work,
                max_attempts,
                cancellation,
            } => {
                let o = options(&work, max_attempts, cancellation);
                ctx.activity::<u32>("work", &work, o)
                    .await
                    .map(|a| a.to_string())
            }
            Step::Parallel(a, b) => {
                let mut fa = ctx.activity::<u32>("work", &a, options(&a, 3, Cancellation::Try));
                let mut fb = ctx.activity::<u32>("work", &b, options(&b, 3, Cancellation::Try));
                fa.start()?;
                fb.start()?;
                match (fa.await, fb.await) {
                    (Ok(x), Ok(y)) => Ok(format!("{x}+{y}")),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            Step::Timer(secs) => {
                ctx.sleep(Duration::from_secs(secs)).await?;
                Ok("slept".into())
            }
            Step::WaitSignal => Ok(format!("signal {}", signals.recv().await?)),
            Step::CancelOwn {
                work,
                after_secs,
                cancellation,
            } => {
                let mut f = ctx.activity::<u32>("work", &work, options(&work, 0, cancellation));
                f.start()?;
                ctx.sleep(Duration::from_secs(after_secs)).await?;
                f.cancel();
                f.await.map(|a| a.to_string())
            }
        };
        match outcome {
            Ok(s) => seen.push(s),
            Err(e) if p.stop_on_error => return Err(e.into()),
            Err(e) => seen.push(format!("error: {}", e.failure.message)),
        }
    }
    Ok(seen)
}

async fn work(ctx: ActivityContext, w: Work) -> Result<u32, ApplicationError> {
    let mut left = w.millis;
    while left > 0 {
        let slice = left.min(1_000);
        ctx.sleep(Duration::from_millis(slice)).await;
        left -= slice;
        if w.heartbeat {
            ctx.heartbeat(&left)?;
        }
    }
    if ctx.attempt <= w.fail_first {
        return Err(ApplicationError::retryable(
            "Flaky",
            format!("attempt {} failed", ctx.attempt),
        ));
    }
    Ok(ctx.attempt)
}

fn register(w: &mut Worker) {
    w.register_workflow(WORKFLOW, program);
    w.register_activity("work", work);
}

fn start_worker(engine: &Engine, n: u32) -> WorkerHandle {
    let mut w = Worker::new(
        engine,
        WorkerOptions::new(QUEUE, format!("prop-worker-{n}")),
    );
    register(&mut w);
    w.start()
}

fn random_work(rng: &mut fastrand::Rng) -> Work {
    Work {
        fail_first: if rng.u8(..4) == 0 { rng.u32(1..4) } else { 0 },
        millis: rng.u64(0..6_000),
        heartbeat: rng.bool(),
    }
}

fn random_cancellation(rng: &mut fastrand::Rng) -> Cancellation {
    [Cancellation::Try, Cancellation::Wait, Cancellation::Abandon][rng.usize(..3)]
}

fn random_program(rng: &mut fastrand::Rng) -> Program {
    let steps = (0..rng.usize(1..6))
        .map(|_| match rng.u8(..10) {
            0..=3 => Step::Activity {
                work: random_work(rng),
                max_attempts: [0, 1, 2, 5][rng.usize(..4)],
                cancellation: random_cancellation(rng),
            },
            4 => Step::Parallel(random_work(rng), random_work(rng)),
            5 | 6 => Step::Timer(rng.u64(1..30)),
            7 | 8 => Step::WaitSignal,
            _ => Step::CancelOwn {
                work: random_work(rng),
                after_secs: rng.u64(0..5),
                cancellation: random_cancellation(rng),
            },
        })
        .collect();
    Program {
        steps,
        stop_on_error: rng.bool(),
    }
}

/// Runs one seed; returns how the run closed and how many events it has,
/// or what went wrong.
async fn run_seed(seed: u64) -> Result<(WorkflowExecutionStatus, usize), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (engine, _dir) = common::virtual_engine();
    let program = random_program(&mut rng);
    let mut workers = 1;
    let mut worker = Some(start_worker(&engine, workers));
    let id = "prop";
    common::start(&engine, id, WORKFLOW, QUEUE, &program).await;
    let what = |e: &dyn std::fmt::Display| format!("seed {seed} ({program:?}): {e}");
    for _ in 0..rng.usize(0..7) {
        tokio::time::sleep(Duration::from_millis(rng.u64(0..15_000))).await;
        let status = engine
            .describe(id, None)
            .await
            .map_err(|e| what(&e))?
            .info
            .status;
        if status != WorkflowExecutionStatus::Running {
            break;
        }
        match rng.u8(..20) {
            0..=5 => {
                let _ = engine
                    .signal(
                        id,
                        None,
                        "go",
                        Payload::from_value(&rng.u32(..100)).unwrap(),
                        "driver",
                    )
                    .await;
            }
            6 | 7 => {
                let _ = engine.cancel(id, None, "driver").await;
            }
            8 => {
                let _ = engine.terminate(id, None, "driver", "driver").await;
            }
            9..=12 => {
                if let Some(w) = worker.take() {
                    w.kill();
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(0..12_000))).await;
                workers += 1;
                worker = Some(start_worker(&engine, workers));
            }
            13..=15 => {
                if let Some(w) = worker.take() {
                    w.shutdown().await;
                }
                workers += 1;
                worker = Some(start_worker(&engine, workers));
            }
            _ => {
                engine.crash_and_recover().await.map_err(|e| what(&e))?;
            }
        }
    }
    // Whatever happened, the run closes once a worker runs and the signals it waits for come.
    let mut closed = false;
    for _ in 0..200 {
        let d = engine.describe(id, None).await.map_err(|e| what(&e))?;
        if d.info.status != WorkflowExecutionStatus::Running {
            closed = true;
            break;
        }
        let _ = engine
            .signal(id, None, "go", Payload::from_value(&0).unwrap(), "driver")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let history = engine.history(id, None).await.map_err(|e| what(&e))?;
    if !closed {
        return Err(what(&format!(
            "still running after 100 minutes: {}",
            tail(&history)
        )));
    }
    if let Some(e) = history.iter().find(|e| {
        matches!(
            e.attributes,
            EventAttributes::WorkflowTaskFailed {
                cause: WorkflowTaskFailedCause::NonDeterministicError,
                ..
            }
        )
    }) {
        return Err(what(&format!("a live nondeterminism failure: {e:?}")));
    }
    let d = engine.describe(id, None).await.map_err(|e| what(&e))?;
    let mut fresh = Worker::new(&engine, WorkerOptions::new(QUEUE, "replayer"));
    register(&mut fresh);
    let commands = fresh
        .replay(id, &d.info.run_id, WORKFLOW, &history)
        .map_err(|m| what(&format!("replay failed: {m}\n{}", tail(&history))))?;
    let terminated = history
        .last()
        .is_some_and(|e| e.event_type() == EventType::WorkflowExecutionTerminated);
    if !commands.is_empty() && !terminated {
        return Err(what(&format!(
            "replay issued commands after the close: {commands:?}"
        )));
    }
    if let Some(w) = worker {
        w.kill();
    }
    Ok((d.info.status, history.len()))
}

fn tail(h: &[HistoryEvent]) -> String {
    h.iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.event_id,
                e.event_type(),
                e.attributes.summary()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(start_paused = true)]
async fn every_history_the_engine_writes_replays() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("HOLDFAST_REPLAY_SEED") {
        Some(s) => vec![s],
        None => (0..env("HOLDFAST_REPLAY_SEEDS").unwrap_or(200)).collect(),
    };
    let many = seeds.len() > 50;
    let mut failures = Vec::new();
    let mut closed = std::collections::BTreeMap::new();
    let mut events = 0;
    for seed in seeds {
        match run_seed(seed).await {
            Ok((status, n)) => {
                *closed.entry(format!("{status:?}")).or_insert(0) += 1;
                events += n;
            }
            Err(e) => {
                failures.push(e);
                if failures.len() >= 3 {
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    println!("closed: {closed:?}, {events} events replayed");
    if many {
        // The grammar and the driver reach every way a run can close.
        for status in ["Completed", "Failed", "Canceled", "Terminated"] {
            assert!(
                closed.contains_key(status),
                "no run closed {status}: {closed:?}"
            );
        }
    }
}
