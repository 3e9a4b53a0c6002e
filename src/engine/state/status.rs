//! Temporal's statuses of a run and of a pending activity.

use serde::{Deserialize, Serialize};

/// Temporal's workflow execution statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkflowExecutionStatus {
    Running,
    Completed,
    Failed,
    Canceled,
    Terminated,
    ContinuedAsNew,
    TimedOut,
}

impl WorkflowExecutionStatus {
    /// PascalCase, as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
            Self::Terminated => "Terminated",
            Self::ContinuedAsNew => "ContinuedAsNew",
            Self::TimedOut => "TimedOut",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let all = [
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Canceled,
            Self::Terminated,
            Self::ContinuedAsNew,
            Self::TimedOut,
        ];
        all.into_iter().find(|v| v.name().eq_ignore_ascii_case(s))
    }
}

/// `PENDING_ACTIVITY_STATE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingActivityState {
    Scheduled,
    Started,
    /// Shown by describe once cancellation was requested (the attempt may still run).
    CancelRequested,
}
