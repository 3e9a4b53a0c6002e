//! The worker-facing side of the engine: poll task queues, complete or fail
//! workflow tasks and activity attempts. Completions are fenced: only the
//! current holder of a task (request id, or activity attempt) may close it,
//! so a late result from an expired attempt is rejected.

use std::time::Duration;

use super::error::EngineError;
use super::history::Failure;
use super::history::{HistoryEvent, Payload, WorkflowTaskFailedCause};
use super::runtime::Engine;
pub use super::runtime::QueryTask;
use super::state::{Command, PendingActivityState, Transition};
use super::task_queues::{PollGuard, TaskQueueKind};

/// Names one dispatched workflow task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowTaskToken {
    pub(crate) seq: u64,
    pub(crate) request_id: u64,
}

impl WorkflowTaskToken {
    /// A token that names no task (for replays that answer queries).
    pub(crate) fn detached() -> Self {
        WorkflowTaskToken {
            seq: 0,
            request_id: 0,
        }
    }
}

/// A workflow task handed to a worker: the run and its history, whole, or
/// from `first_event_id` on when it came from the worker's sticky queue.
#[derive(Clone, Debug)]
pub struct WorkflowTask {
    pub token: WorkflowTaskToken,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub attempt: u32,
    /// The history so far from `first_event_id` on; a worker with cached
    /// state skips what it has seen.
    pub history: Vec<HistoryEvent>,
    /// 1 for the whole history. Later on a task from the worker's sticky
    /// queue: the events before it are the ones its cached run has seen
    /// (on a cache miss it reads the rest with [`Engine::history`]).
    pub first_event_id: u64,
    /// The workflow time of this task (when it started).
    pub started_time_ms: u64,
}

/// Names one activity attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityTaskToken {
    pub(crate) seq: u64,
    pub(crate) scheduled_event_id: u64,
    pub(crate) attempt: u32,
}

/// An activity attempt handed to a worker.
#[derive(Clone, Debug)]
pub struct ActivityTask {
    pub token: ActivityTaskToken,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub activity_id: String,
    pub activity_type: String,
    pub input: Payload,
    pub attempt: u32,
    pub scheduled_time_ms: u64,
    pub started_time_ms: u64,
    pub start_to_close_timeout: Duration,
    pub heartbeat_timeout: Duration,
    /// Details the previous attempt reported by heartbeat, if any.
    pub heartbeat_details: Option<Payload>,
}

/// Counts a worker as ready to answer queries on a queue while it lives.
pub struct QueryPollerGuard {
    engine: Engine,
    queue: String,
}

impl Drop for QueryPollerGuard {
    fn drop(&mut self) {
        let mut core = self.engine.lock();
        if let Some(n) = core.query_pollers.get_mut(&self.queue) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Engine {
    /// Registers a query poller on `queue` until the guard is dropped.
    pub fn register_query_poller(&self, queue: &str) -> QueryPollerGuard {
        *self
            .lock()
            .query_pollers
            .entry(queue.to_string())
            .or_default() += 1;
        QueryPollerGuard {
            engine: self.clone(),
            queue: queue.to_string(),
        }
    }

    /// Waits for a query on `queue`.
    pub async fn poll_query_task(&self, queue: &str) -> Result<QueryTask, EngineError> {
        self.poll_queue(
            |core| {
                vec![
                    core.query_queues
                        .entry(queue.to_string())
                        .or_default()
                        .notify
                        .clone(),
                ]
            },
            || {
                Ok(self
                    .lock()
                    .query_queues
                    .get_mut(queue)
                    .and_then(|q| q.items.pop_front()))
            },
        )
        .await
    }

    /// Waits for a workflow task on `queue` and takes it.
    pub async fn poll_workflow_task(
        &self,
        queue: &str,
        identity: &str,
    ) -> Result<WorkflowTask, EngineError> {
        self.poll_workflow_task_sticky(queue, None, identity).await
    }

    /// Waits for a workflow task on the worker's `sticky` queue (tasks of
    /// runs it has cached, with only the events it has not seen) or on
    /// `queue`, and takes it; the sticky queue first.
    pub async fn poll_workflow_task_sticky(
        &self,
        queue: &str,
        sticky: Option<&str>,
        identity: &str,
    ) -> Result<WorkflowTask, EngineError> {
        let _polling = PollGuard::new(self, queue, identity, TaskQueueKind::Workflow);
        let _sticky = sticky.map(|s| PollGuard::new(self, s, identity, TaskQueueKind::Workflow));
        let queues: Vec<&str> = sticky.into_iter().chain([queue]).collect();
        let (ticket, task) = self
            .poll_queue(
                |core| {
                    queues
                        .iter()
                        .map(|q| {
                            core.workflow_queues
                                .entry(q.to_string())
                                .or_default()
                                .notify
                                .clone()
                        })
                        .collect()
                },
                || self.try_take_workflow_task(&queues, identity),
            )
            .await?;
        self.with_history(ticket, task).await
    }

    /// Waits on queues' notifiers until `take` finds a task. The notifiers
    /// are armed before looking, so a task pushed in between is never missed.
    async fn poll_queue<T>(
        &self,
        notify_of: impl Fn(&mut super::runtime::Core) -> Vec<std::sync::Arc<tokio::sync::Notify>>,
        take: impl Fn() -> Result<Option<T>, EngineError>,
    ) -> Result<T, EngineError> {
        loop {
            let notifies = notify_of(&mut self.lock());
            let mut waits: Vec<_> = notifies.iter().map(|n| Box::pin(n.notified())).collect();
            for w in &mut waits {
                w.as_mut().enable();
            }
            if let Some(task) = take()? {
                return Ok(task);
            }
            futures::future::select_all(waits).await;
        }
    }

    /// A worker stopped cleanly (Temporal's ShutdownWorker): its sticky
    /// queue takes nothing more, and what waits there goes to the normal
    /// queues at once, with no timeout.
    pub fn release_sticky_queue(&self, sticky: &str) {
        let wake = self.inner.timer_wake.clone();
        let mut core = self.lock();
        core.released_sticky.insert(sticky.to_string());
        let waiting: Vec<u64> = core
            .workflow_queues
            .get_mut(sticky)
            .map(|q| q.items.drain(..).collect())
            .unwrap_or_default();
        for seq in waiting {
            let Some(queue) = core.runs.get(&seq).map(|r| r.task_queue.clone()) else {
                continue;
            };
            super::runtime::apply_effect(
                &mut core,
                super::state::Effect::EnqueueWorkflowTask {
                    seq,
                    queue,
                    sticky: None,
                },
                &wake,
            );
        }
    }

    fn try_take_workflow_task(
        &self,
        queues: &[&str],
        identity: &str,
    ) -> Result<Option<(u64, WorkflowTask)>, EngineError> {
        let now = self.now_ms();
        let taken = {
            let mut core = self.lock();
            let mut taken = None;
            while let Some((queue, seq)) = queues.iter().find_map(|q| {
                core.workflow_queues
                    .get_mut(*q)
                    .and_then(|tq| tq.items.pop_front())
                    .map(|seq| (*q, seq))
            }) {
                let request_id = self.next_request_id();
                let Some(run) = core.runs.get(&seq) else {
                    continue;
                };
                let ready = run
                    .workflow_task
                    .as_ref()
                    .is_some_and(|w| w.started.is_none() && w.not_before_ms <= now);
                if !ready {
                    continue;
                }
                let mut run = run.clone();
                let Some(timer) = run.start_workflow_task(identity, now, request_id) else {
                    continue;
                };
                let attempt = run.workflow_task.as_ref().map_or(1, |w| w.attempt);
                // From its sticky queue the worker gets only what it has not seen.
                let first_event_id = if run.sticky_queue.as_deref() == Some(queue) {
                    run.sticky_next_event_id.max(1)
                } else {
                    1
                };
                let info = (
                    seq,
                    request_id,
                    run.workflow_id.clone(),
                    run.run_id.clone(),
                    run.workflow_type.clone(),
                    attempt,
                    first_event_id,
                );
                // The task's history is everything committed before its start.
                let ticket = core.run_tickets.get(&seq).copied().unwrap_or(0);
                let staged = self.stage_transient(&mut core, run, vec![timer], now)?;
                self.settle_lazily(&mut core, staged);
                taken = Some((info, ticket));
                break;
            }
            taken
        };
        let Some((
            (seq, request_id, workflow_id, run_id, workflow_type, attempt, first_event_id),
            ticket,
        )) = taken
        else {
            return Ok(None);
        };
        Ok(Some((
            ticket,
            WorkflowTask {
                token: WorkflowTaskToken { seq, request_id },
                workflow_id,
                run_id,
                workflow_type,
                attempt,
                history: Vec::new(),
                first_event_id,
                started_time_ms: now,
            },
        )))
    }

    /// Fills in a taken task's history once every event before its start is
    /// durable (commits are applied to sled in groups, at flush time).
    async fn with_history(
        &self,
        ticket: u64,
        mut task: WorkflowTask,
    ) -> Result<WorkflowTask, EngineError> {
        self.inner.store.settled(ticket).await?;
        task.history = self
            .inner
            .store
            .history_from(task.token.seq, task.first_event_id)?;
        Ok(task)
    }

    fn check_workflow_task(
        run: &super::state::RunState,
        token: &WorkflowTaskToken,
    ) -> Result<(), EngineError> {
        let holds = run
            .workflow_task
            .as_ref()
            .and_then(|w| w.started.as_ref())
            .is_some_and(|s| s.request_id == token.request_id);
        if holds {
            Ok(())
        } else {
            Err(EngineError::TaskNotFound(format!(
                "workflow task of {} is no longer held by this worker",
                run.workflow_id
            )))
        }
    }

    /// Completes a workflow task with the commands the workflow code issued.
    pub async fn complete_workflow_task(
        &self,
        token: &WorkflowTaskToken,
        identity: &str,
        commands: Vec<Command>,
    ) -> Result<(), EngineError> {
        self.complete_workflow_task_sticky(token, identity, commands, None)
            .await
    }

    /// Completes a workflow task; `sticky` names the queue of the worker
    /// that keeps the run cached, where the next task goes (Temporal's
    /// sticky attributes), or `None` to send it to the normal queue.
    pub async fn complete_workflow_task_sticky(
        &self,
        token: &WorkflowTaskToken,
        identity: &str,
        commands: Vec<Command>,
        sticky: Option<&str>,
    ) -> Result<(), EngineError> {
        let refused = self
            .transact(token.seq, |run, tr, now| {
                Self::check_workflow_task(run, token)?;
                run.sticky_queue = sticky.map(str::to_string);
                Ok((
                    run.workflow_id.clone(),
                    run.complete_workflow_task(tr, now, identity, commands)
                        .err(),
                ))
            })
            .await?;
        match refused {
            // The failure is recorded; the worker must not keep the state it
            // built from commands the engine did not take.
            (workflow_id, Some(r)) => Err(EngineError::CommandsRefused {
                workflow_id,
                cause: r.cause,
                message: r.failure.message,
            }),
            (_, None) => Ok(()),
        }
    }

    /// Fails a workflow task (panic, nondeterminism). The run stays Running.
    pub async fn fail_workflow_task(
        &self,
        token: &WorkflowTaskToken,
        identity: &str,
        cause: WorkflowTaskFailedCause,
        failure: Failure,
    ) -> Result<(), EngineError> {
        self.transact(token.seq, |run, tr, now| {
            Self::check_workflow_task(run, token)?;
            run.fail_workflow_task(tr, now, identity, cause, failure);
            Ok(())
        })
        .await
    }

    /// Waits for an activity task on `queue` and takes it.
    pub async fn poll_activity_task(
        &self,
        queue: &str,
        identity: &str,
    ) -> Result<ActivityTask, EngineError> {
        let _polling = PollGuard::new(self, queue, identity, TaskQueueKind::Activity);
        self.poll_queue(
            |core| {
                vec![
                    core.activity_queues
                        .entry(queue.to_string())
                        .or_default()
                        .notify
                        .clone(),
                ]
            },
            || self.try_take_activity_task(queue, identity),
        )
        .await
    }

    fn try_take_activity_task(
        &self,
        queue: &str,
        identity: &str,
    ) -> Result<Option<ActivityTask>, EngineError> {
        let now = self.now_ms();
        let mut core = self.lock();
        while let Some((seq, scheduled, attempt)) = core
            .activity_queues
            .get_mut(queue)
            .and_then(|q| q.items.pop_front())
        {
            let Some(run) = core.runs.get(&seq) else {
                continue;
            };
            let Some(idx) = run.activity_index(scheduled) else {
                continue;
            };
            let a = &run.activities[idx];
            if a.attempt != attempt || a.state != PendingActivityState::Scheduled {
                continue;
            }
            let mut run = run.clone();
            let timers = run.start_activity(idx, identity, now);
            let a = &run.activities[idx];
            let task = ActivityTask {
                token: ActivityTaskToken {
                    seq,
                    scheduled_event_id: scheduled,
                    attempt,
                },
                workflow_id: run.workflow_id.clone(),
                run_id: run.run_id.clone(),
                workflow_type: run.workflow_type.clone(),
                activity_id: a.activity_id.clone(),
                activity_type: a.activity_type.clone(),
                input: a.input.clone(),
                attempt,
                scheduled_time_ms: a.scheduled_time_ms,
                started_time_ms: now,
                start_to_close_timeout: a.timeouts.start_to_close,
                heartbeat_timeout: a.timeouts.heartbeat,
                heartbeat_details: a.heartbeat_details.clone(),
            };
            let tr = Transition {
                effects: timers,
                ..Transition::default()
            };
            // The start (attempt, worker, time) is committed for describe,
            // the feed and recovery; dispatch need not wait for the flush:
            // if a crash takes it back, the attempt simply runs again.
            let staged = self.stage(&mut core, vec![(run, tr)], now)?;
            self.settle_lazily(&mut core, staged);
            return Ok(Some(task));
        }
        Ok(None)
    }

    fn activity_attempt_index(
        run: &super::state::RunState,
        token: &ActivityTaskToken,
    ) -> Result<usize, EngineError> {
        let idx = run.activity_index(token.scheduled_event_id);
        match idx {
            Some(i)
                if run.activities[i].attempt == token.attempt
                    && run.activities[i].state == PendingActivityState::Started =>
            {
                Ok(i)
            }
            _ => Err(EngineError::TaskNotFound(format!(
                "activity attempt {} of workflow {} is no longer current (timed out, retried or closed); its result is rejected",
                token.attempt, run.workflow_id
            ))),
        }
    }

    /// Records a heartbeat of the running attempt: its details survive into
    /// the next attempt, and it pushes the heartbeat deadline back. Returns
    /// at once (an activity heartbeats from synchronous code).
    pub fn record_activity_heartbeat(
        &self,
        token: &ActivityTaskToken,
        details: Payload,
    ) -> Result<(), EngineError> {
        let cancel = {
            let now = self.now_ms();
            let mut core = self.lock();
            let run = core.runs.get(&token.seq).ok_or_else(|| {
                EngineError::TaskNotFound("the activity's workflow is no longer running".into())
            })?;
            let idx = Self::activity_attempt_index(run, token)?;
            let mut run = run.clone();
            let a = &mut run.activities[idx];
            a.heartbeat_details = Some(details);
            a.last_heartbeat_time_ms = Some(now);
            let cancel = a.cancel_requested_event_id.is_some();
            let staged = self.stage(&mut core, vec![(run, Transition::default())], now)?;
            self.settle_lazily(&mut core, staged);
            cancel
        };
        if cancel {
            return Err(EngineError::ActivityCancelRequested);
        }
        Ok(())
    }

    /// Records an activity attempt's result.
    pub async fn complete_activity_task(
        &self,
        token: &ActivityTaskToken,
        identity: &str,
        result: Payload,
    ) -> Result<(), EngineError> {
        let limit = crate::engine::limits::BLOB_SIZE_LIMIT;
        if result.len() > limit {
            // Never written: the attempt fails, for good, with a clear reason.
            let failure = Failure::application(
                "BlobSizeExceedsLimit",
                format!(
                    "activity result is {} bytes, over the {limit}-byte payload limit",
                    result.len()
                ),
                true,
            );
            return self.fail_activity_task(token, identity, failure).await;
        }
        self.transact(token.seq, |run, tr, now| {
            let idx = Self::activity_attempt_index(run, token)?;
            run.complete_activity(tr, now, idx, identity, result);
            Ok(())
        })
        .await
    }

    /// Records that an activity attempt stopped on a cancel request it
    /// learned of by heartbeat (Temporal's RespondActivityTaskCanceled).
    pub async fn cancel_activity_task(
        &self,
        token: &ActivityTaskToken,
        identity: &str,
        details: Option<Payload>,
    ) -> Result<(), EngineError> {
        self.transact(token.seq, |run, tr, now| {
            let idx = Self::activity_attempt_index(run, token)?;
            run.cancel_activity_attempt(tr, now, idx, details, identity);
            Ok(())
        })
        .await
    }

    /// Records an activity attempt's failure; the retry policy decides what follows.
    pub async fn fail_activity_task(
        &self,
        token: &ActivityTaskToken,
        identity: &str,
        failure: Failure,
    ) -> Result<(), EngineError> {
        self.transact(token.seq, |run, tr, now| {
            let idx = Self::activity_attempt_index(run, token)?;
            run.fail_activity_attempt(tr, now, idx, failure, Some(identity));
            Ok(())
        })
        .await
    }
}
