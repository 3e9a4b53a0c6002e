//! Guided failure scenarios: a short story that walks a person through one
//! failure and its recovery, each step an action and the checks that must
//! hold after it. The same file runs headless (here, and in `cargo test`),
//! as a slow demo on a scaled clock, and guided in the terminal UI.

pub mod check;
pub mod format;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use check::{Observed, observe};
pub use format::{AppKind, Check, FileKind, FormatError, RunStatus, Scenario, Step};

use crate::apps::lab::Lab;

/// What one step did: its checks as observed, and whether it passed.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// 1-based.
    pub number: usize,
    pub say: String,
    /// The action's name, if the step had one.
    pub action: Option<&'static str>,
    pub checks: Vec<(Check, Observed)>,
    /// Why the step failed without its checks (the action was refused).
    pub error: Option<String>,
    pub passed: bool,
}

/// Puts the lab in the scenario's starting state: its faults, its worker.
pub fn prepare(s: &Scenario, lab: &mut Lab) -> Result<(), String> {
    for f in crate::apps::faults::Fault::ALL {
        lab.set_fault(f, s.faults.contains(&f))
            .map_err(|e| e.to_string())?;
    }
    if s.worker {
        lab.start_workers();
    }
    Ok(())
}

/// Runs the scenario's steps on `lab`, telling `report` after each; stops
/// at the first step that fails. Returns whether every step passed.
pub async fn run(s: &Scenario, lab: &mut Lab, mut report: impl FnMut(&StepReport)) -> bool {
    for (i, step) in s.steps.iter().enumerate() {
        let r = run_step(i + 1, step, s.action_of(step), lab).await;
        report(&r);
        if !r.passed {
            return false;
        }
    }
    true
}

async fn run_step(
    number: usize,
    step: &Step,
    action: Option<crate::apps::lab::Action>,
    lab: &mut Lab,
) -> StepReport {
    let mut r = StepReport {
        number,
        say: step.say.clone(),
        action: step.action.as_ref().map(|a| a.name()),
        checks: Vec::new(),
        error: None,
        passed: false,
    };
    if let Some(action) = action
        && let Err(e) = lab.apply(action).await
    {
        r.error = Some(e.to_string());
        return r;
    }
    let engine = lab.engine().clone();
    if let Some(secs) = step.wait {
        engine
            .clock()
            .sleep(Duration::from_secs_f64(secs.max(0.0)))
            .await;
    }
    let mut feed = engine.subscribe();
    let deadline = engine.now_ms() + (step.within.max(0.0) * 1000.0) as u64;
    loop {
        let mut checks = Vec::new();
        for c in &step.expect {
            checks.push((c.clone(), observe(lab, c).await));
        }
        let all = checks.iter().all(|(_, o)| o.holds);
        r.checks = checks;
        if all {
            r.passed = true;
            return r;
        }
        let now = engine.now_ms();
        if now >= deadline {
            return r;
        }
        // Woken by the engine's next change, or a second of engine time
        // (files and balances change with commits, but not every check does).
        let wait = Duration::from_millis((deadline - now).min(1_000));
        tokio::select! {
            _ = feed.recv() => {}
            _ = engine.clock().sleep(wait) => {}
        }
    }
}

/// One line for a step, as `holdfast scenario run` prints it.
pub fn describe_step(r: &StepReport) -> String {
    let mark = if r.passed { "✓" } else { "✗" };
    let mut line = format!("{mark} {}. {}", r.number, crate::text::one_line(&r.say));
    if let Some(a) = r.action {
        line.push_str(&format!(" [{a}]"));
    }
    if let Some(e) = &r.error {
        line.push_str(&format!(
            " — the action was refused: {}",
            crate::text::one_line(e)
        ));
    }
    for (c, o) in &r.checks {
        let m = if o.holds { "✓" } else { "✗" };
        line.push_str(&format!("\n    {m} {}: {}", check::name(c), o.seen));
    }
    line
}

/// The scenarios that ship with holdfast: `./scenarios`, or the ones beside
/// the source it was built from.
pub fn default_dir() -> PathBuf {
    let here = PathBuf::from("scenarios");
    if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
    }
}

/// A scenario named by its file (`scenarios/first.toml`) or by its name in
/// `dir` (`first`).
pub fn find(name: &str, dir: &Path) -> PathBuf {
    let p = PathBuf::from(name);
    if p.is_file() {
        return p;
    }
    dir.join(format!("{}.toml", name.trim_end_matches(".toml")))
}

/// The `.toml` files of a directory, sorted by name.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the scenarios: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
