//! `holdfast demo`: the money transfer, headless, on the real engine. The
//! deposit fails on its first two attempts (a real failing code path), the
//! engine retries it, and the run's history is printed as Temporal's
//! `workflow show` would. Kill it at any moment and run it again: it picks
//! the same run up where the store left it.

use std::time::Duration;

use super::render;
use crate::apps::bank::{self, PaymentDetails, WORKFLOW_ID};
use crate::apps::faults::Fault;
use crate::apps::lab::Lab;
use crate::apps::research::Llm;
use crate::engine::{Clock, Engine, EngineConfig, EngineError, WorkflowExecutionStatus};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
    /// Run the clock this many times faster, so backoff is quick to watch.
    #[arg(long, default_value_t = 10.0, value_parser = super::parse_speed, allow_negative_numbers = true)]
    pub speed: f64,
    /// How many deposit attempts fail before one succeeds.
    #[arg(long, default_value_t = 2)]
    pub deposit_failures: u32,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            data_dir: super::default_data_dir(),
            speed: 10.0,
            deposit_failures: 2,
        }
    }
}

pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = EngineConfig::new(&args.data_dir).clock(Clock::scaled(args.speed));
    let mut lab = Lab::open(config, Llm::Offline)?;
    let failures = args.deposit_failures;
    lab.set_fault(Fault::DepositBug, failures > 0)?;
    lab.start_workers();
    let engine = lab.engine().clone();
    let bank = lab.bank().clone();

    // Retried without limit while the bug is in, as the tutorial's exercise.
    // A fresh reference for a new run: a reference is one transfer.
    let fresh = format!("{:x}", Clock::system().now_ms());
    let tutorial = PaymentDetails::tutorial();
    let details = PaymentDetails::new(
        &tutorial.source_account,
        &tutorial.target_account,
        tutorial.amount,
        &fresh,
    )
    .with_maximum_attempts(0);
    match bank::start_transfer(&engine, WORKFLOW_ID, &details).await {
        Ok(h) => println!("Started workflow {} (run {})", h.workflow_id, h.run_id),
        Err(EngineError::AlreadyStarted { run_id, .. }) => {
            println!("Workflow {WORKFLOW_ID} is already running (run {run_id}); resuming it")
        }
        Err(e) => return Err(e.into()),
    }
    println!(
        "Clock: {}x. The worker runs the buggy deposit; after {failures} failed attempt(s) the fixed one is swapped in.\n",
        args.speed
    );
    if failures > 0 {
        wait_for_failed_deposits(&engine, failures).await?;
        lab.hot_swap_fix()?;
        println!(
            "Deposit failed {failures} time(s): swapped the fixed deposit into the running worker.\n"
        );
    }
    let outcome = engine.result(WORKFLOW_ID, None).await?;
    let history = engine.history(WORKFLOW_ID, None).await?;
    print!("{}", render::history_table(&history));
    let desc = engine.describe(WORKFLOW_ID, None).await?;
    println!();
    print!("{}", render::results_block(&desc.info, &outcome));
    println!("\nBalances:");
    for a in bank.accounts()? {
        println!("  {:<8} {:>8}", a.number, a.balance);
    }
    if desc.info.status != WorkflowExecutionStatus::Completed {
        return Err("the transfer did not complete".into());
    }
    println!("\nData directory: {}", args.data_dir.display());
    Ok(())
}

/// Waits until the deposit has failed `n` times (or the run is no longer running).
async fn wait_for_failed_deposits(engine: &Engine, n: u32) -> Result<(), EngineError> {
    let mut changes = engine.subscribe();
    loop {
        let d = engine.describe(WORKFLOW_ID, None).await?;
        if d.info.status != WorkflowExecutionStatus::Running {
            return Ok(());
        }
        let failed = d
            .pending_activities
            .iter()
            .find(|a| a.activity_type == "deposit")
            .map(|a| a.attempt.saturating_sub(1))
            .unwrap_or(0);
        if failed >= n {
            return Ok(());
        }
        tokio::select! {
            _ = changes.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
