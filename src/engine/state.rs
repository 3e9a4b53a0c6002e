//! A run's mutable state and its pure transitions.
//!
//! Every transition is `(state, input, now) -> (events, effects)`: it mutates
//! a copy of [`RunState`], appends events to a [`Transition`] and lists the
//! effects to run once the commit is durable. No IO happens here, so the
//! transitions are unit-tested directly. One file per lifecycle step:
//!
//! - [`status`]: Temporal's statuses;
//! - [`start`]: a new run's first events;
//! - [`workflow_task`]: scheduling, taking, failing and timing out a task;
//! - [`commands`]: what completing a workflow task does with each command;
//! - [`activity`]: attempts started, failed and retried, completed;
//! - [`lifecycle`]: timers, signals, cancel, terminate, time-out;
//! - [`describe`]: what `describe` shows of a run.

mod activity;
mod commands;
pub(crate) mod describe;
mod lifecycle;
pub(crate) mod start;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transitions;
mod workflow_task;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{EventAttributes, EventType, HistoryEvent, Payload};

pub use activity::{ActivityState, AttemptOutcome, AttemptRecord, MAX_ATTEMPT_RECORDS};
pub use commands::{ActivityCancellationType, ActivityOptions, ActivityTimeouts, Command};
pub use status::{PendingActivityState, WorkflowExecutionStatus};
pub use workflow_task::WorkflowTaskState;

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
    /// The sticky queue of the worker that completed the last workflow task
    /// and keeps the run cached: the next task goes there, with only the
    /// events from `sticky_next_event_id` on (Temporal's sticky execution).
    pub sticky_queue: Option<String>,
    pub sticky_next_event_id: u64,
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
    /// A task on a worker's sticky queue not taken in time.
    StickyScheduleToStart {
        seq: u64,
        scheduled: u64,
    },
    UserTimer {
        seq: u64,
        started: u64,
    },
    WorkflowExpiration {
        seq: u64,
    },
}

/// A workflow task meant for a worker's sticky queue. If the worker is
/// gone (stopped cleanly, or silent for [`STICKY_POLLER_WINDOW`]) it goes to
/// the normal queue at once; otherwise it waits there for at most
/// [`STICKY_SCHEDULE_TO_START`], then times out and moves to the normal queue.
#[derive(Clone, Debug, PartialEq)]
pub struct StickyDispatch {
    pub queue: String,
    pub scheduled_event_id: u64,
    pub scheduled_ms: u64,
}

/// How long a task waits on a sticky queue (the SDKs' default).
pub const STICKY_SCHEDULE_TO_START: Duration = Duration::from_secs(10);
/// A sticky queue nobody polled for this long is taken as gone (Temporal's
/// `StickyPollerUnavailableWindow`).
pub const STICKY_POLLER_WINDOW: Duration = Duration::from_secs(10);

/// What to do once a transition is durable.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    EnqueueWorkflowTask {
        seq: u64,
        /// The run's (normal) task queue.
        queue: String,
        /// Where the task goes if that worker still polls.
        sticky: Option<StickyDispatch>,
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
            sticky_queue: None,
            sticky_next_event_id: 0,
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
        // An activity's close event directly follows its Started event, if
        // an attempt started (one canceled between attempts has none).
        if let Some(prev) = tr.events.last()
            && prev.event_type() == EventType::ActivityTaskStarted
            && prev.attributes.activity_scheduled_event_id()
                == attributes.activity_scheduled_event_id()
        {
            set_started_event_id(&mut attributes, prev.event_id);
        }
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

    /// A command closes the run: what this same task's commands buffered
    /// (an activity canceled at once) is never written, as on Temporal,
    /// where the close follows the ActivityTaskCancelRequested directly.
    /// (Events from outside were refused before: the task fails instead.)
    fn drop_own_buffered(&mut self) {
        self.buffered.clear();
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
        } => *started_event_id = id,
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
