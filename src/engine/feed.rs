//! The change feed: one message per committed transition, sent after it is
//! durable, so a UI refreshes without polling and never shows what a crash
//! could take back.

use super::state::WorkflowExecutionStatus;

/// Which run changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub workflow_id: String,
    pub run_id: String,
    /// The run's status after the change.
    pub status: WorkflowExecutionStatus,
    /// How many history events the change appended (0 for retries, which write none).
    pub new_events: u64,
}
