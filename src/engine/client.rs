//! The client API (start, result, terminate) and the read model (list,
//! describe, history). Reads return only what is durable: each waits for the
//! flush that covers the newest commit before answering.

use std::time::Duration;

use tokio::sync::oneshot;

use super::error::EngineError;
use super::history::Failure;
use super::history::{EventAttributes, Payload};
use super::runtime::Engine;
use super::state::start::{NewRun, build_run, make_run_id};
use super::state::{RunState, Transition, WorkflowExecutionStatus};

use super::limits::{BLOB_SIZE_LIMIT, MAX_ID_LENGTH};

/// What a start does when the id's last run is closed (Temporal's reuse policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkflowIdReusePolicy {
    #[default]
    AllowDuplicate,
    AllowDuplicateFailedOnly,
    RejectDuplicate,
}

/// What a start does when the id has a running run (Temporal's conflict policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkflowIdConflictPolicy {
    #[default]
    Fail,
    UseExisting,
    TerminateExisting,
}

/// What a start needs.
#[derive(Clone, Debug)]
pub struct StartWorkflowOptions {
    pub workflow_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub input: Payload,
    pub identity: String,
    pub workflow_task_timeout: Duration,
    pub id_reuse_policy: WorkflowIdReusePolicy,
    pub id_conflict_policy: WorkflowIdConflictPolicy,
    /// Covers the whole execution; `None` for no limit.
    pub execution_timeout: Option<Duration>,
    /// Covers one run; defaults to the execution timeout.
    pub run_timeout: Option<Duration>,
}

impl StartWorkflowOptions {
    pub fn new(
        workflow_id: impl Into<String>,
        workflow_type: impl Into<String>,
        task_queue: impl Into<String>,
        input: Payload,
    ) -> Self {
        StartWorkflowOptions {
            workflow_id: workflow_id.into(),
            workflow_type: workflow_type.into(),
            task_queue: task_queue.into(),
            input,
            identity: "holdfast-client".into(),
            workflow_task_timeout: Duration::from_secs(10),
            id_reuse_policy: WorkflowIdReusePolicy::default(),
            id_conflict_policy: WorkflowIdConflictPolicy::default(),
            execution_timeout: None,
            run_timeout: None,
        }
    }
}

/// Names one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunHandle {
    pub workflow_id: String,
    pub run_id: String,
}

/// How a run closed, as a client sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkflowOutcome {
    Completed(Payload),
    Failed(Failure),
    Canceled,
    TimedOut,
    Terminated { reason: String },
}

fn check_payload(what: &str, p: &Payload) -> Result<(), EngineError> {
    if p.len() > BLOB_SIZE_LIMIT {
        return Err(EngineError::InvalidArgument(format!(
            "{what} is {} bytes, over the {BLOB_SIZE_LIMIT}-byte payload limit",
            p.len()
        )));
    }
    serde_json::from_str::<serde_json::Value>(p.as_json())
        .map(|_| ())
        .map_err(|e| EngineError::InvalidArgument(format!("{what} is not JSON: {e}")))
}

fn check_id(what: &str, value: &str) -> Result<(), EngineError> {
    if value.trim().is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "{what} must not be empty"
        )));
    }
    if value.len() > MAX_ID_LENGTH {
        return Err(EngineError::InvalidArgument(format!(
            "{what} is {} bytes, longer than the {MAX_ID_LENGTH}-byte limit",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::InvalidArgument(format!(
            "{what} {value:?} contains control characters"
        )));
    }
    Ok(())
}

impl Engine {
    /// Starts a workflow. WorkflowExecutionStarted and the first
    /// WorkflowTaskScheduled are durable before this returns.
    pub async fn start_workflow(
        &self,
        opts: StartWorkflowOptions,
    ) -> Result<RunHandle, EngineError> {
        check_id("workflow id", &opts.workflow_id)?;
        check_id("workflow type", &opts.workflow_type)?;
        check_id("task queue", &opts.task_queue)?;
        if opts.input.len() > BLOB_SIZE_LIMIT {
            return Err(EngineError::InvalidArgument(format!(
                "input of workflow {:?} is {} bytes, over the {BLOB_SIZE_LIMIT}-byte payload limit",
                opts.workflow_id,
                opts.input.len()
            )));
        }
        serde_json::from_str::<serde_json::Value>(opts.input.as_json()).map_err(|e| {
            EngineError::InvalidInput {
                workflow_type: opts.workflow_type.clone(),
                detail: format!("not JSON: {e}"),
            }
        })?;
        {
            let catalog = self
                .inner
                .catalog
                .read()
                .map_err(|_| EngineError::Shutdown)?;
            if !catalog.is_empty() {
                match catalog.get(&opts.workflow_type) {
                    None => {
                        return Err(EngineError::UnknownWorkflowType {
                            name: opts.workflow_type.clone(),
                            known: catalog.keys().cloned().collect(),
                        });
                    }
                    Some(validate) => {
                        validate(&opts.input).map_err(|detail| EngineError::InvalidInput {
                            workflow_type: opts.workflow_type.clone(),
                            detail,
                        })?
                    }
                }
            }
        }
        // Conflict policy: a running run with this id.
        let running = {
            let core = self.lock();
            core.running_ids
                .get(&opts.workflow_id)
                .and_then(|seq| core.runs.get(seq))
                .map(|r| r.run_id.clone())
        };
        if let Some(run_id) = running {
            match opts.id_conflict_policy {
                WorkflowIdConflictPolicy::Fail => {
                    return Err(EngineError::AlreadyStarted {
                        workflow_id: opts.workflow_id.clone(),
                        run_id,
                    });
                }
                WorkflowIdConflictPolicy::UseExisting => {
                    return Ok(RunHandle {
                        workflow_id: opts.workflow_id.clone(),
                        run_id,
                    });
                }
                WorkflowIdConflictPolicy::TerminateExisting => {
                    self.terminate(
                        &opts.workflow_id,
                        Some(&run_id),
                        "terminated by a new start (WorkflowIdConflictPolicy TerminateExisting)",
                        &opts.identity,
                    )
                    .await?;
                }
            }
        }
        // Reuse policy: the id's last run is closed.
        if opts.id_reuse_policy != WorkflowIdReusePolicy::AllowDuplicate
            && let Some(prev) = self.inner.store.run_seq_of(&opts.workflow_id)?
        {
            let last = self.durable_run(prev).await?;
            let refuse = match opts.id_reuse_policy {
                WorkflowIdReusePolicy::RejectDuplicate if !last.is_running() => Some(format!(
                    "Workflow execution already finished. WorkflowId: {}, RunId: {}. Workflow Id reuse policy: reject duplicate workflow Id.",
                    opts.workflow_id, last.run_id
                )),
                WorkflowIdReusePolicy::AllowDuplicateFailedOnly
                    if last.status == WorkflowExecutionStatus::Completed =>
                {
                    Some(format!(
                        "Workflow execution already finished successfully. WorkflowId: {}, RunId: {}. Workflow Id reuse policy: allow duplicate workflow Id if last run failed.",
                        opts.workflow_id, last.run_id
                    ))
                }
                _ => None,
            };
            if let Some(message) = refuse {
                return Err(EngineError::AlreadyFinished(message));
            }
        }
        let seq = self.inner.store.next_run_seq();
        let (handle, staged) = {
            let mut core = self.lock();
            if let Some(run) = core
                .running_ids
                .get(&opts.workflow_id)
                .and_then(|seq| core.runs.get(seq))
            {
                return Err(EngineError::AlreadyStarted {
                    workflow_id: opts.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                });
            }
            let now = self.now_ms();
            let (run, tr) = build_run(
                seq,
                now,
                NewRun {
                    workflow_id: opts.workflow_id.clone(),
                    workflow_type: opts.workflow_type.clone(),
                    task_queue: opts.task_queue.clone(),
                    input: opts.input.clone(),
                    identity: opts.identity.clone(),
                    task_timeout: opts.workflow_task_timeout,
                    execution_timeout: opts.execution_timeout,
                    run_timeout: opts.run_timeout,
                    continued_execution_run_id: None,
                    first_execution_run_id: None,
                    first_workflow_task_backoff: Duration::ZERO,
                },
            );
            let handle = RunHandle {
                workflow_id: opts.workflow_id,
                run_id: run.run_id.clone(),
            };
            (handle, self.stage(&mut core, vec![(run, tr)], now)?)
        };
        self.finish(staged).await?;
        Ok(handle)
    }

    /// Waits until the run closes and returns how it closed.
    pub async fn result(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowOutcome, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        let wait = {
            let mut core = self.lock();
            if core.runs.contains_key(&seq) {
                let (tx, rx) = oneshot::channel();
                core.waiters.entry(seq).or_default().push(tx);
                Some(rx)
            } else {
                None
            }
        };
        if let Some(rx) = wait {
            rx.await.map_err(|_| EngineError::Shutdown)?;
        }
        let run = self.durable_run(seq).await?;
        let close_id = run.close_event_id.ok_or(EngineError::Shutdown)?;
        let events = self.inner.store.history_from(seq, close_id)?;
        match events.first().map(|e| &e.attributes) {
            Some(EventAttributes::WorkflowExecutionCompleted { result, .. }) => {
                Ok(WorkflowOutcome::Completed(result.clone()))
            }
            Some(EventAttributes::WorkflowExecutionFailed { failure, .. }) => {
                Ok(WorkflowOutcome::Failed(failure.clone()))
            }
            Some(EventAttributes::WorkflowExecutionContinuedAsNew {
                new_execution_run_id,
                ..
            }) => {
                // Like Temporal's clients, follow the chain to its last run.
                Box::pin(self.result(workflow_id, Some(new_execution_run_id))).await
            }
            Some(EventAttributes::WorkflowExecutionTimedOut { .. }) => {
                Ok(WorkflowOutcome::TimedOut)
            }
            Some(EventAttributes::WorkflowExecutionCanceled { .. }) => {
                Ok(WorkflowOutcome::Canceled)
            }
            Some(EventAttributes::WorkflowExecutionTerminated { reason, .. }) => {
                Ok(WorkflowOutcome::Terminated {
                    reason: reason.clone(),
                })
            }
            _ => Err(EngineError::Store(super::error::StoreError::CorruptValue {
                what: format!("close event of {workflow_id}"),
                detail: "missing".into(),
            })),
        }
    }

    /// Sends a signal: WorkflowExecutionSignaled is durable before this
    /// returns; workflow code receives it now or when a worker next runs.
    pub async fn signal(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        signal_name: &str,
        input: Payload,
        identity: &str,
    ) -> Result<(), EngineError> {
        check_id("signal name", signal_name)?;
        check_payload("signal input", &input)?;
        let seq = self.running_seq(workflow_id, run_id).await?;
        self.transact(seq, |run, tr, now| {
            run.signal(tr, now, signal_name, input, identity);
            Ok(())
        })
        .await
    }

    /// Asks a worker to answer a query from the run's state (replaying its
    /// history if it holds none). Nothing is written to history. Works on
    /// closed runs too; with no worker polling the run's queue, fails at once.
    pub async fn query(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        query_type: &str,
        args: Payload,
    ) -> Result<Payload, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        let run = self.durable_run(seq).await?;
        let history = self.inner.store.history(seq)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut core = self.lock();
            if core
                .query_pollers
                .get(&run.task_queue)
                .copied()
                .unwrap_or(0)
                == 0
            {
                return Err(EngineError::NoWorker {
                    task_queue: run.task_queue.clone(),
                });
            }
            let q = core.query_queues.entry(run.task_queue.clone()).or_default();
            q.items.push_back(super::worker_api::QueryTask {
                workflow_id: run.workflow_id.clone(),
                run_id: run.run_id.clone(),
                workflow_type: run.workflow_type.clone(),
                history,
                query_type: query_type.to_string(),
                args,
                reply: tx,
            });
            q.notify.notify_one();
        }
        match rx.await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(msg)) => Err(EngineError::QueryFailed(msg)),
            Err(_) => Err(EngineError::QueryFailed(
                "the worker stopped before answering".into(),
            )),
        }
    }

    /// Requests cancellation: WorkflowExecutionCancelRequested is recorded
    /// and the workflow code decides (pending timers are canceled and the run
    /// closes as Canceled unless the code handles it).
    pub async fn cancel(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        identity: &str,
    ) -> Result<(), EngineError> {
        let seq = self.running_seq(workflow_id, run_id).await?;
        self.transact(seq, |run, tr, now| {
            run.request_cancel(tr, now, identity);
            Ok(())
        })
        .await
    }

    /// Resets a run to a workflow task: a new run copies the history up to
    /// that task's WorkflowTaskStarted, records WorkflowTaskFailed (cause
    /// ResetWorkflow), re-applies the signals received after that point and
    /// runs from there with the current code; a running old run is
    /// terminated. `event_id` names a WorkflowTaskCompleted, Failed or
    /// TimedOut event. Returns the new run.
    pub async fn reset(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        event_id: u64,
        reason: &str,
    ) -> Result<RunHandle, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        self.inner.store.settled(self.inner.store.written()).await?;
        let history = self.inner.store.history(seq)?;
        let point = history
            .get((event_id as usize).wrapping_sub(1))
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "workflow {workflow_id:?} has no event {event_id} (history has {})",
                    history.len()
                ))
            })?;
        let (scheduled, started) = match &point.attributes {
            EventAttributes::WorkflowTaskCompleted {
                scheduled_event_id,
                started_event_id,
                ..
            }
            | EventAttributes::WorkflowTaskFailed {
                scheduled_event_id,
                started_event_id,
                ..
            }
            | EventAttributes::WorkflowTaskTimedOut {
                scheduled_event_id,
                started_event_id,
                ..
            } => (*scheduled_event_id, *started_event_id),
            other => {
                return Err(EngineError::InvalidArgument(format!(
                    "event {event_id} is {}; reset needs a WorkflowTaskCompleted, WorkflowTaskFailed or WorkflowTaskTimedOut event",
                    other.event_type()
                )));
            }
        };
        let prefix = &history[..started as usize];
        let mut open_work = std::collections::BTreeSet::new();
        for e in prefix {
            match &e.attributes {
                EventAttributes::ActivityTaskScheduled { .. }
                | EventAttributes::TimerStarted { .. } => {
                    open_work.insert(e.event_id);
                }
                EventAttributes::TimerFired {
                    started_event_id, ..
                }
                | EventAttributes::TimerCanceled {
                    started_event_id, ..
                } => {
                    open_work.remove(started_event_id);
                }
                a => {
                    if let Some(s) = a.activity_scheduled_event_id() {
                        open_work.remove(&s);
                    }
                }
            }
        }
        if let Some(first) = open_work.first() {
            return Err(EngineError::InvalidArgument(format!(
                "cannot reset to event {event_id}: event {first} (an activity or timer) was still pending there; reset to an earlier workflow task"
            )));
        }
        let (task_queue, task_timeout, workflow_type, first_execution_run_id) =
            match &history[0].attributes {
                EventAttributes::WorkflowExecutionStarted {
                    task_queue,
                    workflow_task_timeout,
                    workflow_type,
                    first_execution_run_id,
                    ..
                } => (
                    task_queue.clone(),
                    *workflow_task_timeout,
                    workflow_type.clone(),
                    first_execution_run_id.clone(),
                ),
                _ => {
                    return Err(EngineError::Store(super::error::StoreError::CorruptValue {
                        what: format!("history of {workflow_id}"),
                        detail: "does not begin with WorkflowExecutionStarted".into(),
                    }));
                }
            };
        let old_run_id = self.durable_run(seq).await?.run_id;
        let new_seq = self.inner.store.next_run_seq();
        let (handle, staged) = {
            let mut core = self.lock();
            let now = self.now_ms();
            let mut run = RunState::new(
                new_seq,
                workflow_id,
                &make_run_id(now, new_seq),
                &workflow_type,
                &task_queue,
                now,
                task_timeout,
            );
            run.first_execution_run_id = first_execution_run_id;
            let mut tr = Transition::default();
            for e in prefix {
                run.append(&mut tr, e.event_time_ms, e.attributes.clone());
            }
            run.append(
                &mut tr,
                now,
                EventAttributes::WorkflowTaskFailed {
                    scheduled_event_id: scheduled,
                    started_event_id: started,
                    cause: super::history::WorkflowTaskFailedCause::ResetWorkflow,
                    failure: Failure {
                        message: format!("root: {reason}"),
                        source: String::new(),
                        cause: None,
                        info: super::history::FailureInfo::Reset {
                            base_run_id: old_run_id.clone(),
                            new_run_id: run.run_id.clone(),
                        },
                    },
                    identity: "history-service".into(),
                },
            );
            for e in &history[started as usize..] {
                if let EventAttributes::WorkflowExecutionSignaled { .. } = &e.attributes {
                    run.append(&mut tr, now, e.attributes.clone());
                }
            }
            run.schedule_workflow_task(&mut tr, now);
            // The reset run, if it still runs, and the id's current run, if
            // another one runs (a newer run after a continue-as-new, or an
            // earlier reset), are terminated in the same commit, as Temporal
            // does: one running run per workflow id.
            let current = core.running_ids.get(workflow_id).copied();
            let mut to_end: Vec<u64> = current.into_iter().filter(|&c| c != seq).collect();
            to_end.push(seq);
            let mut updates = Vec::new();
            for ending in to_end {
                if let Some(mut old) = core.runs.get(&ending).cloned() {
                    let mut old_tr = Transition::default();
                    let why = format!("root: {reason}");
                    old.terminate(&mut old_tr, now, &why, "history-resetter");
                    updates.push((old, old_tr));
                }
            }
            let handle = RunHandle {
                workflow_id: workflow_id.to_string(),
                run_id: run.run_id.clone(),
            };
            updates.push((run, tr));
            (handle, self.stage(&mut core, updates, now)?)
        };
        self.finish(staged).await?;
        Ok(handle)
    }

    /// Skips the rest of an activity's backoff (see
    /// [`RunState::retry_activity_now`]); returns the activity's id.
    pub async fn retry_activity_now(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        activity_id: Option<&str>,
    ) -> Result<String, EngineError> {
        let seq = self.running_seq(workflow_id, run_id).await?;
        self.transact(seq, |run, tr, now| {
            run.retry_activity_now(tr, now, activity_id)
                .map_err(EngineError::InvalidArgument)
        })
        .await
    }

    /// Terminates a running run at once: WorkflowExecutionTerminated, and
    /// nothing written for its pending work.
    pub async fn terminate(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
        identity: &str,
    ) -> Result<(), EngineError> {
        let seq = self.running_seq(workflow_id, run_id).await?;
        self.transact(seq, |run, tr, now| {
            run.terminate(tr, now, reason, identity);
            Ok(())
        })
        .await
    }
}
