//! `holdfast demo`: the money transfer, headless, on the real engine. The
//! deposit fails on its first two attempts (a real failing code path), the
//! engine retries it, and the run's history is printed as Temporal's
//! `workflow show` would. Kill it at any moment and run it again: it picks
//! the same run up where the store left it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::render;
use crate::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, EngineError, Payload,
    RetryPolicy, StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError,
    WorkflowExecutionStatus, activity_options,
};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
    /// Run the clock this many times faster, so backoff is quick to watch.
    #[arg(long, default_value_t = 10.0)]
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

/// The tutorial's `PaymentDetails`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct PaymentDetails {
    pub source_account: String,
    pub target_account: String,
    pub amount: u64,
    pub reference_id: String,
}

pub const QUEUE: &str = "TRANSFER_MONEY_TASK_QUEUE";
pub const WORKFLOW_ID: &str = "pay-invoice-701";

async fn money_transfer(ctx: WfContext, p: PaymentDetails) -> Result<String, WorkflowError> {
    let policy = RetryPolicy {
        maximum_interval: Duration::from_secs(2),
        maximum_attempts: 5,
        non_retryable_error_types: vec![
            "InvalidAccountError".into(),
            "InsufficientFundsError".into(),
        ],
        ..RetryPolicy::default()
    };
    let opts = activity_options()
        .start_to_close(Duration::from_secs(5))
        .retry(policy);
    let w: String = ctx.activity("withdraw", &p, opts.clone()).await?;
    let d: String = ctx.activity("deposit", &p, opts).await?;
    Ok(format!("Transfer complete (transaction IDs: {w}, {d})"))
}

pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::open(EngineConfig::new(&args.data_dir).clock(Clock::scaled(args.speed)))?;
    let failures = args.deposit_failures;
    let mut w = Worker::new(
        &engine,
        WorkerOptions::new(QUEUE, format!("{}@demo", std::process::id())),
    );
    w.register_workflow("MoneyTransfer", money_transfer);
    w.register_activity(
        "withdraw",
        |_: ActivityContext, p: PaymentDetails| async move {
            Ok::<_, ApplicationError>(format!("W-{}-withdrawal", p.reference_id))
        },
    );
    w.register_activity(
        "deposit",
        move |ctx: ActivityContext, p: PaymentDetails| async move {
            if ctx.attempt <= failures {
                return Err(ApplicationError::retryable(
                    "ValueError",
                    "This deposit has failed.",
                ));
            }
            Ok(format!("D-{}-deposit", p.reference_id))
        },
    );
    let _worker = w.start();

    let details = PaymentDetails {
        source_account: "85-150".into(),
        target_account: "43-812".into(),
        amount: 250,
        reference_id: "12345".into(),
    };
    let start = engine
        .start_workflow(StartWorkflowOptions::new(
            WORKFLOW_ID,
            "MoneyTransfer",
            QUEUE,
            Payload::from_value(&details)?,
        ))
        .await;
    match start {
        Ok(h) => println!("Started workflow {} (run {})", h.workflow_id, h.run_id),
        Err(EngineError::AlreadyStarted { run_id, .. }) => {
            println!("Workflow {WORKFLOW_ID} is already running (run {run_id}); resuming it")
        }
        Err(e) => return Err(e.into()),
    }
    println!(
        "Clock: {}x; the deposit fails {failures} time(s) before it works.\n",
        args.speed
    );
    let outcome = engine.result(WORKFLOW_ID, None).await?;
    let history = engine.history(WORKFLOW_ID, None).await?;
    print!("{}", render::history_table(&history));
    let desc = engine.describe(WORKFLOW_ID, None).await?;
    println!();
    print!("{}", render::results_block(&desc.info, &outcome));
    if desc.info.status != WorkflowExecutionStatus::Completed {
        return Err("the transfer did not complete".into());
    }
    println!("\nData directory: {}", args.data_dir.display());
    Ok(())
}
