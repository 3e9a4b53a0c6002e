//! Errors, by who may see them.
//!
//! - [`StoreError`]: the data directory (locked, damaged, unwritable). Shown to
//!   the person running holdfast; never to workflow code.
//! - [`EngineError`]: what a client call can be refused with (unknown id,
//!   duplicate running id, bad input, …). One line, saying what and where.
//! - Application failures that reach workflow code are [`super::Failure`]s
//!   wrapped in [`super::ActivityError`] / [`super::WorkflowError`].

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum StoreError {
    #[error(
        "data directory {path} is in use by another holdfast process{holder} (its lock on {path}/db is held); stop that process or use another --data-dir"
    )]
    Locked {
        path: String,
        /// " (pid N)" when the holder left its pid, else empty.
        holder: String,
    },
    #[error(
        "data directory {path} is damaged: {detail}; it was left untouched (move it aside to start afresh)"
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "data directory {path} is damaged: {detail}. holdfast left it as it was and cannot repair it; a copy of the damaged files is in {kept}. Keep the directory for inspection, or move it aside to start afresh"
    )]
    Damaged {
        path: String,
        detail: String,
        kept: String,
    },
    #[error(
        "data directory {path}: its snapshot file is damaged ({files}), its log is intact; remove the snapshot file and holdfast rebuilds it from the log (nothing was changed)"
    )]
    DamagedSnapshot { path: String, files: String },
    #[error("data directory {path} is read-only: holdfast can read it but not run it")]
    ReadOnly { path: String },
    #[error("data directory {path} cannot be used: {detail}; it was left untouched")]
    NotADataDir { path: String, detail: String },
    #[error(
        "data directory {path} has format version {found}, this holdfast reads version {expected}; it was left untouched"
    )]
    FormatVersion {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("data directory {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("stored {what} is damaged: {detail}")]
    CorruptValue { what: String, detail: String },
    #[error("cannot encode a value for the store: {0}")]
    Encode(String),
    #[error(
        "no holdfast data in {path}: nothing has run there yet (check --data-dir; `holdfast transfer` or `holdfast report` create one)"
    )]
    NoData { path: String },
    #[error("the engine of {path} crashed before this was written to disk; it did not happen")]
    LostInCrash { path: String },
}

/// The file where the process holding a data directory leaves its pid.
pub(crate) const PID_FILE: &str = "holdfast.pid";

/// " (pid N)" for the process that holds `path`, if it said.
fn holder_of(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(path).join(PID_FILE))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .map(|pid| format!(" (pid {pid})"))
        .unwrap_or_default()
}

impl StoreError {
    pub(crate) fn from_sled_open(path: &str, e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked {
                    path: path.into(),
                    holder: holder_of(path),
                }
            }
            sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => StoreError::Corrupt {
                path: path.into(),
                detail: e.to_string(),
            },
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                StoreError::Corrupt {
                    path: path.into(),
                    detail: e.to_string(),
                }
            }
            _ => Self::from_sled(path, e),
        }
    }

    pub(crate) fn from_sled(path: &str, e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                path: path.into(),
                detail: e.to_string(),
            },
            other => StoreError::Io {
                path: path.into(),
                detail: other.to_string(),
            },
        }
    }
}

/// Why a client or worker call was refused.
#[derive(Debug, Error, Clone)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("workflow not found: no workflow with id {workflow_id:?}")]
    WorkflowNotFound { workflow_id: String },
    #[error("workflow run not found: workflow {workflow_id:?} has no run {run_id:?}")]
    RunNotFound { workflow_id: String, run_id: String },
    #[error("Workflow execution is already running. WorkflowId: {workflow_id}, RunId: {run_id}.")]
    AlreadyStarted { workflow_id: String, run_id: String },
    #[error("{0}")]
    AlreadyFinished(String),
    #[error("unknown workflow type {name:?}; known types: {}", known.join(", "))]
    UnknownWorkflowType { name: String, known: Vec<String> },
    #[error("input for workflow type {workflow_type:?} does not fit: {detail}")]
    InvalidInput {
        workflow_type: String,
        detail: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("workflow execution already completed: {workflow_id:?} run {run_id:?} is closed")]
    AlreadyCompleted { workflow_id: String, run_id: String },
    #[error("no worker is polling task queue {task_queue:?}: start a worker to answer queries")]
    NoWorker { task_queue: String },
    #[error("query failed: {0}")]
    QueryFailed(String),
    #[error("cancellation of this activity was requested")]
    ActivityCancelRequested,
    #[error("task not found: {0}")]
    TaskNotFound(String),
    #[error("the engine has shut down")]
    Shutdown,
    #[error("workflow task of {workflow_id} failed ({cause:?}): {message}")]
    CommandsRefused {
        workflow_id: String,
        cause: super::history::WorkflowTaskFailedCause,
        message: String,
    },
}
