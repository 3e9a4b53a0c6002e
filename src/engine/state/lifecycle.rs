//! Events from outside a workflow task: a timer falls due, a signal, a
//! cancel request, the execution timeout, a terminate.

use super::{RunState, Transition, WorkflowExecutionStatus};
use crate::engine::history::{EventAttributes, Payload, RetryState};

impl RunState {
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
        // Temporal's describe of a terminated run still lists what was
        // pending (state, attempt, last failure), with nothing scheduled
        // next: nothing will run again.
        let pending = std::mem::take(&mut self.activities);
        self.close(tr, now, WorkflowExecutionStatus::Terminated, id);
        self.activities = pending
            .into_iter()
            .map(|mut a| {
                a.next_attempt_schedule_time_ms = None;
                a.current_retry_interval = None;
                a
            })
            .collect();
    }
}
