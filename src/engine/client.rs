//! The client API (start, result, terminate) and the read model (list,
//! describe, history). Reads return only what is durable: each waits for the
//! flush that covers the newest commit before answering.

use std::time::Duration;

use tokio::sync::oneshot;

use super::core::Engine;
use super::error::EngineError;
use super::failure::Failure;
use super::history::{EventAttributes, HistoryEvent, Payload};
use super::state::{PendingActivityState, RunState, Transition, WorkflowExecutionStatus};
use super::store::WriteBatch;

/// Temporal's blob size error limit: a payload larger than this is refused.
pub const BLOB_SIZE_LIMIT: usize = 2 * 1024 * 1024;
/// Temporal's limit on ids, names and identities.
pub const MAX_ID_LENGTH: usize = 1000;

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
    pub retry_policy: super::retry::RetryPolicy,
    pub start_to_close_timeout: Duration,
    pub schedule_to_close_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub heartbeat_details: Option<Payload>,
    pub last_heartbeat_time_ms: Option<u64>,
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
}

/// What `describe` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowDescription {
    pub info: WorkflowExecutionInfo,
    pub pending_activities: Vec<PendingActivityInfo>,
    pub pending_workflow_task: Option<PendingWorkflowTaskInfo>,
}

/// Which runs `list` returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub status: Option<WorkflowExecutionStatus>,
    pub workflow_type: Option<String>,
}

/// A page of `list`.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub executions: Vec<WorkflowExecutionInfo>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page_token: Option<u64>,
}

/// How a new run begins (a start, or a continue-as-new).
pub(crate) struct NewRun {
    pub workflow_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub input: Payload,
    pub identity: String,
    pub task_timeout: Duration,
    pub execution_timeout: Option<Duration>,
    pub run_timeout: Option<Duration>,
    pub continued_execution_run_id: Option<String>,
    pub first_execution_run_id: Option<String>,
    pub first_workflow_task_backoff: Duration,
}

/// A new run's state and first events (WorkflowExecutionStarted and the
/// first WorkflowTaskScheduled); nothing is written here.
pub(crate) fn build_run(seq: u64, now: u64, spec: NewRun) -> (RunState, Transition) {
    let execution_timeout = spec.execution_timeout.filter(|d| !d.is_zero());
    let run_timeout = spec
        .run_timeout
        .filter(|d| !d.is_zero())
        .or(execution_timeout)
        .map(|r| execution_timeout.map_or(r, |e| r.min(e)));
    // The task timeout is clamped to the run timeout, as Temporal does.
    let task_timeout = run_timeout.map_or(spec.task_timeout, |r| spec.task_timeout.min(r));
    let expiration_ms = run_timeout.map(|r| now + r.as_millis() as u64);
    let run_id = make_run_id(now, seq);
    let mut run = RunState::new(
        seq,
        &spec.workflow_id,
        &run_id,
        &spec.workflow_type,
        &spec.task_queue,
        now,
        task_timeout,
    );
    run.expiration_ms = expiration_ms;
    let mut tr = Transition::default();
    run.append(
        &mut tr,
        now,
        EventAttributes::WorkflowExecutionStarted {
            workflow_id: spec.workflow_id,
            workflow_type: spec.workflow_type,
            task_queue: spec.task_queue,
            input: spec.input,
            workflow_task_timeout: task_timeout,
            original_execution_run_id: run_id.clone(),
            first_execution_run_id: spec.first_execution_run_id.unwrap_or(run_id),
            identity: spec.identity,
            attempt: 1,
            workflow_execution_timeout: execution_timeout.unwrap_or_default(),
            workflow_run_timeout: run_timeout.unwrap_or_default(),
            workflow_execution_expiration_time_ms: expiration_ms,
            continued_execution_run_id: spec.continued_execution_run_id,
            first_workflow_task_backoff: spec.first_workflow_task_backoff,
        },
    );
    run.schedule_workflow_task(&mut tr, now);
    let backoff_ms = spec.first_workflow_task_backoff.as_millis() as u64;
    if backoff_ms > 0 {
        // The first task waits out the backoff instead of being dispatched now.
        tr.effects
            .retain(|e| !matches!(e, super::state::Effect::EnqueueWorkflowTask { .. }));
        if let Some(w) = run.workflow_task.as_mut() {
            w.not_before_ms = now + backoff_ms;
        }
        tr.effects.push(super::state::Effect::Timer {
            at_ms: now + backoff_ms,
            key: super::state::TimerKey::WorkflowTaskRetry { seq, attempt: 1 },
        });
    }
    if let Some(at_ms) = expiration_ms {
        tr.effects.push(super::state::Effect::Timer {
            at_ms,
            key: super::state::TimerKey::WorkflowExpiration { seq },
        });
    }
    (run, tr)
}

/// A run id shaped like Temporal's (a UUID), carrying the store's sequence number.
pub(crate) fn make_run_id(now_ms: u64, seq: u64) -> String {
    format!(
        "{:08x}-{:04x}-7000-{:04x}-{:012x}",
        (now_ms >> 16) as u32,
        (now_ms & 0xffff) as u16,
        (seq >> 48) as u16,
        seq & 0xffff_ffff_ffff
    )
}

fn parse_run_id(run_id: &str) -> Option<u64> {
    let parts: Vec<&str> = run_id.split('-').collect();
    if parts.len() != 5 {
        return None;
    }
    let hi = u64::from_str_radix(parts[3], 16).ok()?;
    let lo = u64::from_str_radix(parts[4], 16).ok()?;
    Some((hi << 48) | lo)
}

fn info_of(run: &RunState) -> WorkflowExecutionInfo {
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

fn history_run_id(
    core: &super::core::Core,
    store: &super::store::Store,
    seq: u64,
) -> Result<String, EngineError> {
    if let Some(r) = core.runs.get(&seq) {
        return Ok(r.run_id.clone());
    }
    Ok(store.run(seq)?.map(|r| r.run_id).unwrap_or_default())
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
        let store = self.inner.store.clone();
        let (handle, ticket, effects, change) = {
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
            let seq = store.next_run_seq()?;
            let (mut run, tr) = build_run(
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
            let run_id = run.run_id.clone();
            let mut batch = WriteBatch::default();
            self.batch_run(&mut batch, &mut run, &tr)?;
            batch.put_workflow_index(&opts.workflow_id, seq);
            let ticket = store.commit(batch)?;
            core.run_tickets.insert(seq, ticket);
            let change = super::feed::Change {
                workflow_id: run.workflow_id.clone(),
                run_id: run_id.clone(),
                status: run.status,
                new_events: tr.events.len() as u64,
            };
            core.running_ids.insert(opts.workflow_id.clone(), seq);
            core.runs.insert(seq, run);
            (
                RunHandle {
                    workflow_id: opts.workflow_id,
                    run_id,
                },
                ticket,
                tr.effects,
                change,
            )
        };
        self.finish(ticket, effects, Some(change)).await?;
        Ok(handle)
    }

    /// Finds a run: the given run id, or the workflow id's newest run.
    fn resolve(&self, workflow_id: &str, run_id: Option<&str>) -> Result<u64, EngineError> {
        let not_found = || EngineError::WorkflowNotFound {
            workflow_id: workflow_id.to_string(),
        };
        match run_id.filter(|r| !r.is_empty()) {
            Some(r) => {
                let run_not_found = || EngineError::RunNotFound {
                    workflow_id: workflow_id.to_string(),
                    run_id: r.to_string(),
                };
                let seq = parse_run_id(r).ok_or_else(run_not_found)?;
                match self.inner.store.run(seq)? {
                    Some(run) if run.workflow_id == workflow_id && run.run_id == r => Ok(seq),
                    _ => Err(run_not_found()),
                }
            }
            None => self
                .inner
                .store
                .run_seq_of(workflow_id)?
                .ok_or_else(not_found),
        }
    }

    /// The run to act on, which must be running (Temporal's "workflow
    /// execution already completed" otherwise).
    async fn running_seq(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<u64, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        if self.lock().runs.contains_key(&seq) {
            return Ok(seq);
        }
        let run = self.durable_run(seq).await?;
        Err(EngineError::AlreadyCompleted {
            workflow_id: workflow_id.to_string(),
            run_id: run.run_id,
        })
    }

    /// The state of a run, returned once everything it reflects is durable.
    async fn durable_run(&self, seq: u64) -> Result<RunState, EngineError> {
        let (run, ticket) = {
            let core = self.lock();
            let ticket = self.inner.store.written();
            let run = core.runs.get(&seq).cloned();
            (run, ticket)
        };
        // Every change reflected in memory was committed with a ticket ≤ this;
        // a run no longer in memory is read from sled only once its last
        // commit is applied (group commit applies writes at flush time).
        self.inner.store.durable(ticket).await?;
        match run {
            Some(r) => Ok(r),
            None => self
                .inner
                .store
                .run(seq)?
                .ok_or(EngineError::TaskNotFound(format!("run {seq} vanished"))),
        }
    }

    /// Execution info, pending activities and the pending workflow task.
    pub async fn describe(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowDescription, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        let run = self.durable_run(seq).await?;
        let pending_activities = run
            .activities
            .iter()
            .map(|a| PendingActivityInfo {
                activity_id: a.activity_id.clone(),
                activity_type: a.activity_type.clone(),
                state: if a.cancel_requested {
                    PendingActivityState::CancelRequested
                } else {
                    a.state
                },
                attempt: a.attempt,
                maximum_attempts: a.retry_policy.maximum_attempts,
                scheduled_time_ms: a.scheduled_time_ms,
                expiration_time_ms: a.expiration_ms,
                last_failure: a.last_failure.clone(),
                last_started_time_ms: a.last_started_time_ms,
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
            })
            .collect();
        let pending_workflow_task = run.workflow_task.as_ref().map(|w| PendingWorkflowTaskInfo {
            started: w.started.is_some(),
            attempt: w.attempt,
            scheduled_time_ms: w.scheduled_time_ms,
            original_scheduled_time_ms: w.original_scheduled_time_ms,
            started_time_ms: w.started.as_ref().map(|s| s.started_time_ms),
        });
        Ok(WorkflowDescription {
            info: info_of(&run),
            pending_activities,
            pending_workflow_task,
        })
    }

    /// The history of a run (the newest run of the id when `run_id` is None).
    pub async fn history(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        let ticket = self.inner.store.written();
        self.inner.store.durable(ticket).await?;
        Ok(self.inner.store.history(seq)?)
    }

    /// Runs, newest first, `page_size` at a time.
    pub async fn list(
        &self,
        filter: &ListFilter,
        page_size: usize,
        page_token: Option<u64>,
    ) -> Result<ListPage, EngineError> {
        let ticket = self.inner.store.written();
        self.inner.store.durable(ticket).await?;
        let page_size = page_size.max(1);
        let mut executions = Vec::new();
        let mut next_page_token = None;
        for item in self.inner.store.runs_newest_first(page_token) {
            let (seq, run) = item?;
            if filter.status.is_some_and(|s| s != run.status) {
                continue;
            }
            if filter
                .workflow_type
                .as_ref()
                .is_some_and(|t| t != &run.workflow_type)
            {
                continue;
            }
            if executions.len() == page_size {
                next_page_token = Some(seq + 1);
                break;
            }
            executions.push(info_of(&run));
        }
        Ok(ListPage {
            executions,
            next_page_token,
        })
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
            q.items.push_back(super::tasks::QueryTask {
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
        self.inner.store.durable(self.inner.store.written()).await?;
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
        let (task_queue, task_timeout, workflow_type) = match &history[0].attributes {
            EventAttributes::WorkflowExecutionStarted {
                task_queue,
                workflow_task_timeout,
                workflow_type,
                ..
            } => (
                task_queue.clone(),
                *workflow_task_timeout,
                workflow_type.clone(),
            ),
            _ => {
                return Err(EngineError::Store(super::error::StoreError::CorruptValue {
                    what: format!("history of {workflow_id}"),
                    detail: "does not begin with WorkflowExecutionStarted".into(),
                }));
            }
        };
        let store = self.inner.store.clone();
        let (handle, ticket, effects) = {
            let mut core = self.lock();
            let now = self.now_ms();
            let new_seq = store.next_run_seq()?;
            let old_run_id = history_run_id(&core, &store, seq)?;
            let mut run = RunState::new(
                new_seq,
                workflow_id,
                &make_run_id(now, new_seq),
                &workflow_type,
                &task_queue,
                now,
                task_timeout,
            );
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
                        info: super::failure::FailureInfo::Reset {
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
            let mut batch = WriteBatch::default();
            let mut effects = Vec::new();
            if let Some(old) = core.runs.get(&seq).cloned() {
                let mut old = old;
                let mut old_tr = Transition::default();
                old.terminate(
                    &mut old_tr,
                    now,
                    &format!("root: {reason}"),
                    "history-resetter",
                );
                self.batch_run(&mut batch, &mut old, &old_tr)?;
                effects.extend(old_tr.effects);
                core.runs.remove(&seq);
            }
            self.batch_run(&mut batch, &mut run, &tr)?;
            batch.put_workflow_index(workflow_id, new_seq);
            let ticket = store.commit(batch)?;
            core.run_tickets.remove(&seq);
            core.run_tickets.insert(new_seq, ticket);
            effects.extend(tr.effects);
            let handle = RunHandle {
                workflow_id: workflow_id.to_string(),
                run_id: run.run_id.clone(),
            };
            core.running_ids.insert(workflow_id.to_string(), new_seq);
            core.runs.insert(new_seq, run);
            (handle, ticket, effects)
        };
        let change = super::feed::Change {
            workflow_id: workflow_id.to_string(),
            run_id: handle.run_id.clone(),
            status: WorkflowExecutionStatus::Running,
            new_events: 0,
        };
        self.finish(ticket, effects, Some(change)).await?;
        Ok(handle)
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
