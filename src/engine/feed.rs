//! The change feed: one [`Change`] per commit, sent in commit order once the
//! commit is durable, so a screen refreshes without polling and never shows
//! what a crash could take back.
//!
//! Every commit that changes what `describe` shows — a start, a workflow
//! task taken or closed, an activity attempt started, heartbeating, failed
//! and scheduled again, completed; a timer; a signal; a cancel; a
//! terminate; both runs of a reset or a continue-as-new — is one change,
//! carrying the description of every run it touched as it stands after the
//! commit. A subscriber that applies the changes in order holds what
//! `describe` would return, without asking.

use super::state::describe::WorkflowDescription;

/// One commit, as the read model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The commit's position in the feed; increases with every commit.
    pub commit: u64,
    /// Every run the commit touched (two for a reset or a continue-as-new).
    pub runs: Vec<RunChange>,
}

/// One run after a commit.
#[derive(Clone, Debug, PartialEq)]
pub struct RunChange {
    /// What `describe` returns for the run now.
    pub description: WorkflowDescription,
    /// How many history events the commit appended (0 for an attempt that
    /// started, failed and will be retried: retries write no events).
    pub new_events: u64,
}

impl Change {
    /// The run of `workflow_id` this change touched last (the new run of a
    /// reset or a continue-as-new), if any.
    pub fn run_of(&self, workflow_id: &str) -> Option<&RunChange> {
        self.runs
            .iter()
            .rev()
            .find(|r| r.description.info.workflow_id == workflow_id)
    }
}
