//! What `describe` shows of a run: Temporal's execution info, pending
//! activities (with holdfast's record of their attempts) and the pending
//! workflow task — a projection of the run's state, also carried by every
//! change on the feed.

use std::time::Duration;

use super::{AttemptRecord, PendingActivityState, RunState, WorkflowExecutionStatus};
use crate::engine::history::{Failure, Payload, RetryPolicy, WorkflowTaskFailedCause};

/// One row of `list`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowExecutionInfo {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub status: WorkflowExecutionStatus,
    pub start_time_ms: u64,
    pub close_time_ms: Option<u64>,
    pub history_length: u64,
    pub history_size_bytes: u64,
    pub state_transition_count: u64,
}

/// Temporal's `PendingActivityInfo`, the fields holdfast keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingActivityInfo {
    pub activity_id: String,
    pub activity_type: String,
    pub state: PendingActivityState,
    pub attempt: u32,
    /// 0 means unlimited.
    pub maximum_attempts: u32,
    pub scheduled_time_ms: u64,
    pub expiration_time_ms: Option<u64>,
    pub last_failure: Option<Failure>,
    pub last_started_time_ms: Option<u64>,
    pub last_worker_identity: String,
    pub current_retry_interval: Option<Duration>,
    pub last_attempt_complete_time_ms: Option<u64>,
    pub next_attempt_schedule_time_ms: Option<u64>,
    pub retry_policy: RetryPolicy,
    pub start_to_close_timeout: Duration,
    pub schedule_to_close_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub heartbeat_details: Option<Payload>,
    pub last_heartbeat_time_ms: Option<u64>,
    /// The attempts so far, oldest first (the last 100): holdfast's own
    /// record, kept beside the run's state and never in its history, so a
    /// timeline of backoff can be drawn.
    pub attempts: Vec<AttemptRecord>,
}

/// `pendingWorkflowTask`.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingWorkflowTaskInfo {
    /// `true` while a worker holds it.
    pub started: bool,
    pub attempt: u32,
    pub scheduled_time_ms: u64,
    pub original_scheduled_time_ms: u64,
    pub started_time_ms: Option<u64>,
    /// Why the previous attempt failed, with its cause.
    pub last_failure: Option<(WorkflowTaskFailedCause, Failure)>,
}

/// What `describe` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowDescription {
    pub info: WorkflowExecutionInfo,
    pub pending_activities: Vec<PendingActivityInfo>,
    pub pending_workflow_task: Option<PendingWorkflowTaskInfo>,
}

pub(crate) fn info_of(run: &RunState) -> WorkflowExecutionInfo {
    WorkflowExecutionInfo {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        workflow_type: run.workflow_type.clone(),
        task_queue: run.task_queue.clone(),
        status: run.status,
        start_time_ms: run.start_time_ms,
        close_time_ms: run.close_time_ms,
        history_length: run.history_length(),
        history_size_bytes: run.history_size_bytes,
        state_transition_count: run.state_transition_count,
    }
}

/// What `describe` shows of a run's state.
pub(crate) fn describe_run(run: &RunState) -> WorkflowDescription {
    let pending_activities = run
        .activities
        .iter()
        .map(|a| PendingActivityInfo {
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.clone(),
            state: if a.cancel_requested_event_id.is_some() {
                PendingActivityState::CancelRequested
            } else {
                a.state
            },
            attempt: a.attempt,
            maximum_attempts: a.retry_policy.maximum_attempts,
            scheduled_time_ms: a.scheduled_time_ms,
            expiration_time_ms: a.expiration_ms,
            last_failure: a.last_failure.clone(),
            // As Temporal shows it: only while an attempt runs, not in backoff.
            last_started_time_ms: a
                .last_started_time_ms
                .filter(|_| a.state != PendingActivityState::Scheduled),
            last_worker_identity: a.last_worker_identity.clone(),
            current_retry_interval: a.current_retry_interval,
            last_attempt_complete_time_ms: a.last_attempt_complete_time_ms,
            next_attempt_schedule_time_ms: a.next_attempt_schedule_time_ms,
            retry_policy: a.retry_policy.clone(),
            start_to_close_timeout: a.timeouts.start_to_close,
            schedule_to_close_timeout: a.timeouts.schedule_to_close,
            heartbeat_timeout: a.timeouts.heartbeat,
            heartbeat_details: a.heartbeat_details.clone(),
            last_heartbeat_time_ms: a.last_heartbeat_time_ms,
            attempts: a.attempts.clone(),
        })
        .collect();
    let pending_workflow_task = run.workflow_task.as_ref().map(|w| PendingWorkflowTaskInfo {
        started: w.started.is_some(),
        attempt: w.attempt,
        scheduled_time_ms: w.scheduled_time_ms,
        original_scheduled_time_ms: w.original_scheduled_time_ms,
        started_time_ms: w.started.as_ref().map(|s| s.started_time_ms),
        last_failure: w.last_failure.clone(),
    });
    WorkflowDescription {
        info: info_of(run),
        pending_activities,
        pending_workflow_task,
    }
}
