//! What workflow code asks for, and what completing a workflow task does
//! with it: every command is checked before anything is written, then
//! each is applied in order.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ActivityState, Effect, PendingActivityState, RunState, TimerKey, TimerState, Transition,
    WorkflowExecutionStatus,
};
use crate::engine::history::{
    ACTIVITY_ID_NOT_STARTED, EventAttributes, Failure, Payload, RetryPolicy, RetryState,
    WorkflowTaskFailedCause,
};

/// Options an activity command carries; `None` means unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityOptions {
    pub activity_id: Option<String>,
    pub task_queue: Option<String>,
    pub schedule_to_close_timeout: Option<Duration>,
    pub schedule_to_start_timeout: Option<Duration>,
    pub start_to_close_timeout: Option<Duration>,
    pub heartbeat_timeout: Option<Duration>,
    pub retry_policy: Option<RetryPolicy>,
    /// What awaiting workflow code sees when the activity is canceled
    /// (never sent to the engine, as on Temporal: it is the SDK's choice).
    #[serde(skip)]
    pub cancellation_type: ActivityCancellationType,
}

/// How an activity's cancellation resolves in workflow code, as Temporal's
/// SDKs offer it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivityCancellationType {
    /// Request cancellation and resolve at once with a canceled error,
    /// without waiting for the activity to stop (the default).
    #[default]
    TryCancel,
    /// Request cancellation and wait for the activity to close: canceled
    /// if it heeds the request (heartbeating), else its own result.
    WaitCancellationCompleted,
    /// Resolve at once with a canceled error and tell the engine nothing:
    /// the activity runs on.
    Abandon,
}

/// Timeouts after Temporal's normalization; zero means none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityTimeouts {
    pub schedule_to_close: Duration,
    pub schedule_to_start: Duration,
    pub start_to_close: Duration,
    pub heartbeat: Duration,
}

impl ActivityOptions {
    /// Temporal's `validateAndNormalizeTimeouts` and retry-policy defaults.
    pub fn normalize(
        &self,
        activity_id: &str,
        activity_type: &str,
    ) -> Result<(ActivityTimeouts, RetryPolicy), String> {
        let pos = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        let s2c = pos(self.schedule_to_close_timeout);
        let stc = pos(self.start_to_close_timeout);
        let s2s = pos(self.schedule_to_start_timeout);
        let (s2c, s2s, stc) = match (s2c, stc) {
            (None, None) => {
                return Err(format!(
                    "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. ActivityId={activity_id} ActivityType={activity_type}"
                ));
            }
            (Some(s2c), stc) => (
                s2c,
                s2s.map(|v| v.min(s2c)).unwrap_or(s2c),
                stc.map(|v| v.min(s2c)).unwrap_or(s2c),
            ),
            (None, Some(stc)) => (Duration::ZERO, s2s.unwrap_or(Duration::ZERO), stc),
        };
        let heartbeat = pos(self.heartbeat_timeout)
            .map(|h| h.min(stc))
            .unwrap_or(Duration::ZERO);
        let policy = self.retry_policy.clone().unwrap_or_default().normalized();
        policy
            .validate()
            .map_err(|e| format!("{e}. ActivityId={activity_id} ActivityType={activity_type}"))?;
        Ok((
            ActivityTimeouts {
                schedule_to_close: s2c,
                schedule_to_start: s2s,
                start_to_close: stc,
                heartbeat,
            },
            policy,
        ))
    }
}

/// What workflow code asks the engine to do, in the order it asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    ScheduleActivity {
        activity_id: String,
        activity_type: String,
        input: Payload,
        options: ActivityOptions,
    },
    CompleteWorkflowExecution {
        result: Payload,
    },
    FailWorkflowExecution {
        failure: Failure,
    },
    StartTimer {
        timer_id: String,
        duration: Duration,
    },
    CancelTimer {
        timer_id: String,
    },
    CancelWorkflowExecution,
    ContinueAsNewWorkflowExecution {
        input: Payload,
    },
    RequestCancelActivityTask {
        activity_id: String,
    },
}

impl Command {
    /// One line naming the command, for nondeterminism messages.
    pub fn describe(&self) -> String {
        match self {
            Command::ScheduleActivity {
                activity_id,
                activity_type,
                ..
            } => format!("ScheduleActivityTask(type {activity_type:?}, id {activity_id:?})"),
            Command::CompleteWorkflowExecution { .. } => "CompleteWorkflowExecution".into(),
            Command::FailWorkflowExecution { .. } => "FailWorkflowExecution".into(),
            Command::StartTimer { timer_id, duration } => {
                format!("StartTimer(id {timer_id:?}, {duration:?})")
            }
            Command::CancelTimer { timer_id } => format!("CancelTimer(id {timer_id:?})"),
            Command::CancelWorkflowExecution => "CancelWorkflowExecution".into(),
            Command::ContinueAsNewWorkflowExecution { .. } => {
                "ContinueAsNewWorkflowExecution".into()
            }
            Command::RequestCancelActivityTask { activity_id } => {
                format!("RequestCancelActivityTask(id {activity_id:?})")
            }
        }
    }
}

/// The engine refused a workflow task's commands (a bad attribute, an
/// unhandled new event): the task was failed instead of completed, and the
/// worker must drop what it holds of the run and replay it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    pub cause: WorkflowTaskFailedCause,
    pub failure: Failure,
}

impl RunState {
    /// Fails the workflow task instead of completing it.
    fn refuse(
        &mut self,
        tr: &mut Transition,
        now: u64,
        identity: &str,
        cause: WorkflowTaskFailedCause,
        failure: Failure,
    ) -> Box<Refused> {
        self.fail_workflow_task(tr, now, identity, cause, failure.clone());
        Box::new(Refused { cause, failure })
    }

    /// The worker finished the workflow task with these commands.
    pub fn complete_workflow_task(
        &mut self,
        tr: &mut Transition,
        now: u64,
        identity: &str,
        commands: Vec<Command>,
    ) -> Result<(), Box<Refused>> {
        // Validate every command before writing anything.
        let limit = crate::engine::limits::BLOB_SIZE_LIMIT;
        for c in &commands {
            let (payload, what, cause) = match c {
                Command::ScheduleActivity {
                    input,
                    activity_type,
                    ..
                } => (
                    input,
                    format!("input of activity {activity_type}"),
                    WorkflowTaskFailedCause::BadScheduleActivityAttributes,
                ),
                Command::CompleteWorkflowExecution { result } => (
                    result,
                    "workflow result".to_string(),
                    WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
                ),
                Command::ContinueAsNewWorkflowExecution { input } => (
                    input,
                    "continue-as-new input".to_string(),
                    WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
                ),
                _ => continue,
            };
            if payload.len() > limit {
                return Err(self.refuse(
                    tr,
                    now,
                    identity,
                    cause,
                    Failure::application(
                        "BlobSizeExceedsLimit",
                        format!(
                            "{what} is {} bytes, over the {limit}-byte payload limit",
                            payload.len()
                        ),
                        true,
                    ),
                ));
            }
        }
        let mut activities = Vec::new();
        for c in &commands {
            if let Command::ScheduleActivity {
                activity_id,
                activity_type,
                options,
                ..
            } = c
            {
                match options.normalize(activity_id, activity_type) {
                    Ok(n) => activities.push(n),
                    Err(msg) => {
                        return Err(self.refuse(
                            tr,
                            now,
                            identity,
                            WorkflowTaskFailedCause::BadScheduleActivityAttributes,
                            Failure::application("BadScheduleActivityAttributes", msg, true),
                        ));
                    }
                }
            }
        }
        let closes = commands.iter().any(|c| {
            matches!(
                c,
                Command::CompleteWorkflowExecution { .. }
                    | Command::FailWorkflowExecution { .. }
                    | Command::CancelWorkflowExecution
                    | Command::ContinueAsNewWorkflowExecution { .. }
            )
        });
        if closes && !self.buffered.is_empty() {
            return Err(self.refuse(
                tr,
                now,
                identity,
                WorkflowTaskFailedCause::UnhandledCommand,
                Failure::application(
                    "UnhandledCommand",
                    "new events arrived while the workflow task ran; it runs again with them",
                    false,
                ),
            ));
        }
        let Some((scheduled, started)) = self.write_task_started(tr) else {
            return Ok(());
        };
        // A sticky worker has seen everything before this task's start (the
        // Started event is written only now, at completion).
        self.sticky_next_event_id = started;
        let completed = self.append(
            tr,
            now,
            EventAttributes::WorkflowTaskCompleted {
                scheduled_event_id: scheduled,
                started_event_id: started,
                identity: identity.to_string(),
            },
        );
        self.workflow_task = None;
        let mut normalized = activities.into_iter();
        for c in commands {
            match c {
                Command::ScheduleActivity {
                    activity_id,
                    activity_type,
                    input,
                    options,
                } => {
                    let Some((timeouts, retry_policy)) = normalized.next() else {
                        break;
                    };
                    let task_queue = options
                        .task_queue
                        .clone()
                        .unwrap_or_else(|| self.task_queue.clone());
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::ActivityTaskScheduled {
                            activity_id: activity_id.clone(),
                            activity_type: activity_type.clone(),
                            task_queue: task_queue.clone(),
                            input: input.clone(),
                            schedule_to_close_timeout: timeouts.schedule_to_close,
                            schedule_to_start_timeout: timeouts.schedule_to_start,
                            start_to_close_timeout: timeouts.start_to_close,
                            heartbeat_timeout: timeouts.heartbeat,
                            workflow_task_completed_event_id: completed,
                            retry_policy: retry_policy.clone(),
                        },
                    );
                    let expiration_ms = (!timeouts.schedule_to_close.is_zero())
                        .then(|| now + timeouts.schedule_to_close.as_millis() as u64);
                    if let Some(at_ms) = expiration_ms {
                        tr.effects.push(Effect::Timer {
                            at_ms,
                            key: TimerKey::ActivityScheduleToClose {
                                seq: self.seq,
                                scheduled: id,
                            },
                        });
                    }
                    let act = ActivityState {
                        scheduled_event_id: id,
                        activity_id,
                        activity_type,
                        task_queue,
                        input,
                        timeouts,
                        retry_policy,
                        state: PendingActivityState::Scheduled,
                        attempt: 1,
                        first_scheduled_time_ms: now,
                        scheduled_time_ms: now,
                        expiration_ms,
                        last_failure: None,
                        last_started_time_ms: None,
                        last_worker_identity: String::new(),
                        current_retry_interval: None,
                        last_attempt_complete_time_ms: None,
                        next_attempt_schedule_time_ms: None,
                        heartbeat_details: None,
                        last_heartbeat_time_ms: None,
                        cancel_requested_event_id: None,
                        attempts: Vec::new(),
                    };
                    self.enqueue_activity(tr, &act, now);
                    self.activities.push(act);
                }
                Command::StartTimer { timer_id, duration } => {
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::TimerStarted {
                            timer_id: timer_id.clone(),
                            start_to_fire_timeout: duration,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    let fire_at_ms = now + duration.as_millis() as u64;
                    self.timers.push(TimerState {
                        timer_id,
                        started_event_id: id,
                        fire_at_ms,
                    });
                    tr.effects.push(Effect::Timer {
                        at_ms: fire_at_ms,
                        key: TimerKey::UserTimer {
                            seq: self.seq,
                            started: id,
                        },
                    });
                }
                Command::CancelTimer { timer_id } => {
                    if let Some(i) = self.timers.iter().position(|t| t.timer_id == timer_id) {
                        let t = self.timers.remove(i);
                        self.append(
                            tr,
                            now,
                            EventAttributes::TimerCanceled {
                                timer_id,
                                started_event_id: t.started_event_id,
                                workflow_task_completed_event_id: completed,
                                identity: identity.to_string(),
                            },
                        );
                    }
                }
                Command::CompleteWorkflowExecution { result } => {
                    self.drop_own_buffered();
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionCompleted {
                            result,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::Completed, id);
                    return Ok(());
                }
                Command::RequestCancelActivityTask { activity_id } => {
                    let Some(idx) = self
                        .activities
                        .iter()
                        .position(|a| a.activity_id == activity_id)
                    else {
                        continue;
                    };
                    let scheduled = self.activities[idx].scheduled_event_id;
                    let requested = self.append(
                        tr,
                        now,
                        EventAttributes::ActivityTaskCancelRequested {
                            scheduled_event_id: scheduled,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    if self.activities[idx].state == PendingActivityState::Scheduled {
                        // No attempt running (not started yet, or waiting
                        // out a backoff): canceled at once. As on Temporal the
                        // event is buffered, so it follows this task's other
                        // command events, and a new workflow task delivers it.
                        self.activities.remove(idx);
                        self.buffered.push((
                            now,
                            EventAttributes::ActivityTaskCanceled {
                                details: Some(Payload::string(ACTIVITY_ID_NOT_STARTED)),
                                latest_cancel_requested_event_id: requested,
                                scheduled_event_id: scheduled,
                                started_event_id: 0,
                                identity: identity.to_string(),
                            },
                        ));
                    } else {
                        // The running attempt learns of it by heartbeat.
                        self.activities[idx].cancel_requested_event_id = Some(requested);
                    }
                }
                Command::ContinueAsNewWorkflowExecution { input } => {
                    self.drop_own_buffered();
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionContinuedAsNew {
                            // Filled in by the engine when it creates the new run.
                            new_execution_run_id: String::new(),
                            workflow_type: self.workflow_type.clone(),
                            task_queue: self.task_queue.clone(),
                            input: input.clone(),
                            workflow_run_timeout: Duration::ZERO,
                            workflow_task_timeout: self.workflow_task_timeout,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::ContinuedAsNew, id);
                    tr.continue_as_new = Some(input);
                    return Ok(());
                }
                Command::CancelWorkflowExecution => {
                    self.drop_own_buffered();
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionCanceled {
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::Canceled, id);
                    return Ok(());
                }
                Command::FailWorkflowExecution { failure } => {
                    self.drop_own_buffered();
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionFailed {
                            failure,
                            retry_state: RetryState::RetryPolicyNotSet,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::Failed, id);
                    return Ok(());
                }
            }
        }
        self.flush_buffered(tr, now);
        Ok(())
    }
}
