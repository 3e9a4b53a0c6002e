//! The bank invariant workload (Jepsen's bank test), run as a child process
//! that the tests SIGKILL at random instants: transfers between the bank's
//! eight accounts — some too large, some to or from accounts that do not
//! exist — while the deposit bug is switched in and out of the running
//! worker at random. Run again on the same data dir, it starts only what
//! does not exist yet and waits until every transfer has ended.
//!
//! Prints `STARTED` once every transfer exists, `DONE <id> <status>` as each ends.

use std::time::Duration;

use crate::apps::bank::{self, Bank, DepositCode, PaymentDetails, QUEUE, SEED_ACCOUNTS};
use crate::engine::{
    Clock, Engine, EngineConfig, EngineError, Worker, WorkerOptions, WorkflowOutcome,
};

#[derive(clap::Args, Debug, Clone)]
pub struct BankChaosArgs {
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// Transfers `transfer-0` … `transfer-<n-1>`.
    #[arg(long, default_value_t = 500)]
    pub transfers: usize,
    /// Seed of the transfer plan (the same in every child of one test).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Clock speed-up, so the tutorial's 1-2 s backoffs pass quickly.
    #[arg(long, default_value_t = 20.0)]
    pub speed: f64,
}

/// The transfers, the same for a given seed: mostly valid, some too large,
/// some from or to an account that does not exist, and some (5 %) the same
/// request as an earlier transfer, reference included, started again — as a
/// person re-running a command would. A reused reference moves money at
/// most once: never again once it was refunded.
pub fn plan(seed: u64, n: usize) -> Vec<(String, PaymentDetails)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let accounts: Vec<&str> = SEED_ACCOUNTS.iter().map(|(a, _)| *a).collect();
    let mut plan: Vec<(String, PaymentDetails)> = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("transfer-{i}");
        if i > 0 && rng.u8(..100) < 5 {
            let again = plan[rng.usize(..i)].1.clone();
            plan.push((id, again));
            continue;
        }
        let source = match rng.u8(..100) {
            0..3 => "99-999",
            _ => accounts[rng.usize(..accounts.len())],
        };
        let target = loop {
            let t = match rng.u8(..100) {
                0..5 => "00-000",
                _ => accounts[rng.usize(..accounts.len())],
            };
            if t != source {
                break t;
            }
        };
        let amount = match rng.u8(..100) {
            0..5 => rng.i64(5_000..50_000),
            _ => rng.i64(1..=250),
        };
        let details =
            PaymentDetails::new(source, target, amount, &format!("t{i}")).with_maximum_attempts(0);
        plan.push((id, details));
    }
    plan
}

pub async fn run_child(args: BankChaosArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::open(EngineConfig::new(&args.data_dir).clock(Clock::scaled(args.speed)))?;
    let bank = Bank::open(&engine)?;
    let mut rng = fastrand::Rng::new();
    let mut code = if rng.bool() {
        DepositCode::Buggy
    } else {
        DepositCode::Fixed
    };
    let mut w = Worker::new(
        &engine,
        WorkerOptions::new(QUEUE, format!("bank-chaos-{}", std::process::id())),
    );
    bank::register(&engine, &mut w, &bank, code);
    let worker = w.start();
    // The fault: the buggy deposit swapped in and out of the running worker.
    let faults = {
        let bank = bank.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(rng.u64(5..60))).await;
                code = match code {
                    DepositCode::Buggy => DepositCode::Fixed,
                    DepositCode::Fixed => DepositCode::Buggy,
                };
                bank::swap_deposit(&worker, &bank, code);
            }
        })
    };

    let plan = plan(args.seed, args.transfers);
    for (id, details) in &plan {
        match engine.describe(id, None).await {
            Ok(_) => {}
            Err(EngineError::WorkflowNotFound { .. }) => {
                bank::start_transfer(&engine, id, details).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("STARTED");
    let mut waits = Vec::new();
    for (id, _) in plan {
        let engine = engine.clone();
        waits.push(tokio::spawn(async move {
            let out = engine.result(&id, None).await;
            (id, out)
        }));
    }
    for w in waits {
        let (id, out) = w.await?;
        let status = match out? {
            WorkflowOutcome::Completed(_) => "completed",
            WorkflowOutcome::Failed(_) => "failed",
            other => return Err(format!("{id} ended unexpectedly: {other:?}").into()),
        };
        println!("DONE {id} {status}");
    }
    faults.abort();
    Ok(())
}
