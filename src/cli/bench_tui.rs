//! `holdfast bench --tui`: what the screen costs. The store is filled (N
//! runs, one with a 10,000-event history), then a fresh process opens it as
//! `holdfast` would and measures: frame time (one draw of the whole
//! screen) with the long history selected, a reload after an engine
//! change, the CPU the running screen takes over 30 s, first with nothing
//! running, then with a transfer retrying, and its RSS. Figures, not a test.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::bench::{fill, peak_rss_kib, percentile};
use crate::apps::bank::{self, PaymentDetails};
use crate::apps::lab::Lab;
use crate::apps::research::Llm;
use crate::engine::{
    ActivityContext, ApplicationError, Clock, EngineConfig, Payload, StartWorkflowOptions,
    WfContext, Worker, WorkerOptions, WorkflowError, activity_options,
};
use crate::tui::app::{App, Event};
use crate::tui::theme::Theme;

/// Events in the long history the screen shows.
const LONG_EVENTS: usize = 10_000;

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

pub async fn run(
    n: usize,
    c: usize,
    root: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    if cfg!(debug_assertions) {
        println!(
            "note: this is a debug build; run `cargo run --release -- bench --tui` for real figures"
        );
    }
    println!(
        "holdfast bench --tui: {n} runs and one with a {LONG_EVENTS}-event history, in {}",
        root.display()
    );
    let config = EngineConfig::new(root.join("data")).clock(Clock::system());
    let t = Instant::now();
    {
        // Filled before the lab opens: its types check their inputs.
        let engine = crate::engine::Engine::open(config.clone())?;
        fill(&engine, n, c).await?;
    }
    let lab = Lab::open(config, Llm::Offline)?;
    let engine = lab.engine().clone();
    // One long run: sequential trivial activities, 6 events each.
    let mut w = Worker::new(&engine, WorkerOptions::new("long", "bench-worker"));
    w.register_workflow("Long", |ctx: WfContext, n: u64| async move {
        let o = activity_options().start_to_close(Duration::from_secs(30));
        for i in 0..n {
            let _: u64 = ctx.activity("step", &i, o.clone()).await?;
        }
        Ok::<_, WorkflowError>(n)
    });
    w.register_activity("step", |_: ActivityContext, i: u64| async move {
        Ok::<_, ApplicationError>(i)
    });
    let worker = w.start();
    let steps = (LONG_EVENTS as u64 - 5) / 6;
    engine
        .start_workflow(StartWorkflowOptions::new(
            "long",
            "Long",
            "long",
            Payload(steps.to_string()),
        ))
        .await?;
    engine.result("long", None).await?;
    worker.kill();
    drop(worker);
    println!("filled   in {:.1} s", t.elapsed().as_secs_f64());
    drop(engine);
    drop(lab);
    // The screen in a process of its own, as a person opening the store has it.
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "--tui-screen"])
        .arg(root.join("data"))
        .args(["-n", &n.to_string()])
        .status()?;
    if !out.success() {
        return Err(format!("the screen's half of the bench failed: {out}").into());
    }
    Ok(())
}

/// The screen's half: opens the filled store and measures.
pub async fn screen(dir: &std::path::Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let config = EngineConfig::new(dir).clock(Clock::system());
    // The filling process may still be letting go of the store.
    let mut lab = Lab::reopen(config, Llm::Offline).await?;
    let engine = lab.engine().clone();
    // Frames: the whole screen drawn, with the long history selected.
    let mut app = App::new(lab.snapshot(), engine.now_ms());
    let filter = app.status_filter.to_filter("");
    let loaded = crate::tui::load(
        &engine,
        lab.bank(),
        &filter,
        app.list_limit,
        Some("long".into()),
        None,
    )
    .await?;
    let events = loaded.run.as_ref().map_or(0, |v| v.history.len());
    app.handle(Event::Loaded {
        request: app.request,
        loaded: Box::new(loaded),
    });
    app.focus = crate::tui::app::Pane::History;
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    let mut frames = Vec::new();
    for i in 0..1_000 {
        // Move the cursor, as a person scrolling does.
        app.history_cursor = (i * 37) % events.max(1);
        let t = Instant::now();
        term.draw(|f| crate::tui::view::draw(f, &app, Theme::from_env()))?;
        frames.push(t.elapsed());
    }
    frames.sort();
    println!(
        "frame    p50 {:.2} ms  p99 {:.2} ms  (200×60, {} runs listed of {n}, {events} events selected)",
        percentile(&frames, 0.50).as_secs_f64() * 1e3,
        percentile(&frames, 0.99).as_secs_f64() * 1e3,
        app.runs.len()
    );
    // Reloads: what the screen reads after a change (only new events).
    let mut reloads = Vec::new();
    let have = app.run.as_ref().map(|r| {
        (
            r.description.info.run_id.clone(),
            r.history.last().map_or(0, |e| e.event_id),
        )
    });
    for _ in 0..50 {
        let t = Instant::now();
        crate::tui::load(
            &engine,
            lab.bank(),
            &filter,
            crate::tui::app::PAGE,
            Some("long".into()),
            have.clone(),
        )
        .await?;
        reloads.push(t.elapsed());
    }
    reloads.sort();
    println!(
        "reload   p50 {:.2} ms  p99 {:.2} ms  (list page, retrying runs, describe, new events)",
        percentile(&reloads, 0.50).as_secs_f64() * 1e3,
        percentile(&reloads, 0.99).as_secs_f64() * 1e3
    );

    // Idle: the real loop with no key pressed, its worker up (running the
    // buggy deposit); first nothing retrying, then a transfer retrying.
    lab.set_fault(crate::apps::faults::Fault::DepositBug, true)?;
    lab.start_workers();
    let engine2 = engine.clone();
    let (lab_tx, lab_rx) = tokio::sync::oneshot::channel::<()>();
    let screen = tokio::spawn(async move {
        let mut term = Terminal::new(TestBackend::new(160, 48)).expect("test backend");
        let input = futures::stream::pending::<std::io::Result<crossterm::event::Event>>();
        let logs = crate::tui::log::LogBuffer::new(100);
        let _ = lab_tx.send(());
        let _ = crate::tui::run(&mut term, input, lab, Theme::from_env(), logs, None).await;
    });
    let _ = lab_rx.await;
    let idle = Duration::from_secs(30);
    let measure = |what: &'static str| async move {
        let cpu = cpu_time();
        let wall = Instant::now();
        tokio::time::sleep(idle).await;
        let used = cpu_time() - cpu;
        let elapsed = wall.elapsed();
        println!(
            "idle     {:.2} % of a core over {:.0} s ({what})",
            used.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
            elapsed.as_secs_f64()
        );
    };
    measure("the screen and its worker, nothing running").await;
    // A transfer whose deposit fails every 2 s on the screen's worker.
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(&engine2, "retrying-transfer", &details).await?;
    measure("the screen, the engine and a worker retrying a deposit every 2 s").await;
    screen.abort();
    // The same without the screen: what the engine and the worker cost alone.
    measure("no screen: the engine and the worker retrying alone").await;
    let still = engine2.describe("retrying-transfer", None).await?;
    if still.info.status != crate::engine::WorkflowExecutionStatus::Running {
        return Err("the transfer stopped retrying during the bench".into());
    }
    if let Some(kib) = peak_rss_kib() {
        println!(
            "memory   peak RSS {:.1} MiB (the screen's process: store open, {n} runs)",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}
