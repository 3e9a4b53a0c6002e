//! `holdfast scenario list` and `holdfast scenario run FILE… | --all`: the
//! guided scenarios, headless. On the virtual clock by default (a story of
//! minutes runs in a moment); `--speed X` runs it on the scaled clock
//! instead, slowly enough to watch (the slow demo of the same file).

use std::path::PathBuf;

use crate::apps::lab::Lab;
use crate::apps::research::Llm;
use crate::engine::{Clock, EngineConfig};
use crate::scenario::{self, Scenario};

#[derive(clap::Subcommand, Debug)]
pub enum ScenarioCmd {
    /// The scenarios, a line each.
    List {
        /// Where the scenario files are (default ./scenarios).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run scenarios headless: each step with a tick or a cross and what was observed.
    Run {
        /// Scenario files (`scenarios/first-transfer.toml`) or names (`first-transfer`).
        files: Vec<String>,
        /// Every scenario in the directory.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run on the real clock at this speed (1–60) instead of the virtual clock.
        #[arg(long, value_parser = super::parse_speed)]
        speed: Option<f64>,
        /// Where the run's data goes (a fresh temporary directory by default).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn main(cmd: ScenarioCmd) -> Result<(), String> {
    // HOLDFAST_LOG=debug shows what the engine did, on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match cmd {
        ScenarioCmd::List { dir } => {
            let dir = dir.unwrap_or_else(scenario::default_dir);
            for f in scenario::files_in(&dir)? {
                let name = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match Scenario::load(&f) {
                    Ok(s) => println!("{name:<28} {} — {}", s.title, s.summary),
                    Err(e) => println!("{name:<28} ✗ {e}"),
                }
            }
            Ok(())
        }
        ScenarioCmd::Run {
            files,
            all,
            dir,
            speed,
            data_dir,
        } => {
            let dir = dir.unwrap_or_else(scenario::default_dir);
            let paths: Vec<PathBuf> = if all {
                scenario::files_in(&dir)?
            } else if files.is_empty() {
                return Err(
                    "name the scenarios to run, or --all (see holdfast scenario list)".into(),
                );
            } else {
                files.iter().map(|f| scenario::find(f, &dir)).collect()
            };
            // Every file is read before anything starts.
            let mut scenarios = Vec::new();
            for p in &paths {
                scenarios.push((p.clone(), Scenario::load(p).map_err(|e| e.to_string())?));
            }
            let runtime = match speed {
                None => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build(),
                Some(_) => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build(),
            }
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
            let mut failed = Vec::new();
            for (path, s) in scenarios {
                let ok = runtime.block_on(run_one(&path, &s, speed, data_dir.clone()))?;
                if !ok {
                    failed.push(path.display().to_string());
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!("scenario(s) failed: {}", failed.join(", ")))
            }
        }
    }
}

async fn run_one(
    path: &std::path::Path,
    s: &Scenario,
    speed: Option<f64>,
    data_dir: Option<PathBuf>,
) -> Result<bool, String> {
    let tmp = tempdir_for(path)?;
    let dir = data_dir.unwrap_or_else(|| tmp.clone());
    let clock = match speed {
        None => Clock::virtual_time(),
        Some(x) => Clock::scaled(x),
    };
    let mut lab =
        Lab::open(EngineConfig::new(&dir).clock(clock), Llm::Offline).map_err(|e| e.to_string())?;
    println!("{} — {}", s.title, path.display());
    scenario::prepare(s, &mut lab)?;
    let ok = scenario::run(s, &mut lab, |r| println!("{}", scenario::describe_step(r))).await;
    println!("{}", if ok { "passed\n" } else { "FAILED\n" });
    lab.kill_workers();
    drop(lab);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ok)
}

fn tempdir_for(path: &std::path::Path) -> Result<PathBuf, String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let p = std::env::temp_dir().join(format!(
        "holdfast-scenario-{stem}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p.join("data"))
}
