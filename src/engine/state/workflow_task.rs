//! The workflow task: scheduled, taken by a worker, completed (see
//! [`super::commands`]), failed or timed out, and retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Effect, RunState, StickyDispatch, TimerKey, Transition};
use crate::engine::history::{EventAttributes, Failure, TimeoutType, WorkflowTaskFailedCause};

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
    /// Why the previous attempt failed (later attempts write no event, so
    /// this is where a person sees why the run does not move).
    pub last_failure: Option<(WorkflowTaskFailedCause, Failure)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskStarted {
    pub identity: String,
    pub started_time_ms: u64,
    /// Fences completions: only the holder of this request id may complete the task.
    pub request_id: u64,
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
    pub(super) fn workflow_task_started(&self) -> bool {
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
                sticky_queue: self.sticky_queue.clone(),
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
            last_failure: None,
        });
        tr.effects.push(Effect::EnqueueWorkflowTask {
            seq: self.seq,
            queue: self.task_queue.clone(),
            sticky: self.sticky_queue.clone().map(|queue| StickyDispatch {
                queue,
                scheduled_event_id: id,
                scheduled_ms: now,
            }),
        });
    }

    /// The task waited on the sticky queue of a worker that did not take it
    /// (killed): WorkflowTaskTimedOut (SCHEDULE_TO_START), and a new task on
    /// the normal queue, with the whole history.
    pub fn time_out_sticky_task(&mut self, tr: &mut Transition, now: u64, scheduled: u64) {
        let waiting = self
            .workflow_task
            .as_ref()
            .is_some_and(|w| w.scheduled_event_id == Some(scheduled) && w.started.is_none());
        if !waiting {
            tracing::debug!(workflow_id = %self.workflow_id, scheduled, "sticky timeout: the task was taken");
            return;
        }
        self.append(
            tr,
            now,
            EventAttributes::WorkflowTaskTimedOut {
                scheduled_event_id: scheduled,
                started_event_id: 0,
                timeout_type: TimeoutType::ScheduleToStart,
            },
        );
        self.workflow_task = None;
        self.sticky_queue = None;
        self.schedule_workflow_task(tr, now);
    }

    /// Forgets the sticky queue: the next task goes to the normal queue
    /// with the whole history (after a failed or timed-out task).
    pub(super) fn clear_sticky(&mut self) {
        self.sticky_queue = None;
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
    pub(super) fn write_task_started(&mut self, tr: &mut Transition) -> Option<(u64, u64)> {
        let w = self.workflow_task.clone()?;
        let st = w.started.clone()?;
        let scheduled = match w.scheduled_event_id {
            Some(id) => id,
            None => self.append(
                tr,
                w.scheduled_time_ms,
                EventAttributes::WorkflowTaskScheduled {
                    task_queue: self.task_queue.clone(),
                    sticky_queue: None,
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
        self.clear_sticky();
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
                    failure: failure.clone(),
                    identity: identity.to_string(),
                },
            );
        }
        self.retry_workflow_task(tr, now, w);
        if let Some(next) = self.workflow_task.as_mut() {
            next.last_failure = Some((cause, failure));
        }
    }

    /// The running workflow task's start-to-close timeout expired.
    pub fn time_out_workflow_task(&mut self, tr: &mut Transition, now: u64) {
        let Some(w) = self.workflow_task.clone() else {
            return;
        };
        self.clear_sticky();
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
            last_failure: None,
        });
        tr.effects.push(Effect::EnqueueWorkflowTask {
            seq: self.seq,
            queue: self.task_queue.clone(),
            sticky: None,
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
            last_failure: None,
        });
        if delay.is_zero() {
            tr.effects.push(Effect::EnqueueWorkflowTask {
                seq: self.seq,
                queue: self.task_queue.clone(),
                sticky: None,
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
}
