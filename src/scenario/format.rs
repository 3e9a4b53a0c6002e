//! The scenario file (`scenarios/*.toml`): the Rust types are the schema.
//! serde and toml read it; a mistake is reported with the file, the line
//! and column, and what was expected, before anything starts.

use std::path::Path;

use serde::Deserialize;

use crate::apps::faults::Fault;
use crate::apps::lab::Action;

/// One guided story: the words, the actions and what must hold after each.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    /// One line for the picker and `holdfast scenario list`.
    pub summary: String,
    /// Which app the story is about.
    pub app: AppKind,
    /// Faults switched on before the first step.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Whether the worker runs from the start (a story may start without one).
    #[serde(default = "yes")]
    pub worker: bool,
    /// The clock's speed for the slow demo and the guided mode (1–60).
    #[serde(default = "one")]
    pub speed: f64,
    /// Overrides of the tutorial's retry policy for the transfers the
    /// scenario starts (a step's own `max_attempts` wins).
    #[serde(default)]
    pub retry: Option<RetryOverrides>,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

fn default_within() -> f64 {
    120.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverrides {
    /// 0 retries until the deposit is fixed; the tutorial's is 3.
    pub maximum_attempts: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    Transfer,
    Report,
}

/// One step: say something, maybe act, maybe let time pass, then wait
/// (in engine time, at most `within` seconds) until every check holds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The words shown to the person.
    pub say: String,
    /// The action, named as the lab's `Action` and the key table name it.
    #[serde(default, rename = "do")]
    pub action: Option<Action>,
    /// Engine seconds to let pass after the action.
    #[serde(default)]
    pub wait: Option<f64>,
    #[serde(default)]
    pub expect: Vec<Check>,
    /// Engine seconds the checks may take to hold.
    #[serde(default = "default_within")]
    pub within: f64,
}

/// What must hold before the next step.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The workflow's newest run has this status (`running`, `completed`, …).
    Status {
        workflow: String,
        is: RunStatus,
    },
    /// The activity (by type) has reached at least this attempt.
    Attempt {
        workflow: String,
        activity: String,
        at_least: u32,
    },
    /// An event of this type is in the workflow's history (optionally for
    /// one activity type).
    Event {
        workflow: String,
        #[serde(rename = "type")]
        event_type: String,
        #[serde(default)]
        activity: Option<String>,
        /// Attributes the event must have (a subset, as the event's JSON
        /// shows them: `{ retry_state = "NonRetryableFailure" }`).
        #[serde(default)]
        attributes: Option<toml::Table>,
    },
    /// The activity's code ran exactly this many times (its attempts, on
    /// every worker), e.g. the withdraw was not repeated.
    Ran {
        workflow: String,
        activity: String,
        times: u32,
    },
    /// The activity completed exactly this many times (the LLM paid once).
    Completed {
        workflow: String,
        activity: String,
        times: u32,
    },
    Balance {
        account: String,
        equals: i64,
    },
    /// Accounts plus money in flight make what the bank was seeded with.
    MoneyConserved,
    /// The report's file of this kind exists for the workflow's run.
    File {
        workflow: String,
        kind: FileKind,
    },
    /// No worker runs.
    NoWorker,
    /// An attempt of the activity is running on a worker now.
    Running {
        workflow: String,
        activity: String,
    },
    /// The workflow's newest run has this many history events.
    HistoryLength {
        workflow: String,
        events: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Canceled,
    Terminated,
    TimedOut,
    ContinuedAsNew,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Pdf,
    Eml,
}

/// A scenario file that cannot be used, said in one line: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct FormatError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Scenario {
    /// Reads and checks a scenario from `text` (named `path` in errors).
    pub fn parse(text: &str, path: &str) -> Result<Scenario, FormatError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            FormatError {
                path: path.to_string(),
                line,
                column,
                message,
            }
        };
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, crate::text::one_line(e.message()))
        })?;
        if s.steps.is_empty() {
            return Err(at(0, "a scenario needs at least one [[step]]".into()));
        }
        let (lo, hi) = crate::engine::SPEED_RANGE;
        if !(lo..=hi).contains(&s.speed) {
            return Err(at(
                text.find("speed").unwrap_or(0),
                format!(
                    "speed {} is out of range: the clock runs {lo}× to {hi}×",
                    s.speed
                ),
            ));
        }
        Ok(s)
    }

    /// The step's action, with the scenario's overrides applied.
    pub fn action_of(&self, step: &Step) -> Option<Action> {
        let mut a = step.action.clone()?;
        if let (
            Action::StartTransfer {
                max_attempts: m @ None,
                ..
            },
            Some(RetryOverrides {
                maximum_attempts: Some(n),
            }),
        ) = (&mut a, &self.retry)
        {
            *m = Some(*n);
        }
        Some(a)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, FormatError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FormatError {
            path: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read it: {e}"),
        })?;
        Scenario::parse(&text, &name)
    }
}
