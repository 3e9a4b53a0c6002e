//! Event history: Temporal's event types and the attributes that matter.
//!
//! Each run has an append-only list of [`HistoryEvent`]s numbered from 1 with
//! no gaps. Payloads (inputs, results, failure details) are JSON text so a
//! person can read them; the stored envelope is bincode (see `store`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod failure;
mod retry;

pub use failure::{Failure, FailureInfo};
pub use retry::{RetryPolicy, RetryPolicyError};

/// A JSON value carried as text, so bincode can store it and a person can read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Payload(pub String);

/// The details of an activity canceled while no attempt ran (Temporal's words).
pub const ACTIVITY_ID_NOT_STARTED: &str = "ACTIVITY_ID_NOT_STARTED";

impl Payload {
    /// A JSON string payload.
    pub fn string(s: &str) -> Self {
        Payload(serde_json::Value::String(s.to_string()).to_string())
    }

    /// Encodes any serializable value as a JSON payload.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Payload)
    }

    /// Decodes the payload into a typed value.
    pub fn to_value<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Size in bytes, as counted against the blob limits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Temporal's `RetryState`: why an activity or workflow stopped (or did not stop) retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryState {
    InProgress,
    NonRetryableFailure,
    Timeout,
    MaximumAttemptsReached,
    RetryPolicyNotSet,
    InternalServerError,
    CancelRequested,
}

impl RetryState {
    /// The enum name as Temporal prints it in JSON (`RETRY_STATE_TIMEOUT`).
    pub fn temporal_name(self) -> &'static str {
        match self {
            RetryState::InProgress => "RETRY_STATE_IN_PROGRESS",
            RetryState::NonRetryableFailure => "RETRY_STATE_NON_RETRYABLE_FAILURE",
            RetryState::Timeout => "RETRY_STATE_TIMEOUT",
            RetryState::MaximumAttemptsReached => "RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED",
            RetryState::RetryPolicyNotSet => "RETRY_STATE_RETRY_POLICY_NOT_SET",
            RetryState::InternalServerError => "RETRY_STATE_INTERNAL_SERVER_ERROR",
            RetryState::CancelRequested => "RETRY_STATE_CANCEL_REQUESTED",
        }
    }
}

/// Temporal's timeout types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeoutType {
    StartToClose,
    ScheduleToStart,
    ScheduleToClose,
    Heartbeat,
}

impl TimeoutType {
    pub fn temporal_name(self) -> &'static str {
        match self {
            TimeoutType::StartToClose => "TIMEOUT_TYPE_START_TO_CLOSE",
            TimeoutType::ScheduleToStart => "TIMEOUT_TYPE_SCHEDULE_TO_START",
            TimeoutType::ScheduleToClose => "TIMEOUT_TYPE_SCHEDULE_TO_CLOSE",
            TimeoutType::Heartbeat => "TIMEOUT_TYPE_HEARTBEAT",
        }
    }

    /// The words Temporal's server uses in the failure message (`activity StartToClose timeout`).
    pub fn words(self) -> &'static str {
        match self {
            TimeoutType::StartToClose => "StartToClose",
            TimeoutType::ScheduleToStart => "ScheduleToStart",
            TimeoutType::ScheduleToClose => "ScheduleToClose",
            TimeoutType::Heartbeat => "Heartbeat",
        }
    }
}

/// Why a workflow task failed (`WORKFLOW_TASK_FAILED_CAUSE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkflowTaskFailedCause {
    /// Workflow code panicked or returned a non-workflow error.
    WorkflowWorkerUnhandledFailure,
    /// The code issued commands that do not match the recorded history.
    NonDeterministicError,
    /// An activity command had invalid attributes (no timeout set, …).
    BadScheduleActivityAttributes,
    /// The workflow tried to close while new events were waiting.
    UnhandledCommand,
    /// The run was reset: this task is where the new run branches off.
    ResetWorkflow,
    /// A result or input of a closing command was invalid (too large).
    BadCompleteWorkflowExecutionAttributes,
}

impl WorkflowTaskFailedCause {
    pub fn temporal_name(self) -> &'static str {
        match self {
            Self::WorkflowWorkerUnhandledFailure => {
                "WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE"
            }
            Self::NonDeterministicError => "WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR",
            Self::BadScheduleActivityAttributes => {
                "WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"
            }
            Self::UnhandledCommand => "WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND",
            Self::ResetWorkflow => "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW",
            Self::BadCompleteWorkflowExecutionAttributes => {
                "WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES"
            }
        }
    }
}

/// One event of a run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1-based, contiguous within a run.
    pub event_id: u64,
    /// Milliseconds since the Unix epoch, on the engine's clock.
    pub event_time_ms: u64,
    pub attributes: EventAttributes,
}

impl HistoryEvent {
    pub fn event_type(&self) -> EventType {
        self.attributes.event_type()
    }
}

/// The attributes of each event type, named as in Temporal's API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventAttributes {
    WorkflowExecutionStarted {
        workflow_id: String,
        workflow_type: String,
        task_queue: String,
        input: Payload,
        workflow_task_timeout: Duration,
        original_execution_run_id: String,
        first_execution_run_id: String,
        identity: String,
        attempt: u32,
        /// Zero when unset.
        workflow_execution_timeout: Duration,
        workflow_run_timeout: Duration,
        workflow_execution_expiration_time_ms: Option<u64>,
        /// The run this one continues (continue-as-new), if any.
        continued_execution_run_id: Option<String>,
        /// The first workflow task waits this long (chained runs start ≥ 1 s apart).
        first_workflow_task_backoff: Duration,
    },
    WorkflowTaskScheduled {
        /// The run's (normal) task queue.
        task_queue: String,
        /// Set when the task went to the sticky queue of the worker that
        /// has the run cached (Temporal's kind STICKY; `task_queue` is then
        /// its normalName).
        sticky_queue: Option<String>,
        start_to_close_timeout: Duration,
        attempt: u32,
    },
    WorkflowTaskStarted {
        scheduled_event_id: u64,
        identity: String,
        history_size_bytes: u64,
    },
    WorkflowTaskCompleted {
        scheduled_event_id: u64,
        started_event_id: u64,
        identity: String,
    },
    WorkflowTaskFailed {
        scheduled_event_id: u64,
        started_event_id: u64,
        cause: WorkflowTaskFailedCause,
        failure: Failure,
        identity: String,
    },
    WorkflowTaskTimedOut {
        scheduled_event_id: u64,
        started_event_id: u64,
        timeout_type: TimeoutType,
    },
    ActivityTaskScheduled {
        activity_id: String,
        activity_type: String,
        task_queue: String,
        input: Payload,
        schedule_to_close_timeout: Duration,
        schedule_to_start_timeout: Duration,
        start_to_close_timeout: Duration,
        heartbeat_timeout: Duration,
        workflow_task_completed_event_id: u64,
        retry_policy: RetryPolicy,
    },
    ActivityTaskStarted {
        scheduled_event_id: u64,
        identity: String,
        attempt: u32,
        last_failure: Option<Failure>,
    },
    ActivityTaskCompleted {
        result: Payload,
        scheduled_event_id: u64,
        started_event_id: u64,
        identity: String,
    },
    ActivityTaskFailed {
        failure: Failure,
        scheduled_event_id: u64,
        started_event_id: u64,
        identity: String,
        retry_state: RetryState,
    },
    ActivityTaskTimedOut {
        failure: Failure,
        scheduled_event_id: u64,
        started_event_id: u64,
        retry_state: RetryState,
    },
    WorkflowExecutionCompleted {
        result: Payload,
        workflow_task_completed_event_id: u64,
    },
    WorkflowExecutionFailed {
        failure: Failure,
        retry_state: RetryState,
        workflow_task_completed_event_id: u64,
    },
    WorkflowExecutionTerminated {
        reason: String,
        identity: String,
    },
    TimerStarted {
        timer_id: String,
        start_to_fire_timeout: Duration,
        workflow_task_completed_event_id: u64,
    },
    TimerFired {
        timer_id: String,
        started_event_id: u64,
    },
    TimerCanceled {
        timer_id: String,
        started_event_id: u64,
        workflow_task_completed_event_id: u64,
        identity: String,
    },
    WorkflowExecutionSignaled {
        signal_name: String,
        input: Payload,
        identity: String,
    },
    WorkflowExecutionCancelRequested {
        identity: String,
    },
    WorkflowExecutionCanceled {
        workflow_task_completed_event_id: u64,
    },
    WorkflowExecutionTimedOut {
        retry_state: RetryState,
    },
    ActivityTaskCancelRequested {
        scheduled_event_id: u64,
        workflow_task_completed_event_id: u64,
    },
    ActivityTaskCanceled {
        /// What the activity reported as it stopped, or
        /// `"ACTIVITY_ID_NOT_STARTED"` when it was canceled between attempts.
        details: Option<Payload>,
        latest_cancel_requested_event_id: u64,
        scheduled_event_id: u64,
        /// Zero when no attempt was running.
        started_event_id: u64,
        identity: String,
    },
    WorkflowExecutionContinuedAsNew {
        new_execution_run_id: String,
        workflow_type: String,
        task_queue: String,
        input: Payload,
        workflow_run_timeout: Duration,
        workflow_task_timeout: Duration,
        workflow_task_completed_event_id: u64,
    },
}

/// Temporal's event types (the subset holdfast writes), named exactly as Temporal names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    WorkflowExecutionStarted,
    WorkflowTaskScheduled,
    WorkflowTaskStarted,
    WorkflowTaskCompleted,
    WorkflowTaskFailed,
    WorkflowTaskTimedOut,
    ActivityTaskScheduled,
    ActivityTaskStarted,
    ActivityTaskCompleted,
    ActivityTaskFailed,
    ActivityTaskTimedOut,
    WorkflowExecutionCompleted,
    WorkflowExecutionFailed,
    WorkflowExecutionTerminated,
    TimerStarted,
    TimerFired,
    TimerCanceled,
    WorkflowExecutionSignaled,
    WorkflowExecutionCancelRequested,
    WorkflowExecutionCanceled,
    WorkflowExecutionTimedOut,
    WorkflowExecutionContinuedAsNew,
    ActivityTaskCancelRequested,
    ActivityTaskCanceled,
}

impl EventType {
    /// The PascalCase name Temporal's CLI prints (`ActivityTaskScheduled`).
    pub fn name(self) -> &'static str {
        match self {
            EventType::WorkflowExecutionStarted => "WorkflowExecutionStarted",
            EventType::WorkflowTaskScheduled => "WorkflowTaskScheduled",
            EventType::WorkflowTaskStarted => "WorkflowTaskStarted",
            EventType::WorkflowTaskCompleted => "WorkflowTaskCompleted",
            EventType::WorkflowTaskFailed => "WorkflowTaskFailed",
            EventType::WorkflowTaskTimedOut => "WorkflowTaskTimedOut",
            EventType::ActivityTaskScheduled => "ActivityTaskScheduled",
            EventType::ActivityTaskStarted => "ActivityTaskStarted",
            EventType::ActivityTaskCompleted => "ActivityTaskCompleted",
            EventType::ActivityTaskFailed => "ActivityTaskFailed",
            EventType::ActivityTaskTimedOut => "ActivityTaskTimedOut",
            EventType::WorkflowExecutionCompleted => "WorkflowExecutionCompleted",
            EventType::WorkflowExecutionFailed => "WorkflowExecutionFailed",
            EventType::WorkflowExecutionTerminated => "WorkflowExecutionTerminated",
            EventType::TimerStarted => "TimerStarted",
            EventType::TimerFired => "TimerFired",
            EventType::TimerCanceled => "TimerCanceled",
            EventType::WorkflowExecutionSignaled => "WorkflowExecutionSignaled",
            EventType::WorkflowExecutionCancelRequested => "WorkflowExecutionCancelRequested",
            EventType::WorkflowExecutionCanceled => "WorkflowExecutionCanceled",
            EventType::WorkflowExecutionTimedOut => "WorkflowExecutionTimedOut",
            EventType::WorkflowExecutionContinuedAsNew => "WorkflowExecutionContinuedAsNew",
            EventType::ActivityTaskCancelRequested => "ActivityTaskCancelRequested",
            EventType::ActivityTaskCanceled => "ActivityTaskCanceled",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EventAttributes {
    pub fn event_type(&self) -> EventType {
        match self {
            EventAttributes::WorkflowExecutionStarted { .. } => EventType::WorkflowExecutionStarted,
            EventAttributes::WorkflowTaskScheduled { .. } => EventType::WorkflowTaskScheduled,
            EventAttributes::WorkflowTaskStarted { .. } => EventType::WorkflowTaskStarted,
            EventAttributes::WorkflowTaskCompleted { .. } => EventType::WorkflowTaskCompleted,
            EventAttributes::WorkflowTaskFailed { .. } => EventType::WorkflowTaskFailed,
            EventAttributes::WorkflowTaskTimedOut { .. } => EventType::WorkflowTaskTimedOut,
            EventAttributes::ActivityTaskScheduled { .. } => EventType::ActivityTaskScheduled,
            EventAttributes::ActivityTaskStarted { .. } => EventType::ActivityTaskStarted,
            EventAttributes::ActivityTaskCompleted { .. } => EventType::ActivityTaskCompleted,
            EventAttributes::ActivityTaskFailed { .. } => EventType::ActivityTaskFailed,
            EventAttributes::ActivityTaskTimedOut { .. } => EventType::ActivityTaskTimedOut,
            EventAttributes::WorkflowExecutionCompleted { .. } => {
                EventType::WorkflowExecutionCompleted
            }
            EventAttributes::WorkflowExecutionFailed { .. } => EventType::WorkflowExecutionFailed,
            EventAttributes::WorkflowExecutionTerminated { .. } => {
                EventType::WorkflowExecutionTerminated
            }
            EventAttributes::TimerStarted { .. } => EventType::TimerStarted,
            EventAttributes::TimerFired { .. } => EventType::TimerFired,
            EventAttributes::TimerCanceled { .. } => EventType::TimerCanceled,
            EventAttributes::WorkflowExecutionSignaled { .. } => {
                EventType::WorkflowExecutionSignaled
            }
            EventAttributes::WorkflowExecutionCancelRequested { .. } => {
                EventType::WorkflowExecutionCancelRequested
            }
            EventAttributes::WorkflowExecutionCanceled { .. } => {
                EventType::WorkflowExecutionCanceled
            }
            EventAttributes::WorkflowExecutionTimedOut { .. } => {
                EventType::WorkflowExecutionTimedOut
            }
            EventAttributes::WorkflowExecutionContinuedAsNew { .. } => {
                EventType::WorkflowExecutionContinuedAsNew
            }
            EventAttributes::ActivityTaskCancelRequested { .. } => {
                EventType::ActivityTaskCancelRequested
            }
            EventAttributes::ActivityTaskCanceled { .. } => EventType::ActivityTaskCanceled,
        }
    }

    /// The attributes as JSON, the event type's fields only, with payloads
    /// (JSON carried as text) shown as the JSON they hold.
    pub fn to_json(&self) -> serde_json::Value {
        fn unwrap_payloads(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m.iter_mut() {
                        let payload = matches!(
                            k.as_str(),
                            "input"
                                | "result"
                                | "details"
                                | "heartbeat_details"
                                | "last_heartbeat_details"
                        );
                        match x {
                            serde_json::Value::String(s) if payload => {
                                if let Ok(inner) = serde_json::from_str(s) {
                                    *x = inner;
                                }
                            }
                            _ => unwrap_payloads(x),
                        }
                    }
                }
                serde_json::Value::Array(xs) => xs.iter_mut().for_each(unwrap_payloads),
                _ => {}
            }
        }
        let mut v = serde_json::to_value(self).unwrap_or_default();
        // Externally tagged: {"ActivityTaskCanceled": {...}} → {...}.
        if let serde_json::Value::Object(m) = &mut v
            && m.len() == 1
            && let Some((_, inner)) = m.iter_mut().next()
        {
            v = inner.take();
        }
        unwrap_payloads(&mut v);
        v
    }

    /// The scheduled event id an activity resolution refers to.
    pub fn activity_scheduled_event_id(&self) -> Option<u64> {
        match self {
            EventAttributes::ActivityTaskStarted {
                scheduled_event_id, ..
            }
            | EventAttributes::ActivityTaskCompleted {
                scheduled_event_id, ..
            }
            | EventAttributes::ActivityTaskFailed {
                scheduled_event_id, ..
            }
            | EventAttributes::ActivityTaskTimedOut {
                scheduled_event_id, ..
            }
            | EventAttributes::ActivityTaskCanceled {
                scheduled_event_id, ..
            } => Some(*scheduled_event_id),
            _ => None,
        }
    }

    /// A short one-line description for logs and the history pane.
    pub fn summary(&self) -> String {
        match self {
            EventAttributes::WorkflowExecutionStarted {
                workflow_type,
                input,
                ..
            } => format!("{workflow_type} input={input}"),
            EventAttributes::WorkflowTaskScheduled {
                attempt,
                sticky_queue,
                ..
            } => match sticky_queue {
                Some(q) => format!("attempt={attempt} sticky={q}"),
                None => format!("attempt={attempt}"),
            },
            EventAttributes::WorkflowTaskStarted { identity, .. } => format!("identity={identity}"),
            EventAttributes::WorkflowTaskCompleted { identity, .. } => {
                format!("identity={identity}")
            }
            EventAttributes::WorkflowTaskFailed { cause, failure, .. } => {
                format!("{} {}", cause.temporal_name(), failure.message)
            }
            EventAttributes::WorkflowTaskTimedOut { timeout_type, .. } => {
                timeout_type.temporal_name().to_string()
            }
            EventAttributes::ActivityTaskScheduled {
                activity_id,
                activity_type,
                input,
                ..
            } => format!("{activity_type} id={activity_id} input={input}"),
            EventAttributes::ActivityTaskStarted {
                attempt,
                last_failure,
                identity,
                ..
            } => match last_failure {
                Some(f) => format!(
                    "attempt={attempt} identity={identity} lastFailure={:?}",
                    f.message
                ),
                None => format!("attempt={attempt} identity={identity}"),
            },
            EventAttributes::ActivityTaskCompleted { result, .. } => format!("result={result}"),
            EventAttributes::ActivityTaskFailed {
                failure,
                retry_state,
                ..
            }
            | EventAttributes::ActivityTaskTimedOut {
                failure,
                retry_state,
                ..
            } => format!("{} {:?}", retry_state.temporal_name(), failure.message),
            EventAttributes::WorkflowExecutionCompleted { result, .. } => {
                format!("result={result}")
            }
            EventAttributes::WorkflowExecutionFailed { failure, .. } => {
                format!("{}", failure.chain())
            }
            EventAttributes::WorkflowExecutionTerminated { reason, .. } => {
                format!("reason={reason:?}")
            }
            EventAttributes::TimerStarted {
                timer_id,
                start_to_fire_timeout,
                ..
            } => format!("id={timer_id} startToFireTimeout={start_to_fire_timeout:?}"),
            EventAttributes::TimerFired { timer_id, .. }
            | EventAttributes::TimerCanceled { timer_id, .. } => format!("id={timer_id}"),
            EventAttributes::WorkflowExecutionSignaled {
                signal_name, input, ..
            } => format!("{signal_name} input={input}"),
            EventAttributes::WorkflowExecutionCancelRequested { identity } => {
                format!("identity={identity}")
            }
            EventAttributes::WorkflowExecutionCanceled { .. } => String::new(),
            EventAttributes::WorkflowExecutionTimedOut { retry_state } => {
                retry_state.temporal_name().to_string()
            }
            EventAttributes::WorkflowExecutionContinuedAsNew {
                new_execution_run_id,
                input,
                ..
            } => format!("newRun={new_execution_run_id} input={input}"),
            EventAttributes::ActivityTaskCancelRequested {
                scheduled_event_id, ..
            } => format!("scheduledEventId={scheduled_event_id}"),
            EventAttributes::ActivityTaskCanceled {
                scheduled_event_id,
                details,
                ..
            } => match details {
                Some(d) => format!("scheduledEventId={scheduled_event_id} details={d}"),
                None => format!("scheduledEventId={scheduled_event_id}"),
            },
        }
    }
}
