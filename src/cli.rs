//! The command line: `holdfast` (the terminal UI), `holdfast demo` (the
//! same story headless), `holdfast bench`, `holdfast workflow …`, and the
//! crash-test children.

mod bank_chaos;
mod bench;
mod bench_long;
mod bench_tui;
mod chaos;
mod demo;
mod render;
mod scenario;
mod stories;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use chaos::ChaosArgs;

#[derive(Parser, Debug)]
#[command(
    name = "holdfast",
    version,
    about = "A durable-execution engine you can watch fail and recover"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// Where the screen keeps its workflows, bank and reports.
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: PathBuf,
    /// How many times faster than real time the screen's clock runs (1–60).
    #[arg(long, default_value = "1", value_parser = parse_speed)]
    pub speed: f64,
    /// Open the screen guided by a scenario (a name from `holdfast scenario
    /// list`, or a file), on a fresh data directory of its own.
    #[arg(long, value_name = "NAME|FILE")]
    pub scenario: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a money transfer headless (its deposit fails twice, then works) and print its history.
    Demo(demo::DemoArgs),
    /// Move money with the tutorial's MoneyTransfer workflow (a worker runs in this process).
    Transfer(stories::TransferArgs),
    /// Research a prompt with an LLM, approve the draft, get a PDF by e-mail (LLM_BASE_URL, LLM_API_KEY, LLM_MODEL; offline without).
    Report(stories::ReportArgs),
    /// Show the bank's accounts and its latest movements of money.
    Accounts(stories::AccountsArgs),
    /// Measure the engine: N transfer-shaped workflows, C in flight, every transition durable.
    Bench(bench::BenchArgs),
    /// Guided failure scenarios, headless: list them, run them.
    #[command(subcommand, arg_required_else_help = true)]
    Scenario(scenario::ScenarioCmd),
    /// Inspect workflows in a data directory.
    #[command(subcommand, arg_required_else_help = true)]
    Workflow(render::WorkflowCmd),
    /// A crash-test workload (run by the crash tests, killed at random instants).
    #[command(hide = true)]
    ChaosChild(ChaosArgs),
    /// The bank invariant workload (run by the bank crash test, killed at random instants).
    #[command(hide = true)]
    BankChaosChild(bank_chaos::BankChaosArgs),
}

/// `--speed`: how many times faster than real time the clock runs, within
/// the engine's range (1× to 60×); anything else is refused, not changed.
pub(crate) fn parse_speed(s: &str) -> Result<f64, String> {
    let (lo, hi) = crate::engine::SPEED_RANGE;
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(v),
        Ok(_) => Err(format!("the clock runs {lo}× to {hi}× real time")),
        Err(_) => Err("not a number".into()),
    }
}

/// A count of at least 1 (`--limit`, `-n`, `-c`).
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err("must be a whole number, at least 1".into()),
    }
}

/// The default data directory: `./holdfast-data`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("holdfast-data")
}

pub fn main(cli: Cli) -> ExitCode {
    // The screen and the scenarios build runtimes of their own (a terminal's;
    // a paused clock for the virtual time).
    let result = match cli.command {
        None => crate::tui::run_in_terminal(cli.data_dir, cli.speed, cli.scenario),
        Some(Cmd::Scenario(c)) => scenario::main(c),
        Some(command) => run_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(command: Cmd) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime
        .block_on(async move {
            match command {
                Cmd::Demo(a) => demo::run(a).await,
                Cmd::Transfer(a) => stories::transfer(a).await,
                Cmd::Report(a) => stories::report(a).await,
                Cmd::Accounts(a) => stories::accounts(a).await,
                Cmd::Bench(a) => bench::run(a).await,
                Cmd::Workflow(c) => render::run(c).await,
                Cmd::Scenario(_) => Err("scenarios run on a runtime of their own".into()),
                Cmd::ChaosChild(a) => chaos::run_child(a).await,
                Cmd::BankChaosChild(a) => bank_chaos::run_child(a).await,
            }
        })
        .map_err(|e| e.to_string())
}
