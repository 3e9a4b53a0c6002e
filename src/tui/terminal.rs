//! `holdfast` in the real terminal: the picker, then the screen (free play
//! on the data dir, or a scenario guided on a fresh directory of its own),
//! again after `r`; logs to the log pane and a file, never to the screen;
//! the terminal restored on every way out.

use std::path::{Path, PathBuf};

use super::picker::{self, Choice};
use super::theme::Theme;
use super::{log, run};
use crate::apps::lab::Lab;
use crate::apps::research;
use crate::engine::{Clock, EngineConfig};
use crate::scenario::Scenario;

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into())
}

/// A fresh directory for a guided scenario, inside the person's, so its
/// checks see only its own runs and money.
fn fresh_dir(data_dir: &Path, stem: &str) -> Result<PathBuf, String> {
    let dir = data_dir.join("scenarios").join(stem);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot start {stem} afresh in {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `holdfast`: the picker (unless `scenario` names one), then the screen.
/// Errors before the screen opens (a data dir another holdfast holds, a
/// broken scenario) are one line on stderr.
pub fn run_in_terminal(
    data_dir: PathBuf,
    speed: f64,
    scenario: Option<String>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // A named scenario is read before the terminal changes.
    let named = match &scenario {
        Some(name) => {
            let path = crate::scenario::find(name, &crate::scenario::default_dir());
            Scenario::load(&path).map_err(|e| e.to_string())?;
            Some(path)
        }
        None => None,
    };
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let logs = log::LogBuffer::new(500);
    install_logging(&data_dir, &logs)?;
    runtime.block_on(async move {
        // color-eyre first, then ratatui's hook restores the terminal before it.
        let _ = color_eyre::install();
        let mut terminal = ratatui::init();
        let mut input = crossterm::event::EventStream::new();
        let theme = Theme::from_env();
        let out = async {
            let mut choice = match named {
                Some(p) => Choice::Scenario(p),
                None => picker::pick(&mut terminal, &mut input, &data_dir, theme).await?,
            };
            loop {
                let (dir, speed, guided) = match &choice {
                    Choice::Quit => return Ok(()),
                    Choice::FreePlay => (data_dir.clone(), speed, None),
                    Choice::Scenario(path) => {
                        let s = Scenario::load(path).map_err(|e| e.to_string())?;
                        let stem = stem_of(path);
                        let speed = if speed > 1.0 { speed } else { s.speed };
                        (fresh_dir(&data_dir, &stem)?, speed, Some((s, stem)))
                    }
                };
                let config = EngineConfig::new(&dir).clock(Clock::scaled(speed));
                let llm = research::Llm::from_env().map_err(|e| e.to_string())?;
                let lab = Lab::open(config, llm).map_err(|e| e.to_string())?;
                let (scenario, stem) = match guided {
                    Some((s, stem)) => (Some(s), Some(stem)),
                    None => (None, None),
                };
                let outcome = run(
                    &mut terminal,
                    &mut input,
                    lab,
                    theme,
                    logs.clone(),
                    scenario,
                )
                .await?;
                if let Some(stem) = &stem
                    && outcome.scenario_done
                {
                    picker::mark_done(&data_dir, stem);
                }
                if !outcome.replay {
                    return Ok(());
                }
                // `r`: the same scenario again, from a fresh run.
                choice = match choice {
                    Choice::Scenario(p) => Choice::Scenario(p),
                    other => other,
                };
            }
        }
        .await;
        ratatui::restore();
        out
    })
}

/// Logs go to the log pane and to a file in the data dir, never to the screen.
fn install_logging(data_dir: &Path, logs: &log::LogBuffer) -> Result<(), String> {
    use tracing_subscriber::prelude::*;
    let path = data_dir.join("holdfast.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=off"))
    };
    let _ = tracing_subscriber::registry()
        .with(logs.layer().with_filter(filter()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .with_filter(filter()),
        )
        .try_init();
    Ok(())
}
