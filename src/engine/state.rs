//! A run's mutable state and its pure transitions.
//!
//! Every transition is `(state, input, now) -> (events, effects)`: it mutates
//! a copy of [`RunState`], appends events to a [`Transition`] and lists the
//! effects to run once the commit is durable. No IO happens here, so the
//! transitions are unit-tested directly.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::history::{
    EventAttributes, HistoryEvent, Payload, RetryState, TimeoutType, WorkflowTaskFailedCause,
};
use super::retry::RetryPolicy;

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

/// The run's workflow task, if one is pending.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskState {
    /// `None` for a transient attempt (> 1), which has no Scheduled event.
    pub scheduled_event_id: Option<u64>,
    pub attempt: u32,
    pub scheduled_time_ms: u64,
    pub original_scheduled_time_ms: u64,
    /// Not dispatched before this time (backoff between failing attempts).
    pub not_before_ms: u64,
    pub start_to_close: Duration,
    /// Set while a worker holds the task. Never trusted after a restart.
    pub started: Option<WorkflowTaskStarted>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskStarted {
    pub identity: String,
    pub started_time_ms: u64,
    /// Fences completions: only the holder of this request id may complete the task.
    pub request_id: u64,
}

/// One pending activity: everything describe shows, and what retries need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityState {
    pub scheduled_event_id: u64,
    pub activity_id: String,
    pub activity_type: String,
    pub task_queue: String,
    pub input: Payload,
    pub timeouts: ActivityTimeouts,
    pub retry_policy: RetryPolicy,
    pub state: PendingActivityState,
    /// The attempt running now, or the next one during backoff.
    pub attempt: u32,
    /// When the activity was first scheduled.
    pub first_scheduled_time_ms: u64,
    /// When the current attempt was (or will be) scheduled.
    pub scheduled_time_ms: u64,
    /// The schedule-to-close deadline.
    pub expiration_ms: Option<u64>,
    pub last_failure: Option<Failure>,
    pub last_started_time_ms: Option<u64>,
    pub last_worker_identity: String,
    pub current_retry_interval: Option<Duration>,
    pub last_attempt_complete_time_ms: Option<u64>,
    pub next_attempt_schedule_time_ms: Option<u64>,
    /// The last details the activity reported; survive into the next attempt.
    pub heartbeat_details: Option<Payload>,
    pub last_heartbeat_time_ms: Option<u64>,
    /// Workflow code asked to cancel it; the running attempt learns of it by heartbeat.
    pub cancel_requested: bool,
    /// The attempts so far, oldest first, at most [`MAX_ATTEMPT_RECORDS`].
    pub attempts: Vec<AttemptRecord>,
}

/// How many attempts of one activity are remembered for drawing.
pub const MAX_ATTEMPT_RECORDS: usize = 100;

/// One attempt of an activity, as a timeline draws it. holdfast's own
/// record (Temporal keeps only the last attempt's facts); never in history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    /// When a worker took it; `None` if it never started (it timed out
    /// waiting to be picked up).
    pub started_time_ms: Option<u64>,
    pub worker_identity: String,
    pub ended_time_ms: Option<u64>,
    pub outcome: AttemptOutcome,
    /// The failure's message, for a failed or timed-out attempt.
    pub failure_message: Option<String>,
    /// When the next attempt was scheduled for, if this one was retried.
    pub next_attempt_time_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Running,
    Completed,
    Failed,
    TimedOut(TimeoutType),
    Canceled,
}

impl ActivityState {
    /// Records that the current attempt started.
    fn record_start(&mut self, now: u64, identity: &str) {
        if self.attempts.len() == MAX_ATTEMPT_RECORDS {
            self.attempts.remove(0);
        }
        self.attempts.push(AttemptRecord {
            attempt: self.attempt,
            started_time_ms: Some(now),
            worker_identity: identity.to_string(),
            ended_time_ms: None,
            outcome: AttemptOutcome::Running,
            failure_message: None,
            next_attempt_time_ms: None,
        });
    }

    /// Records how the current attempt ended (one that never started gets a
    /// record of its own).
    fn record_end(&mut self, now: u64, outcome: AttemptOutcome, failure: Option<&Failure>) {
        let open = self
            .attempts
            .last()
            .is_some_and(|r| r.attempt == self.attempt && r.ended_time_ms.is_none());
        if !open {
            if self.attempts.len() == MAX_ATTEMPT_RECORDS {
                self.attempts.remove(0);
            }
            self.attempts.push(AttemptRecord {
                attempt: self.attempt,
                started_time_ms: None,
                worker_identity: String::new(),
                ended_time_ms: None,
                outcome,
                failure_message: None,
                next_attempt_time_ms: None,
            });
        }
        if let Some(r) = self.attempts.last_mut() {
            r.ended_time_ms = Some(now);
            r.outcome = outcome;
            r.failure_message = failure.map(|f| f.message.clone());
        }
    }
}

impl ActivityState {
    /// The final attempt's ActivityTaskStarted (at its start time, with the
    /// previous attempt's failure) followed by the close event: Temporal
    /// writes the two together, only when the activity closes.
    fn started_then(
        &self,
        now: u64,
        identity: &str,
        close: EventAttributes,
    ) -> Vec<(u64, EventAttributes)> {
        vec![
            (
                self.last_started_time_ms.unwrap_or(now),
                EventAttributes::ActivityTaskStarted {
                    scheduled_event_id: self.scheduled_event_id,
                    identity: identity.to_string(),
                    attempt: self.attempt,
                    last_failure: self.last_failure.clone(),
                },
            ),
            (now, close),
        ]
    }

    /// Deadlines of the running attempt of run `seq`: start-to-close from its
    /// start, heartbeat from its last heartbeat (or its start). `now` stands
    /// in for a start time that was never recorded.
    pub(crate) fn running_attempt_timers(&self, seq: u64, now: u64) -> Vec<Effect> {
        let (scheduled, attempt) = (self.scheduled_event_id, self.attempt);
        let started = self.last_started_time_ms.unwrap_or(now);
        let mut effects = vec![Effect::Timer {
            at_ms: started + self.timeouts.start_to_close.as_millis() as u64,
            key: TimerKey::ActivityStartToClose {
                seq,
                scheduled,
                attempt,
            },
        }];
        if !self.timeouts.heartbeat.is_zero() {
            let last = self.last_heartbeat_time_ms.unwrap_or(started);
            effects.push(Effect::Timer {
                at_ms: last + self.timeouts.heartbeat.as_millis() as u64,
                key: TimerKey::ActivityHeartbeat {
                    seq,
                    scheduled,
                    attempt,
                },
            });
        }
        effects
    }
}

/// The mutable state of one run, stored beside its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub seq: u64,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub status: WorkflowExecutionStatus,
    pub start_time_ms: u64,
    pub close_time_ms: Option<u64>,
    pub next_event_id: u64,
    pub history_size_bytes: u64,
    pub state_transition_count: u64,
    pub workflow_task_timeout: Duration,
    pub workflow_task: Option<WorkflowTaskState>,
    pub activities: Vec<ActivityState>,
    /// Events that arrived while a workflow task was running; appended after it.
    pub buffered: Vec<(u64, EventAttributes)>,
    pub close_event_id: Option<u64>,
    /// Durable timers started by workflow code and not yet fired or canceled.
    pub timers: Vec<TimerState>,
    /// A cancel was requested (the workflow code decides what to do).
    pub cancel_requested: bool,
    /// When the execution (or run) timeout expires, if one is set.
    pub expiration_ms: Option<u64>,
    /// The first run of a continue-as-new chain (this run if it began one).
    pub first_execution_run_id: String,
    /// How long this run's first workflow task waited (continue-as-new's backoff).
    pub first_workflow_task_backoff: Duration,
}

/// A pending user timer: fires at an absolute time, so a crash neither loses nor shifts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimerState {
    pub timer_id: String,
    pub started_event_id: u64,
    pub fire_at_ms: u64,
}

/// Timers the engine keeps; each names what it checks when it fires.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    ActivityRetry {
        seq: u64,
        scheduled: u64,
        attempt: u32,
    },
    ActivityStartToClose {
        seq: u64,
        scheduled: u64,
        attempt: u32,
    },
    ActivityScheduleToStart {
        seq: u64,
        scheduled: u64,
        attempt: u32,
    },
    ActivityScheduleToClose {
        seq: u64,
        scheduled: u64,
    },
    ActivityHeartbeat {
        seq: u64,
        scheduled: u64,
        attempt: u32,
    },
    WorkflowTaskTimeout {
        seq: u64,
        request_id: u64,
    },
    WorkflowTaskRetry {
        seq: u64,
        attempt: u32,
    },
    UserTimer {
        seq: u64,
        started: u64,
    },
    WorkflowExpiration {
        seq: u64,
    },
}

/// What to do once a transition is durable.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    EnqueueWorkflowTask {
        seq: u64,
        queue: String,
    },
    EnqueueActivity {
        seq: u64,
        scheduled: u64,
        attempt: u32,
        queue: String,
    },
    Timer {
        at_ms: u64,
        key: TimerKey,
    },
    Closed {
        seq: u64,
    },
}

/// The output of a transition: events to append and effects to run after the commit.
#[derive(Default, Debug)]
pub struct Transition {
    pub events: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
    /// The run continued as new: the engine starts this run in the same commit.
    pub continue_as_new: Option<Payload>,
}

/// Time between failing workflow-task attempts, as observed on Temporal with
/// sdk-core workers: attempt 2 at once, then each attempt ends by the task
/// timeout, plus `5 s · 2^(a-4)` from attempt 4 on (capped at 10 min).
pub fn workflow_task_retry_delay(failed_attempt: u32, task_timeout: Duration) -> Duration {
    if failed_attempt <= 1 {
        return Duration::ZERO;
    }
    let extra = if failed_attempt >= 4 {
        let exp = (failed_attempt - 4).min(20);
        (Duration::from_secs(5) * 2u32.pow(exp)).min(Duration::from_secs(600))
    } else {
        Duration::ZERO
    };
    task_timeout + extra
}

impl RunState {
    /// A new, running run with no events yet.
    pub fn new(
        seq: u64,
        workflow_id: &str,
        run_id: &str,
        workflow_type: &str,
        task_queue: &str,
        now: u64,
        workflow_task_timeout: Duration,
    ) -> RunState {
        RunState {
            seq,
            workflow_id: workflow_id.to_string(),
            run_id: run_id.to_string(),
            workflow_type: workflow_type.to_string(),
            task_queue: task_queue.to_string(),
            status: WorkflowExecutionStatus::Running,
            start_time_ms: now,
            close_time_ms: None,
            next_event_id: 1,
            history_size_bytes: 0,
            state_transition_count: 0,
            workflow_task_timeout,
            workflow_task: None,
            activities: Vec::new(),
            buffered: Vec::new(),
            close_event_id: None,
            timers: Vec::new(),
            cancel_requested: false,
            expiration_ms: None,
            first_execution_run_id: run_id.to_string(),
            first_workflow_task_backoff: Duration::ZERO,
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == WorkflowExecutionStatus::Running
    }

    /// Whether an activity has failed at least once and is still pending.
    pub fn has_activity_retrying(&self) -> bool {
        self.is_running() && self.activities.iter().any(|a| a.attempt > 1)
    }

    pub fn history_length(&self) -> u64 {
        self.next_event_id - 1
    }

    /// Appends an event, numbering it.
    pub fn append(
        &mut self,
        tr: &mut Transition,
        now: u64,
        mut attributes: EventAttributes,
    ) -> u64 {
        let event_id = self.next_event_id;
        // An activity's close event always directly follows its Started event.
        set_started_event_id(&mut attributes, event_id - 1);
        self.next_event_id += 1;
        self.history_size_bytes += approx_size(&attributes);
        tr.events.push(HistoryEvent {
            event_id,
            event_time_ms: now,
            attributes,
        });
        event_id
    }

    pub fn activity_index(&self, scheduled: u64) -> Option<usize> {
        self.activities
            .iter()
            .position(|a| a.scheduled_event_id == scheduled)
    }

    fn workflow_task_started(&self) -> bool {
        self.workflow_task
            .as_ref()
            .is_some_and(|w| w.started.is_some())
    }

    /// Writes a new WorkflowTaskScheduled (attempt 1) unless one is pending.
    pub fn schedule_workflow_task(&mut self, tr: &mut Transition, now: u64) {
        if let Some(w) = &self.workflow_task {
            let transient_backoff = w.scheduled_event_id.is_none() && w.started.is_none();
            if !transient_backoff {
                return;
            }
        }
        let id = self.append(
            tr,
            now,
            EventAttributes::WorkflowTaskScheduled {
                task_queue: self.task_queue.clone(),
                start_to_close_timeout: self.workflow_task_timeout,
                attempt: 1,
            },
        );
        self.workflow_task = Some(WorkflowTaskState {
            scheduled_event_id: Some(id),
            attempt: 1,
            scheduled_time_ms: now,
            original_scheduled_time_ms: now,
            not_before_ms: now,
            start_to_close: self.workflow_task_timeout,
            started: None,
        });
        tr.effects.push(Effect::EnqueueWorkflowTask {
            seq: self.seq,
            queue: self.task_queue.clone(),
        });
    }

    /// Events from outside workflow code (activity results, …): buffered
    /// while a workflow task runs, otherwise appended with a workflow task.
    pub fn add_external_events(
        &mut self,
        tr: &mut Transition,
        now: u64,
        events: Vec<(u64, EventAttributes)>,
    ) {
        if self.workflow_task_started() {
            self.buffered.extend(events);
        } else {
            for (t, e) in events {
                self.append(tr, t, e);
            }
            self.schedule_workflow_task(tr, now);
        }
    }

    /// Appends buffered events after a workflow task ends, and schedules the next task.
    fn flush_buffered(&mut self, tr: &mut Transition, now: u64) -> bool {
        if self.buffered.is_empty() {
            return false;
        }
        for (t, e) in std::mem::take(&mut self.buffered) {
            self.append(tr, t, e);
        }
        self.schedule_workflow_task(tr, now);
        true
    }

    /// A worker took the workflow task.
    pub fn start_workflow_task(
        &mut self,
        identity: &str,
        now: u64,
        request_id: u64,
    ) -> Option<Effect> {
        let w = self.workflow_task.as_mut()?;
        w.started = Some(WorkflowTaskStarted {
            identity: identity.to_string(),
            started_time_ms: now,
            request_id,
        });
        Some(Effect::Timer {
            at_ms: now + w.start_to_close.as_millis() as u64,
            key: TimerKey::WorkflowTaskTimeout {
                seq: self.seq,
                request_id,
            },
        })
    }

    /// Writes the (deferred) Scheduled-if-transient and Started events of the
    /// running workflow task; returns (scheduled id, started id).
    fn write_task_started(&mut self, tr: &mut Transition) -> Option<(u64, u64)> {
        let w = self.workflow_task.clone()?;
        let st = w.started.clone()?;
        let scheduled = match w.scheduled_event_id {
            Some(id) => id,
            None => self.append(
                tr,
                w.scheduled_time_ms,
                EventAttributes::WorkflowTaskScheduled {
                    task_queue: self.task_queue.clone(),
                    start_to_close_timeout: w.start_to_close,
                    attempt: w.attempt,
                },
            ),
        };
        let size = self.history_size_bytes;
        let started = self.append(
            tr,
            st.started_time_ms,
            EventAttributes::WorkflowTaskStarted {
                scheduled_event_id: scheduled,
                identity: st.identity,
                history_size_bytes: size,
            },
        );
        Some((scheduled, started))
    }

    /// The worker finished the workflow task with these commands.
    pub fn complete_workflow_task(
        &mut self,
        tr: &mut Transition,
        now: u64,
        identity: &str,
        commands: Vec<Command>,
    ) {
        // Validate every command before writing anything.
        let limit = super::client::BLOB_SIZE_LIMIT;
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
                self.fail_workflow_task(
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
                );
                return;
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
                        self.fail_workflow_task(
                            tr,
                            now,
                            identity,
                            WorkflowTaskFailedCause::BadScheduleActivityAttributes,
                            Failure::application("BadScheduleActivityAttributes", msg, true),
                        );
                        return;
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
            self.fail_workflow_task(
                tr,
                now,
                identity,
                WorkflowTaskFailedCause::UnhandledCommand,
                Failure::application(
                    "UnhandledCommand",
                    "new events arrived while the workflow task ran; it runs again with them",
                    false,
                ),
            );
            return;
        }
        let Some((scheduled, started)) = self.write_task_started(tr) else {
            return;
        };
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
        // A cancellation resolved at once needs a new workflow task to deliver it.
        let mut wake_after = false;
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
                        cancel_requested: false,
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
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionCompleted {
                            result,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::Completed, id);
                    return;
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
                    self.append(
                        tr,
                        now,
                        EventAttributes::ActivityTaskCancelRequested {
                            scheduled_event_id: scheduled,
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    if self.activities[idx].state == PendingActivityState::Scheduled {
                        // Not running: canceled at once.
                        self.activities.remove(idx);
                        self.append(
                            tr,
                            now,
                            EventAttributes::ActivityTaskCanceled {
                                scheduled_event_id: scheduled,
                                started_event_id: 0,
                                identity: identity.to_string(),
                            },
                        );
                        // It never started: no Started event to point at.
                        if let Some(HistoryEvent {
                            attributes:
                                EventAttributes::ActivityTaskCanceled {
                                    started_event_id, ..
                                },
                            ..
                        }) = tr.events.last_mut()
                        {
                            *started_event_id = 0;
                        }
                        wake_after = true;
                    } else {
                        self.activities[idx].cancel_requested = true;
                    }
                }
                Command::ContinueAsNewWorkflowExecution { input } => {
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
                    return;
                }
                Command::CancelWorkflowExecution => {
                    let id = self.append(
                        tr,
                        now,
                        EventAttributes::WorkflowExecutionCanceled {
                            workflow_task_completed_event_id: completed,
                        },
                    );
                    self.close(tr, now, WorkflowExecutionStatus::Canceled, id);
                    return;
                }
                Command::FailWorkflowExecution { failure } => {
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
                    return;
                }
            }
        }
        if !self.flush_buffered(tr, now) && wake_after {
            self.schedule_workflow_task(tr, now);
        }
    }

    fn enqueue_activity(&self, tr: &mut Transition, act: &ActivityState, now: u64) {
        tr.effects.push(Effect::EnqueueActivity {
            seq: self.seq,
            scheduled: act.scheduled_event_id,
            attempt: act.attempt,
            queue: act.task_queue.clone(),
        });
        if !act.timeouts.schedule_to_start.is_zero() {
            tr.effects.push(Effect::Timer {
                at_ms: now + act.timeouts.schedule_to_start.as_millis() as u64,
                key: TimerKey::ActivityScheduleToStart {
                    seq: self.seq,
                    scheduled: act.scheduled_event_id,
                    attempt: act.attempt,
                },
            });
        }
    }

    /// Closes the run: nothing stays pending.
    pub fn close(
        &mut self,
        tr: &mut Transition,
        now: u64,
        status: WorkflowExecutionStatus,
        close_event_id: u64,
    ) {
        self.status = status;
        self.close_time_ms = Some(now);
        self.close_event_id = Some(close_event_id);
        self.workflow_task = None;
        self.activities.clear();
        self.timers.clear();
        self.buffered.clear();
        tr.effects.push(Effect::Closed { seq: self.seq });
    }

    /// The workflow task failed (panic, nondeterminism, bad command). Only
    /// attempt 1 is recorded; later attempts are transient and write nothing.
    pub fn fail_workflow_task(
        &mut self,
        tr: &mut Transition,
        now: u64,
        identity: &str,
        cause: WorkflowTaskFailedCause,
        failure: Failure,
    ) {
        let Some(w) = self.workflow_task.clone() else {
            return;
        };
        if (w.attempt == 1 || !self.buffered.is_empty())
            && let Some((scheduled, started)) = self.write_task_started(tr)
        {
            self.append(
                tr,
                now,
                EventAttributes::WorkflowTaskFailed {
                    scheduled_event_id: scheduled,
                    started_event_id: started,
                    cause,
                    failure,
                    identity: identity.to_string(),
                },
            );
        }
        self.retry_workflow_task(tr, now, w);
    }

    /// The running workflow task's start-to-close timeout expired.
    pub fn time_out_workflow_task(&mut self, tr: &mut Transition, now: u64) {
        let Some(w) = self.workflow_task.clone() else {
            return;
        };
        if (w.attempt == 1 || !self.buffered.is_empty())
            && let Some((scheduled, started)) = self.write_task_started(tr)
        {
            self.append(
                tr,
                now,
                EventAttributes::WorkflowTaskTimedOut {
                    scheduled_event_id: scheduled,
                    started_event_id: started,
                    timeout_type: TimeoutType::StartToClose,
                },
            );
        }
        // A timed-out attempt already waited its timeout: retry at once.
        self.workflow_task = None;
        if self.flush_buffered(tr, now) {
            return;
        }
        self.workflow_task = Some(WorkflowTaskState {
            scheduled_event_id: None,
            attempt: w.attempt + 1,
            scheduled_time_ms: now,
            original_scheduled_time_ms: w.original_scheduled_time_ms,
            not_before_ms: now,
            start_to_close: w.start_to_close,
            started: None,
        });
        tr.effects.push(Effect::EnqueueWorkflowTask {
            seq: self.seq,
            queue: self.task_queue.clone(),
        });
    }

    fn retry_workflow_task(&mut self, tr: &mut Transition, now: u64, w: WorkflowTaskState) {
        self.workflow_task = None;
        // New events interrupt the transient retries with a fresh attempt 1.
        if self.flush_buffered(tr, now) {
            return;
        }
        let delay = workflow_task_retry_delay(w.attempt, w.start_to_close);
        let at = now + delay.as_millis() as u64;
        self.workflow_task = Some(WorkflowTaskState {
            scheduled_event_id: None,
            attempt: w.attempt + 1,
            scheduled_time_ms: at,
            original_scheduled_time_ms: w.original_scheduled_time_ms,
            not_before_ms: at,
            start_to_close: w.start_to_close,
            started: None,
        });
        if delay.is_zero() {
            tr.effects.push(Effect::EnqueueWorkflowTask {
                seq: self.seq,
                queue: self.task_queue.clone(),
            });
        } else {
            tr.effects.push(Effect::Timer {
                at_ms: at,
                key: TimerKey::WorkflowTaskRetry {
                    seq: self.seq,
                    attempt: w.attempt + 1,
                },
            });
        }
    }

    /// A worker picked up an activity attempt.
    pub fn start_activity(&mut self, idx: usize, identity: &str, now: u64) -> Vec<Effect> {
        let seq = self.seq;
        let a = &mut self.activities[idx];
        a.state = PendingActivityState::Started;
        a.last_started_time_ms = Some(now);
        a.last_heartbeat_time_ms = None;
        a.last_worker_identity = identity.to_string();
        a.record_start(now, identity);
        a.running_attempt_timers(seq, now)
    }

    /// The heartbeat deadline of the running attempt: `Ok(None)` if it has
    /// passed, `Ok(Some(t))` if a later heartbeat moved it to `t`.
    pub fn heartbeat_deadline(&self, idx: usize) -> Option<u64> {
        let a = &self.activities[idx];
        let last = a.last_heartbeat_time_ms.or(a.last_started_time_ms)?;
        Some(last + a.timeouts.heartbeat.as_millis() as u64)
    }

    /// The running attempt returned a result: Started + Completed are written together.
    pub fn complete_activity(
        &mut self,
        tr: &mut Transition,
        now: u64,
        idx: usize,
        identity: &str,
        result: Payload,
    ) {
        let a = self.activities.remove(idx);
        let completed = EventAttributes::ActivityTaskCompleted {
            result,
            scheduled_event_id: a.scheduled_event_id,
            started_event_id: 0,
            identity: identity.to_string(),
        };
        let events = a.started_then(now, identity, completed);
        self.add_external_events(tr, now, events);
    }

    /// An attempt failed (by the activity's own error or a timeout). Retries
    /// per policy write no events; the final outcome writes Started + Failed/TimedOut.
    pub fn fail_activity_attempt(
        &mut self,
        tr: &mut Transition,
        now: u64,
        idx: usize,
        failure: Failure,
        identity: Option<&str>,
    ) {
        let seq = self.seq;
        let outcome = match failure.timeout_type() {
            Some(t) => AttemptOutcome::TimedOut(t),
            None => AttemptOutcome::Failed,
        };
        self.activities[idx].record_end(now, outcome, Some(&failure));
        if self.activities[idx].cancel_requested {
            let a = self.activities.remove(idx);
            let identity = identity.unwrap_or(&a.last_worker_identity).to_string();
            let canceled = EventAttributes::ActivityTaskCanceled {
                scheduled_event_id: a.scheduled_event_id,
                started_event_id: 0,
                identity: identity.clone(),
            };
            let events = a.started_then(now, &identity, canceled);
            self.add_external_events(tr, now, events);
            return;
        }
        let a = &mut self.activities[idx];
        let timed_out = failure.timeout_type().is_some();
        match a
            .retry_policy
            .should_retry(a.attempt, &failure, now, a.expiration_ms)
        {
            Ok(interval) => {
                a.attempt += 1;
                a.last_failure = Some(failure);
                a.state = PendingActivityState::Scheduled;
                a.last_attempt_complete_time_ms = Some(now);
                a.current_retry_interval = Some(interval);
                let next = now + interval.as_millis() as u64;
                if let Some(r) = a.attempts.last_mut() {
                    r.next_attempt_time_ms = Some(next);
                }
                a.next_attempt_schedule_time_ms = Some(next);
                a.scheduled_time_ms = next;
                tr.effects.push(Effect::Timer {
                    at_ms: next,
                    key: TimerKey::ActivityRetry {
                        seq,
                        scheduled: a.scheduled_event_id,
                        attempt: a.attempt,
                    },
                });
            }
            Err(retry_state) => {
                let a = self.activities.remove(idx);
                let identity = identity.unwrap_or(&a.last_worker_identity).to_string();
                let close = if timed_out {
                    EventAttributes::ActivityTaskTimedOut {
                        failure: failure.with_cause(a.last_failure.clone()),
                        scheduled_event_id: a.scheduled_event_id,
                        started_event_id: 0,
                        retry_state,
                    }
                } else {
                    EventAttributes::ActivityTaskFailed {
                        failure,
                        scheduled_event_id: a.scheduled_event_id,
                        started_event_id: 0,
                        identity: identity.clone(),
                        retry_state,
                    }
                };
                let events = a.started_then(now, &identity, close);
                self.add_external_events(tr, now, events);
            }
        }
    }

    /// Skips the rest of an activity's backoff: its next attempt is
    /// scheduled now, with the same attempt number (what the Temporal UI's
    /// users ask for, temporalio/ui#542). `activity_id` None picks the
    /// first activity waiting for a retry. Returns the activity's id.
    pub fn retry_activity_now(
        &mut self,
        tr: &mut Transition,
        now: u64,
        activity_id: Option<&str>,
    ) -> Result<String, String> {
        let idx = match activity_id {
            Some(id) => self
                .activities
                .iter()
                .position(|a| a.activity_id == id)
                .ok_or_else(|| {
                    format!(
                        "workflow {} has no pending activity {id:?}",
                        self.workflow_id
                    )
                })?,
            None => self
                .activities
                .iter()
                .position(|a| a.state == PendingActivityState::Scheduled && a.attempt > 1)
                .ok_or_else(|| {
                    format!(
                        "no activity of workflow {} is waiting for a retry",
                        self.workflow_id
                    )
                })?,
        };
        let a = &mut self.activities[idx];
        if a.state != PendingActivityState::Scheduled || a.attempt == 1 {
            return Err(format!(
                "activity {} of workflow {} is not waiting for a retry (attempt {}, {:?})",
                a.activity_id, self.workflow_id, a.attempt, a.state
            ));
        }
        a.scheduled_time_ms = now;
        a.next_attempt_schedule_time_ms = Some(now);
        if let Some(r) = a.attempts.last_mut() {
            r.next_attempt_time_ms = Some(now);
        }
        let id = a.activity_id.clone();
        let a = self.activities[idx].clone();
        self.enqueue_activity(tr, &a, now);
        Ok(id)
    }

    /// A user timer fell due.
    pub fn fire_timer(&mut self, tr: &mut Transition, now: u64, started: u64) -> bool {
        let Some(i) = self
            .timers
            .iter()
            .position(|t| t.started_event_id == started)
        else {
            return false;
        };
        let t = self.timers.remove(i);
        self.add_external_events(
            tr,
            now,
            vec![(
                now,
                EventAttributes::TimerFired {
                    timer_id: t.timer_id,
                    started_event_id: t.started_event_id,
                },
            )],
        );
        true
    }

    /// A signal arrived: recorded before it is acknowledged.
    pub fn signal(
        &mut self,
        tr: &mut Transition,
        now: u64,
        name: &str,
        input: Payload,
        identity: &str,
    ) {
        self.add_external_events(
            tr,
            now,
            vec![(
                now,
                EventAttributes::WorkflowExecutionSignaled {
                    signal_name: name.to_string(),
                    input,
                    identity: identity.to_string(),
                },
            )],
        );
    }

    /// A cancel request: recorded, then left to workflow code (once).
    pub fn request_cancel(&mut self, tr: &mut Transition, now: u64, identity: &str) {
        if self.cancel_requested {
            return;
        }
        self.cancel_requested = true;
        self.add_external_events(
            tr,
            now,
            vec![(
                now,
                EventAttributes::WorkflowExecutionCancelRequested {
                    identity: identity.to_string(),
                },
            )],
        );
    }

    /// The execution or run timeout expired: closes the run at once; the
    /// workflow code is not consulted.
    pub fn time_out(&mut self, tr: &mut Transition, now: u64) {
        let id = self.append(
            tr,
            now,
            EventAttributes::WorkflowExecutionTimedOut {
                retry_state: RetryState::Timeout,
            },
        );
        self.close(tr, now, WorkflowExecutionStatus::TimedOut, id);
    }

    /// Terminates the run: one event, nothing written for pending work.
    pub fn terminate(&mut self, tr: &mut Transition, now: u64, reason: &str, identity: &str) {
        let id = self.append(
            tr,
            now,
            EventAttributes::WorkflowExecutionTerminated {
                reason: reason.to_string(),
                identity: identity.to_string(),
            },
        );
        self.close(tr, now, WorkflowExecutionStatus::Terminated, id);
    }
}

fn set_started_event_id(e: &mut EventAttributes, id: u64) {
    match e {
        EventAttributes::ActivityTaskCompleted {
            started_event_id, ..
        }
        | EventAttributes::ActivityTaskFailed {
            started_event_id, ..
        }
        | EventAttributes::ActivityTaskTimedOut {
            started_event_id, ..
        } => *started_event_id = id,
        EventAttributes::ActivityTaskCanceled {
            started_event_id, ..
        } if *started_event_id == 0 => *started_event_id = id,
        _ => {}
    }
}

/// A cheap estimate of an event's stored size, for `historySizeBytes`.
fn approx_size(e: &EventAttributes) -> u64 {
    let payload = match e {
        EventAttributes::WorkflowExecutionStarted { input, .. }
        | EventAttributes::ActivityTaskScheduled { input, .. } => input.len(),
        EventAttributes::ActivityTaskCompleted { result, .. }
        | EventAttributes::WorkflowExecutionCompleted { result, .. } => result.len(),
        EventAttributes::ActivityTaskFailed { failure, .. }
        | EventAttributes::ActivityTaskTimedOut { failure, .. }
        | EventAttributes::WorkflowExecutionFailed { failure, .. }
        | EventAttributes::WorkflowTaskFailed { failure, .. } => failure.message.len(),
        _ => 0,
    };
    (64 + payload) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::history::EventType;

    fn new_run() -> (RunState, Transition) {
        let mut run = RunState::new(1, "wf", "run", "T", "q", 0, Duration::from_secs(10));
        let mut tr = Transition::default();
        run.append(
            &mut tr,
            0,
            EventAttributes::WorkflowExecutionStarted {
                workflow_id: "wf".into(),
                workflow_type: "T".into(),
                task_queue: "q".into(),
                input: Payload("null".into()),
                workflow_task_timeout: Duration::from_secs(10),
                original_execution_run_id: "run".into(),
                first_execution_run_id: "run".into(),
                identity: "test".into(),
                attempt: 1,
                workflow_execution_timeout: Duration::ZERO,
                workflow_run_timeout: Duration::ZERO,
                workflow_execution_expiration_time_ms: None,
                continued_execution_run_id: None,
                first_workflow_task_backoff: Duration::ZERO,
            },
        );
        run.schedule_workflow_task(&mut tr, 0);
        (run, tr)
    }

    fn types(tr: &Transition) -> Vec<EventType> {
        tr.events.iter().map(|e| e.event_type()).collect()
    }

    fn schedule(id: &str, opts: ActivityOptions) -> Command {
        Command::ScheduleActivity {
            activity_id: id.into(),
            activity_type: "act".into(),
            input: Payload("1".into()),
            options: opts,
        }
    }

    fn stc() -> ActivityOptions {
        ActivityOptions {
            start_to_close_timeout: Some(Duration::from_secs(5)),
            ..ActivityOptions::default()
        }
    }

    /// Completing a workflow task writes its deferred Started event, Completed,
    /// then one event per command, and dispatches the activity after commit.
    #[test]
    fn workflow_task_completion_writes_started_completed_and_commands() {
        let (mut run, tr) = new_run();
        assert_eq!(
            types(&tr),
            [
                EventType::WorkflowExecutionStarted,
                EventType::WorkflowTaskScheduled
            ]
        );
        run.start_workflow_task("w", 10, 7);
        let mut tr = Transition::default();
        run.complete_workflow_task(&mut tr, 20, "w", vec![schedule("1", stc())]);
        assert_eq!(
            types(&tr),
            [
                EventType::WorkflowTaskStarted,
                EventType::WorkflowTaskCompleted,
                EventType::ActivityTaskScheduled
            ]
        );
        assert_eq!(
            tr.events[0].event_time_ms, 10,
            "Started carries the start time"
        );
        assert!(
            tr.effects
                .iter()
                .any(|e| matches!(e, Effect::EnqueueActivity { .. }))
        );
        assert_eq!(run.activities.len(), 1);
        assert!(run.workflow_task.is_none());
    }

    /// An activity result arriving while a workflow task runs is buffered and
    /// written after that task's events, with a new workflow task.
    #[test]
    fn events_during_a_workflow_task_are_buffered() {
        let (mut run, _) = new_run();
        run.start_workflow_task("w", 0, 1);
        let mut tr = Transition::default();
        run.complete_workflow_task(
            &mut tr,
            0,
            "w",
            vec![schedule("1", stc()), schedule("2", stc())],
        );
        // activity 1 completes, a task runs; activity 2 completes during it
        run.start_activity(0, "w", 1);
        let mut tr = Transition::default();
        run.complete_activity(&mut tr, 2, 0, "w", Payload("1".into()));
        run.start_workflow_task("w", 3, 2);
        run.start_activity(0, "w", 3);
        let mut tr = Transition::default();
        run.complete_activity(&mut tr, 4, 0, "w", Payload("2".into()));
        assert!(tr.events.is_empty(), "nothing appended while the task runs");
        assert_eq!(run.buffered.len(), 2);
        let mut tr = Transition::default();
        run.complete_workflow_task(&mut tr, 5, "w", vec![]);
        assert_eq!(
            types(&tr),
            [
                EventType::WorkflowTaskStarted,
                EventType::WorkflowTaskCompleted,
                EventType::ActivityTaskStarted,
                EventType::ActivityTaskCompleted,
                EventType::WorkflowTaskScheduled
            ]
        );
        let EventAttributes::ActivityTaskCompleted {
            started_event_id, ..
        } = tr.events[3].attributes
        else {
            unreachable!()
        };
        assert_eq!(started_event_id, tr.events[2].event_id);
    }

    /// An activity with neither start-to-close nor schedule-to-close fails
    /// the workflow task with Temporal's cause and message.
    #[test]
    fn activity_without_timeouts_fails_the_workflow_task() {
        let (mut run, _) = new_run();
        run.start_workflow_task("w", 0, 1);
        let mut tr = Transition::default();
        run.complete_workflow_task(
            &mut tr,
            0,
            "w",
            vec![schedule("1", ActivityOptions::default())],
        );
        let EventAttributes::WorkflowTaskFailed { cause, failure, .. } = &tr.events[1].attributes
        else {
            panic!("{:?}", types(&tr))
        };
        assert_eq!(
            *cause,
            WorkflowTaskFailedCause::BadScheduleActivityAttributes
        );
        assert!(
            failure
                .message
                .starts_with("a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set")
        );
        assert!(run.activities.is_empty());
    }

    /// Schedule-to-close bounds the other timeouts, as Temporal normalizes them.
    #[test]
    fn timeouts_are_normalized() {
        let o = ActivityOptions {
            schedule_to_close_timeout: Some(Duration::from_secs(5)),
            start_to_close_timeout: Some(Duration::from_secs(30)),
            heartbeat_timeout: Some(Duration::from_secs(60)),
            ..ActivityOptions::default()
        };
        let (t, p) = o.normalize("1", "a").unwrap();
        assert_eq!(t.schedule_to_start, Duration::from_secs(5));
        assert_eq!(t.start_to_close, Duration::from_secs(5));
        assert_eq!(t.heartbeat, Duration::from_secs(5));
        assert_eq!(p, RetryPolicy::default());
    }
}
