//! The errors workflow code sees: an activity's failure it can catch, and
//! how the workflow itself fails.

use crate::engine::history::{Failure, FailureInfo, Payload, RetryState};

/// Stable code for nondeterminism errors, as Temporal's SDKs use.
pub const NONDETERMINISM_CODE: &str = "TMPRL1100";

/// An activity's failure, as workflow code receives it: Temporal's
/// "Activity task failed" wrapper whose cause is the activity's own failure.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityError {
    pub failure: Failure,
}

impl ActivityError {
    /// The activity's own failure (the wrapper's cause).
    pub fn cause(&self) -> &Failure {
        self.failure.cause.as_deref().unwrap_or(&self.failure)
    }

    /// The application error type of the cause (`"InsufficientFundsError"`).
    pub fn error_type(&self) -> Option<&str> {
        self.cause().error_type()
    }

    pub fn retry_state(&self) -> Option<RetryState> {
        match &self.failure.info {
            FailureInfo::Activity { retry_state, .. } => Some(*retry_state),
            _ => None,
        }
    }
}

impl std::fmt::Display for ActivityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure.chain().fmt(f)
    }
}

impl std::error::Error for ActivityError {}

/// Why workflow code returned an error; the run closes as Failed with it.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkflowError {
    /// An activity failure the code let escape.
    Activity(ActivityError),
    /// A failure the code raised itself.
    Application(Failure),
    /// Cancellation was requested and the code let it end the run
    /// (closes as WorkflowExecutionCanceled, not Failed).
    Canceled,
    /// Not a failure: close this run and start a new one with this input
    /// (see [`WfContext::continue_as_new`]).
    ContinueAsNew(Payload),
}

impl WorkflowError {
    pub fn application(error_type: &str, message: impl Into<String>) -> Self {
        WorkflowError::Application(Failure::application(error_type, message, false))
    }

    pub fn into_failure(self) -> Failure {
        match self {
            WorkflowError::Activity(e) => e.failure,
            WorkflowError::Application(f) => f,
            WorkflowError::ContinueAsNew(_) => {
                Failure::application("ContinueAsNew", "continued as new", true)
            }
            WorkflowError::Canceled => Failure {
                message: "workflow canceled".into(),
                ..Failure::canceled(None)
            },
        }
    }
}

impl WorkflowError {
    /// Whether the code ended with a cancellation: canceled itself, or
    /// let escape an error caused by one (a canceled activity, directly or
    /// as the cause of its own error). After a cancel request such a run
    /// closes as Canceled, as on Temporal.
    pub fn is_cancellation(&self) -> bool {
        match self {
            WorkflowError::Canceled => true,
            WorkflowError::Activity(e) => e.failure.is_cancellation(),
            WorkflowError::Application(f) => f.is_cancellation(),
            WorkflowError::ContinueAsNew(_) => false,
        }
    }
}

impl From<ActivityError> for WorkflowError {
    fn from(e: ActivityError) -> Self {
        WorkflowError::Activity(e)
    }
}

impl std::fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkflowError::Activity(e) => e.fmt(f),
            WorkflowError::Application(fail) => fail.fmt(f),
            WorkflowError::Canceled => f.write_str("workflow canceled"),
            WorkflowError::ContinueAsNew(input) => write!(f, "continue as new with {input}"),
        }
    }
}

impl std::error::Error for WorkflowError {}
