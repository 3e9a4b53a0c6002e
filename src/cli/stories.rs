//! The two stories from the command line, each with a worker in this
//! process: `holdfast transfer` and `holdfast report`, plus `holdfast
//! accounts`. Stop either with Ctrl-C at any moment; the workflow waits in
//! the data directory, and the same command with the same `--id` picks it up
//! (with the bug fixed, or the e-mail service back).

use std::time::Duration;

use crate::apps::bank::{self, Bank, PaymentDetails};
use crate::apps::faults::Fault;
use crate::apps::lab::Lab;
use crate::apps::research::{self, GenerateReportInput, GenerateReportOutput, Llm, UserDecision};
use crate::engine::{
    Clock, Engine, EngineConfig, EngineError, Payload, WorkflowExecutionStatus, WorkflowOutcome,
};

type CliResult = Result<(), Box<dyn std::error::Error>>;

#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
    #[arg(long, default_value = "85-150")]
    pub from: String,
    #[arg(long, default_value = "43-812")]
    pub to: String,
    #[arg(long, default_value_t = 250, allow_negative_numbers = true)]
    pub amount: i64,
    /// The transfer's reference; a fresh one by default. A reference is one
    /// transfer: a used one is refused.
    #[arg(long)]
    pub reference: Option<String>,
    /// Workflow id.
    #[arg(long, default_value = bank::WORKFLOW_ID)]
    pub id: String,
    /// Run the worker with the tutorial's bug: deposit calls deposit_that_fails.
    #[arg(long)]
    pub deposit_bug: bool,
    /// Attempts per activity (the tutorial's 3); 0 retries without limit.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    pub max_attempts: u32,
    /// Run the clock this many times faster.
    #[arg(long, default_value_t = 1.0, value_parser = super::parse_speed, allow_negative_numbers = true)]
    pub speed: f64,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// What to research (not needed to resume an existing --id).
    pub prompt: Option<String>,
    /// Data directory (created if missing).
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
    /// Workflow id; a running one is resumed. Default: a new one.
    #[arg(long)]
    pub id: Option<String>,
    /// Skip the approval step (part 1 of the tutorial).
    #[arg(long)]
    pub no_approval: bool,
    /// Who gets the report (an address, or `Name <address>`).
    #[arg(long)]
    pub to: Option<String>,
    /// The e-mail service is down: send_email fails until you stop and rerun without this.
    #[arg(long)]
    pub email_outage: bool,
    /// The LLM endpoint answers 503 until you stop and rerun without this.
    #[arg(long)]
    pub llm_failing: bool,
    /// Run the clock this many times faster.
    #[arg(long, default_value_t = 1.0, value_parser = super::parse_speed, allow_negative_numbers = true)]
    pub speed: f64,
}

#[derive(clap::Args, Debug)]
pub struct AccountsArgs {
    /// Data directory.
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
}

/// Logs (the workers' `Deposit failed …` lines, as the tutorial's worker
/// prints them) go to stderr; RUST_LOG overrides the level.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // sled's own lines are its business: holdfast says what matters in words.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sled=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Waits for the run's result, or Ctrl-C.
async fn result_or_interrupt(
    engine: &Engine,
    id: &str,
    resume: &str,
) -> Result<Option<WorkflowOutcome>, EngineError> {
    tokio::select! {
        out = engine.result(id, None) => out.map(Some),
        _ = tokio::signal::ctrl_c() => {
            println!("\nStopped. Workflow {id} is still running in the data directory; resume with:\n  {resume}");
            Ok(None)
        }
    }
}

fn outcome_line(out: &WorkflowOutcome) -> (bool, String) {
    match out {
        WorkflowOutcome::Completed(p) => (true, format!("Result: {}", p.0)),
        WorkflowOutcome::Failed(f) => (
            false,
            format!(
                "Workflow failed: {}",
                crate::text::one_line(&f.chain().to_string())
            ),
        ),
        other => (false, format!("Workflow ended: {other:?}")),
    }
}

/// The details a run was started with (its WorkflowExecutionStarted input).
async fn started_details(engine: &Engine, id: &str) -> Result<PaymentDetails, EngineError> {
    let first = engine.history_after(id, None, 0, 1).await?;
    match first.first().map(|e| &e.attributes) {
        Some(crate::engine::EventAttributes::WorkflowExecutionStarted { input, .. }) => {
            input.to_value().map_err(|e| EngineError::InvalidInput {
                workflow_type: bank::WORKFLOW_TYPE.into(),
                detail: e.to_string(),
            })
        }
        _ => Err(EngineError::WorkflowNotFound {
            workflow_id: id.to_string(),
        }),
    }
}

pub async fn transfer(args: TransferArgs) -> CliResult {
    init_logs();
    let fresh = format!("{:x}", crate::engine::Clock::system().now_ms());
    let reference = args.reference.clone().unwrap_or(fresh);
    let mut details = PaymentDetails::new(&args.from, &args.to, args.amount, &reference);
    details = details.with_maximum_attempts(args.max_attempts);
    details.validate()?;
    if !args.data_dir.join("db").exists() {
        // A new bank holds its seed accounts: refuse others before creating anything.
        for account in [&details.source_account, &details.target_account] {
            if !bank::SEED_ACCOUNTS.iter().any(|(a, _)| a == account) {
                return Err(bank::BankError::InvalidAccount {
                    account: account.clone(),
                }
                .into());
            }
        }
    }
    let config = EngineConfig::new(&args.data_dir).clock(Clock::scaled(args.speed));
    let mut lab = Lab::open(config, Llm::Offline)?;
    lab.set_fault(Fault::DepositBug, args.deposit_bug)?;
    let engine = lab.engine().clone();
    let running = engine
        .describe(&args.id, None)
        .await
        .ok()
        .filter(|d| d.info.status == WorkflowExecutionStatus::Running);
    if running.is_none() {
        // Accounts that do not exist are refused before anything starts.
        for account in [&details.source_account, &details.target_account] {
            lab.bank().account(account)?;
        }
    }
    if running.is_none()
        && let Some(used) = lab.bank().entry(&reference, bank::Movement::Withdrawal)?
    {
        return Err(format!(
            "the reference {reference} was already used by an earlier transfer ({}); leave out --reference for a fresh one",
            used.transaction_id
        )
        .into());
    }
    lab.start_workers();
    let details = match bank::start_transfer(&engine, &args.id, &details).await {
        Ok(h) => {
            println!("Started workflow {} (run {})", h.workflow_id, h.run_id);
            details
        }
        Err(EngineError::AlreadyStarted { run_id, .. }) => {
            println!(
                "Workflow {} is already running (run {run_id}); the worker picks it up",
                args.id
            );
            // What the run does is what it was started with, not this command's defaults.
            let started = started_details(&engine, &args.id).await?;
            let differs = (
                &started.source_account,
                &started.target_account,
                started.amount,
            ) != (
                &details.source_account,
                &details.target_account,
                details.amount,
            );
            if differs {
                println!(
                    "(it keeps the request it was started with; this command's --from/--to/--amount are not used)"
                );
            }
            started
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "Worker: deposit is {} code. Moving {} from {} to {} (reference {})…",
        if args.deposit_bug {
            "the buggy"
        } else {
            "the fixed"
        },
        details.amount,
        details.source_account,
        details.target_account,
        details.reference_id
    );
    let resume = format!(
        "holdfast transfer --id {} --data-dir {}   (without --deposit-bug: the fixed code)",
        args.id,
        args.data_dir.display()
    );
    let Some(out) = result_or_interrupt(&engine, &args.id, &resume).await? else {
        return Ok(());
    };
    let (ok, line) = outcome_line(&out);
    println!("{line}");
    if !ok {
        // Say what happened to the money, from the bank's own books.
        let bank = lab.bank();
        let reference = &details.reference_id;
        match (
            bank.entry(reference, bank::Movement::Withdrawal)?,
            bank.entry(reference, bank::Movement::Refund)?,
        ) {
            (Some(_), Some(r)) => println!(
                "Refunded {} to {} ({}): no money was lost.",
                r.delta, r.account, r.transaction_id
            ),
            (Some(w), None) => println!(
                "{} was withdrawn from {} ({}) and not refunded.",
                -w.delta, w.account, w.transaction_id
            ),
            (None, _) => println!("No money moved."),
        }
    }
    for a in [&details.source_account, &details.target_account] {
        if let Ok(acct) = lab.bank().account(a) {
            println!("  {:<8} {:>8}", acct.number, acct.balance);
        }
    }
    if ok {
        Ok(())
    } else {
        Err("the transfer failed".into())
    }
}

async fn query_text(engine: &Engine, id: &str, name: &str) -> Result<Option<String>, EngineError> {
    let p = engine.query(id, None, name, Payload("null".into())).await?;
    Ok(p.to_value::<Option<String>>().ok().flatten())
}

/// Reads one line from the terminal (None at end of input).
async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        match std::io::stdin().read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.trim().to_string()),
        }
    })
    .await
    .ok()
    .flatten()
}

pub async fn report(args: ReportArgs) -> CliResult {
    init_logs();
    let llm = Llm::from_env()?;
    let config = EngineConfig::new(&args.data_dir).clock(Clock::scaled(args.speed));
    // A refused request creates nothing: check it before the data directory.
    let mut lab = match (&args.prompt, &args.id) {
        (Some(prompt), _) => {
            let mut input =
                GenerateReportInput::new(prompt.clone()).with_llm_timeout(llm.timeout());
            input.approval = !args.no_approval;
            input.email_to = args.to.clone();
            input.validate()?;
            Lab::open(config, llm.clone())?
        }
        (None, Some(_)) => Lab::on_existing(config, llm.clone())?,
        (None, None) => {
            return Err(
                "no prompt given and no --id to resume; try: holdfast report \"What is durable execution?\""
                    .into(),
            );
        }
    };
    lab.set_fault(Fault::EmailOutage, args.email_outage)?;
    lab.set_fault(Fault::LlmFailing, args.llm_failing)?;
    lab.start_workers();
    let engine = lab.engine().clone();
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{:08x}", research::WORKFLOW_ID_PREFIX, fastrand::u32(..)));
    let existing = engine.describe(&id, None).await.ok();
    match (&existing, &args.prompt) {
        (Some(d), _) if d.info.status == WorkflowExecutionStatus::Running => {
            println!("Resuming workflow {id}");
        }
        (_, Some(prompt)) => {
            let mut input =
                GenerateReportInput::new(prompt.clone()).with_llm_timeout(llm.timeout());
            input.approval = !args.no_approval;
            input.email_to = args.to.clone();
            let h = research::start_report(&engine, &id, &input).await?;
            println!("Started workflow {} (run {})", h.workflow_id, h.run_id);
        }
        (Some(_), None) => println!("Workflow {id} has ended; its result:"),
        (None, None) => {
            return Err(format!(
                "no prompt given and no workflow {id:?} to resume; try: holdfast report \"What is durable execution?\""
            )
            .into());
        }
    }
    println!("Model: {}", llm.label());
    let resume = format!(
        "holdfast report --id {id} --data-dir {}",
        args.data_dir.display()
    );
    if !matches!(&existing, Some(d) if d.info.status != WorkflowExecutionStatus::Running) {
        println!("Stop with Ctrl-C at any time; resume with: {resume}\n");
    }
    let outcome = loop {
        let status = query_text(&engine, &id, research::QUERY_STATUS).await;
        if let Ok(Some(s)) = &status
            && s.starts_with("waiting")
        {
            let draft = query_text(&engine, &id, research::QUERY_RESULT)
                .await?
                .unwrap_or_default();
            // The model's answer is data: it cannot drive the terminal.
            let draft = crate::text::printable(&draft);
            println!("--- draft ---\n{draft}\n-------------");
            println!("Keep it (k), or ask for an edit (e <more instructions>)?");
            let (decision, extra) = loop {
                let Some(line) = read_line().await else {
                    println!("No answer; the workflow waits. Resume with: {resume}");
                    return Ok(());
                };
                let (word, extra) = match line.split_once(' ') {
                    Some((d, rest)) => (d.to_string(), rest.trim().to_string()),
                    None => (line.clone(), String::new()),
                };
                match word.to_ascii_lowercase().as_str() {
                    "k" | "keep" | "y" | "yes" => break (UserDecision::Keep, extra),
                    "e" | "edit" => break (UserDecision::Edit, extra),
                    // Asked again, without the whole draft again.
                    _ => println!("Type k to keep, or e followed by instructions."),
                }
            };
            research::decide(&engine, &id, decision, &extra).await?;
            // Until the workflow has taken the decision in.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                match query_text(&engine, &id, research::QUERY_STATUS).await {
                    Ok(Some(s)) if s.starts_with("waiting") => {}
                    _ => break,
                }
            }
            continue;
        }
        tokio::select! {
            out = engine.result(&id, None) => break out?,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = tokio::signal::ctrl_c() => {
                println!("\nStopped. Workflow {id} is still running; resume with:\n  {resume}");
                return Ok(());
            }
        }
    };
    let (ok, line) = outcome_line(&outcome);
    if let WorkflowOutcome::Completed(p) = &outcome
        && let Ok(out) = p.to_value::<GenerateReportOutput>()
    {
        println!("{}", crate::text::printable(&out.result));
        println!("  PDF:    {}", args.data_dir.join(&out.pdf).display());
        println!("  E-mail: {}", args.data_dir.join(&out.email).display());
        return Ok(());
    }
    println!("{line}");
    if ok {
        Ok(())
    } else {
        Err("the report failed".into())
    }
}

pub async fn accounts(args: AccountsArgs) -> CliResult {
    let engine = Engine::open_existing(EngineConfig::new(&args.data_dir))?;
    let bank = Bank::open(&engine)?;
    println!("{:<8} {:>10}", "Account", "Balance");
    for a in bank.accounts()? {
        println!("{:<8} {:>10}", a.number, a.balance);
    }
    let journal = bank.journal()?;
    println!("\n{} movement(s) of money", journal.len());
    for e in journal.iter().rev().take(10) {
        println!(
            "  {:<24} {:<8} {:>+8}  {}",
            e.reference, e.account, e.delta, e.transaction_id
        );
    }
    Ok(())
}
