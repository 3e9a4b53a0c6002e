//! A pending activity: its attempts started, failed and retried per its
//! policy, completed, or skipped ahead by "retry now"; and the record of
//! attempts kept for drawing (never in history).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActivityTimeouts, Effect, PendingActivityState, RunState, TimerKey, Transition};
use crate::engine::history::{EventAttributes, Failure, Payload, RetryPolicy, TimeoutType};

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
    /// The ActivityTaskCancelRequested event, once workflow code asked to
    /// cancel it; the running attempt learns of it by heartbeat.
    pub cancel_requested_event_id: Option<u64>,
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

impl RunState {
    pub(super) fn enqueue_activity(&self, tr: &mut Transition, act: &ActivityState, now: u64) {
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
        let a = &mut self.activities[idx];
        let timed_out = failure.timeout_type().is_some();
        // A cancel request ends the retries (Temporal's RETRY_STATE_CANCEL_REQUESTED).
        let retry = match a.cancel_requested_event_id {
            Some(_) => Err(crate::engine::history::RetryState::CancelRequested),
            None => a
                .retry_policy
                .should_retry(a.attempt, &failure, now, a.expiration_ms),
        };
        match retry {
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

    /// The running attempt stopped because cancellation was requested
    /// (the activity learned of it by heartbeat): Started + Canceled with
    /// what it reported. Without a cancel request it is an ordinary failure.
    pub fn cancel_activity_attempt(
        &mut self,
        tr: &mut Transition,
        now: u64,
        idx: usize,
        details: Option<Payload>,
        identity: &str,
    ) {
        let Some(requested) = self.activities[idx].cancel_requested_event_id else {
            let failure = Failure::application(
                "CanceledError",
                "the activity reported a cancellation nobody requested",
                false,
            );
            return self.fail_activity_attempt(tr, now, idx, failure, Some(identity));
        };
        self.activities[idx].record_end(now, AttemptOutcome::Canceled, None);
        let a = self.activities.remove(idx);
        let canceled = EventAttributes::ActivityTaskCanceled {
            details,
            latest_cancel_requested_event_id: requested,
            scheduled_event_id: a.scheduled_event_id,
            started_event_id: 0,
            identity: identity.to_string(),
        };
        let events = a.started_then(now, identity, canceled);
        self.add_external_events(tr, now, events);
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
}
