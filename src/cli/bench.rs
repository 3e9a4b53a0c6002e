//! `holdfast bench`: N workflows shaped like the money transfer (two
//! trivial activities), C in flight, in a fresh data dir, every transition
//! durable. Prints throughput, start→result latency, peak RSS, and the
//! storage floor: the same events and states written straight to sled in
//! the same batches with the same flush cadence.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, Payload, StartWorkflowOptions,
    WfContext, Worker, WorkerOptions, WorkflowError, activity_options,
};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Number of workflows (at least 1).
    #[arg(short = 'n', long, default_value_t = 10_000, value_parser = super::at_least_one, allow_negative_numbers = true)]
    pub workflows: usize,
    /// Workflows in flight at once (at least 1).
    #[arg(short = 'c', long, default_value_t = 100, value_parser = super::at_least_one, allow_negative_numbers = true)]
    pub concurrency: usize,
    /// Where to put the fresh data dirs (a temp dir by default).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Measure the read model instead: fill a store with N runs (1 % of
    /// them running, one retrying), then time open, a page, filtered pages
    /// and a describe.
    #[arg(long)]
    pub read_model: bool,
    /// Measure the terminal UI instead: frame time with N runs stored and a
    /// 10,000-event history selected, reloads, idle CPU over 30 s with a
    /// run retrying, peak RSS.
    #[arg(long)]
    pub tui: bool,
    /// The screen half of `--tui`, in a fresh process on a filled store.
    #[arg(long, hide = true, value_name = "DIR")]
    pub tui_screen: Option<std::path::PathBuf>,
    /// Measure one workflow running N activities one after the other
    /// instead (repeat it: `--sequential 1000 --sequential 10000`).
    #[arg(long = "sequential", value_name = "N", value_parser = super::at_least_one, allow_negative_numbers = true)]
    pub sequential: Vec<usize>,
}

/// A fresh directory for the benchmark's stores, inside `dir` if given
/// (which must exist: a mistyped path is not created).
fn bench_root(dir: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    match dir {
        Some(d) if d.exists() && !d.is_dir() => {
            Err(format!("--dir {}: is a file, not a directory", d.display()))
        }
        Some(d) if !d.is_dir() => Err(format!("--dir {}: no such directory", d.display())),
        Some(d) => tempfile_in(d).map_err(|e| format!("--dir {}: {e}", d.display())),
        None => tempfile_in(&std::env::temp_dir()).map_err(|e| e.to_string()),
    }
}

pub(super) fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.read_model {
        return read_model(args).await;
    }
    if let Some(dir) = &args.tui_screen {
        return super::bench_tui::screen(dir, args.workflows).await;
    }
    if args.tui {
        let root = bench_root(args.dir.as_deref())?;
        let out = super::bench_tui::run(args.workflows, args.concurrency, &root).await;
        let _ = std::fs::remove_dir_all(&root);
        return out;
    }
    if !args.sequential.is_empty() {
        let root = bench_root(args.dir.as_deref())?;
        let out = super::bench_long::run(&args.sequential, &root).await;
        let _ = std::fs::remove_dir_all(&root);
        return out;
    }
    let root = bench_root(args.dir.as_deref())?;
    let engine_dir = root.join("engine");
    let floor_dir = root.join("floor");
    let (n, c) = (args.workflows, args.concurrency);
    if cfg!(debug_assertions) {
        println!(
            "note: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    println!(
        "holdfast bench: {n} workflows (2 activities each), {c} in flight, data in {}",
        root.display()
    );

    let engine = Engine::open(EngineConfig::new(&engine_dir).clock(Clock::system()))?;
    let mut opts = WorkerOptions::new("bench", "bench-worker");
    opts.max_concurrent_activities = c;
    opts.max_concurrent_workflow_tasks = c;
    let mut w = Worker::new(&engine, opts);
    w.register_workflow("Transfer", |ctx: WfContext, amount: u64| async move {
        let o = activity_options().start_to_close(Duration::from_secs(30));
        let a: u64 = ctx.activity("withdraw", &amount, o.clone()).await?;
        let b: u64 = ctx.activity("deposit", &amount, o).await?;
        Ok::<_, WorkflowError>(a + b)
    });
    w.register_activity("withdraw", |_: ActivityContext, a: u64| async move {
        Ok::<_, ApplicationError>(a)
    });
    w.register_activity("deposit", |_: ActivityContext, a: u64| async move {
        Ok::<_, ApplicationError>(a)
    });
    let worker = w.start();

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut drivers = Vec::new();
    for _ in 0..c {
        let engine = engine.clone();
        let next = next.clone();
        drivers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, crate::engine::EngineError>(lat);
                }
                let t = Instant::now();
                let id = format!("bench-{i}");
                engine
                    .start_workflow(StartWorkflowOptions::new(
                        &id,
                        "Transfer",
                        "bench",
                        Payload(i.to_string()),
                    ))
                    .await?;
                engine.result(&id, None).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for d in drivers {
        latencies.extend(d.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let commits = engine.commit_count();
    let flushes = engine.flush_count();
    worker.kill();

    let rss_kib = peak_rss_kib();
    let wps = n as f64 / elapsed.as_secs_f64();
    let every = (commits as f64 / flushes.max(1) as f64).round().max(1.0) as usize;
    // The floor: the same bytes, the same batches, the same flush cadence.
    let floor = engine.storage_floor(&floor_dir, every)?;
    drop(engine);
    let events = floor.events;
    let eps = events as f64 / elapsed.as_secs_f64();
    println!();
    println!(
        "engine   {:>8.0} workflows/s  {:>9.0} events/s  ({n} workflows, {events} events in {:.2}s)",
        wps,
        eps,
        elapsed.as_secs_f64()
    );
    println!(
        "latency  p50 {:.2} ms  p99 {:.2} ms  (start → result)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "storage  {commits} commits, {flushes} flushes ({:.1} commits per flush)",
        commits as f64 / flushes.max(1) as f64
    );
    if let Some(kib) = rss_kib {
        println!(
            "memory   peak RSS {:.1} MiB (before the floor)",
            kib as f64 / 1024.0
        );
    }
    let floor_s = floor.elapsed.as_secs_f64();
    println!(
        "floor    {:>8.0} workflows/s  {:>9.0} events/s  (the same {} commits straight to sled, one batch and flush every {every})",
        n as f64 / floor_s,
        events as f64 / floor_s,
        floor.commits
    );
    println!(
        "ratio    engine/floor = {:.2}× the floor's time",
        elapsed.as_secs_f64() / floor_s
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let p = dir.join(format!(
        "holdfast-bench-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

/// Fills a store with `n` runs, `c` at a time: 1 % left running, the rest
/// terminated; half transfers, half reports.
pub(super) async fn fill(
    engine: &Engine,
    n: usize,
    c: usize,
) -> Result<(), crate::engine::EngineError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut fillers = Vec::new();
    for _ in 0..c {
        let engine = engine.clone();
        let next = next.clone();
        fillers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, crate::engine::EngineError>(());
                }
                let id = format!("run-{i:06}");
                let ty = if i.is_multiple_of(2) {
                    "MoneyTransfer"
                } else {
                    "GenerateReportWorkflow"
                };
                engine
                    .start_workflow(StartWorkflowOptions::new(&id, ty, "q", Payload("0".into())))
                    .await?;
                if !i.is_multiple_of(100) {
                    engine.terminate(&id, None, "bench", "bench").await?;
                }
            }
        }));
    }
    for f in fillers {
        f.await
            .map_err(|e| crate::engine::EngineError::InvalidArgument(e.to_string()))??;
    }
    Ok(())
}

/// Times what a screen asks of a big store.
async fn read_model(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    use crate::engine::{ListFilter, WorkflowExecutionStatus};
    let root = bench_root(args.dir.as_deref())?;
    let dir = root.join("engine");
    let (n, c) = (args.workflows, args.concurrency);
    println!(
        "holdfast bench --read-model: {n} runs (1 % running) and one with an activity retrying, in a fresh directory (removed at the end): {}",
        root.display()
    );
    let engine = Engine::open(EngineConfig::new(&dir).clock(Clock::system()))?;
    let t = Instant::now();
    fill(&engine, n, c).await?;
    // One run with an activity retrying, for the "retrying" filter.
    let mut w = Worker::new(&engine, WorkerOptions::new("retrying", "bench-worker"));
    w.register_workflow("Stuck", |ctx: WfContext, _: u64| async move {
        let o = activity_options().start_to_close(Duration::from_secs(30));
        let r: u64 = ctx.activity("fails", &0u64, o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("fails", |_: ActivityContext, _: u64| async move {
        Err::<u64, _>(ApplicationError::retryable("Down", "down"))
    });
    let worker = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "stuck",
            "Stuck",
            "retrying",
            Payload("0".into()),
        ))
        .await?;
    engine
        .wait_until("stuck", |d| {
            d.pending_activities.first().is_some_and(|a| a.attempt > 1)
        })
        .await?;
    worker.kill();
    drop(worker);
    println!("filled   in {:.1} s", t.elapsed().as_secs_f64());
    drop(engine);

    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    // Opens the store and says where the time went.
    let open = |label: &'static str| {
        let dir = dir.clone();
        async move {
            let t = Instant::now();
            let engine = Engine::reopen(EngineConfig::new(&dir).clock(Clock::system())).await?;
            let total = ms(t);
            let r = engine.last_recovery().ok_or("no recovery recorded")?;
            let (sled, rebuild) = (
                r.store_open.as_secs_f64() * 1e3,
                r.elapsed.as_secs_f64() * 1e3,
            );
            println!(
                "{label:<8} {:>8.2} ms  (sled {sled:.2} ms, then holdfast's recovery of {} running runs {rebuild:.2} ms; {:.0} ms more waiting for the closed store's lock)",
                sled + rebuild,
                r.runs,
                total - sled - rebuild
            );
            Ok::<_, Box<dyn std::error::Error>>(engine)
        }
    };
    drop(open("open").await?);
    // sled replays its log since its last snapshot, and writes a snapshot
    // when it opens: the next open pays only for what was written since.
    let engine = open("reopen").await?;
    let timed = |name: &'static str, filter: ListFilter| {
        let engine = engine.clone();
        async move {
            let t = Instant::now();
            let page = engine.list(&filter, 50, None).await?;
            let first = ms(t);
            let t = Instant::now();
            let second = match &page.next_page_token {
                Some(token) => Some(engine.list(&filter, 50, Some(token)).await?),
                None => None,
            };
            let next = ms(t);
            println!(
                "{name:<8} {first:>8.2} ms  first page ({} rows), {next:.2} ms the next ({} rows)",
                page.executions.len(),
                second.map_or(0, |p| p.executions.len())
            );
            Ok::<_, crate::engine::EngineError>(())
        }
    };
    let filters = [
        ("page", ListFilter::default()),
        (
            "running",
            ListFilter {
                status: Some(WorkflowExecutionStatus::Running),
                ..ListFilter::default()
            },
        ),
        (
            "type",
            ListFilter {
                workflow_type: Some("MoneyTransfer".into()),
                ..ListFilter::default()
            },
        ),
        (
            "retrying",
            ListFilter {
                retrying: true,
                ..ListFilter::default()
            },
        ),
        (
            "text",
            ListFilter {
                // The ids around the middle of the store: matches deep in it.
                text: Some(format!("run-{:06}", n / 2)[..8].to_string()),
                ..ListFilter::default()
            },
        ),
    ];
    for (name, filter) in filters {
        timed(name, filter).await?;
    }
    let t = Instant::now();
    let d = engine.describe("stuck", None).await?;
    println!(
        "describe {:>8.2} ms  ({} pending activity, attempt {})",
        ms(t),
        d.pending_activities.len(),
        d.pending_activities.first().map_or(0, |a| a.attempt)
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
