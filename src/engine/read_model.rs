//! The read model: what a screen or the CLI reads of the engine — list with
//! filters and pages, describe with pending activities and their attempts,
//! history pages — plus waiting on the change feed for a run to reach a
//! state. Reads see only what is durable.

use std::time::Duration;

use tokio::sync::broadcast;

use super::error::{EngineError, StoreError};
use super::failure::Failure;
use super::feed::Change;
use super::history::{HistoryEvent, Payload};
use super::retry::RetryPolicy;
use super::runtime::Engine;
use super::state::{AttemptRecord, PendingActivityState, RunState, WorkflowExecutionStatus};
use super::store::{RunIndex, Store};

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
    pub retry_policy: RetryPolicy,
    pub start_to_close_timeout: Duration,
    pub schedule_to_close_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub heartbeat_details: Option<Payload>,
    pub last_heartbeat_time_ms: Option<u64>,
    /// The attempts so far, oldest first (the last 100): holdfast's own
    /// record, kept beside the run's state and never in its history, so a
    /// timeline of backoff can be drawn.
    pub attempts: Vec<AttemptRecord>,
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

/// Which runs `list` returns: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<WorkflowExecutionStatus>,
    pub workflow_type: Option<String>,
    /// Part of the workflow id or type, any case.
    pub text: Option<String>,
    /// Only runs with an activity past its first attempt and still pending
    /// (the Temporal UI's most asked-for filter, temporalio/ui#884).
    pub retrying: bool,
}

impl ListFilter {
    fn matches(&self, run: &RunState) -> bool {
        self.status.is_none_or(|s| s == run.status)
            && self
                .workflow_type
                .as_ref()
                .is_none_or(|t| *t == run.workflow_type)
            && (!self.retrying || run.has_activity_retrying())
            && self.text.as_ref().is_none_or(|t| {
                let t = t.to_lowercase();
                run.workflow_id.to_lowercase().contains(&t)
                    || run.workflow_type.to_lowercase().contains(&t)
            })
    }

    /// The index that narrows the scan most.
    fn index(&self) -> RunIndex {
        if self.retrying {
            RunIndex::Retrying
        } else if let Some(s) = self.status {
            RunIndex::Status(s)
        } else if let Some(t) = &self.workflow_type {
            RunIndex::Type(t.clone())
        } else {
            RunIndex::All
        }
    }
}

/// Where the next page of `list` begins. Opaque: pass back what a page gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    fn before(seq: u64) -> Self {
        PageToken(format!("{seq:x}"))
    }

    fn seq(&self) -> Result<u64, EngineError> {
        u64::from_str_radix(&self.0, 16)
            .map_err(|_| EngineError::InvalidArgument(format!("{:?} is not a page token", self.0)))
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PageToken {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        let t = PageToken(s.to_string());
        t.seq()?;
        Ok(t)
    }
}

/// A page of `list`.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub executions: Vec<WorkflowExecutionInfo>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page_token: Option<PageToken>,
}

pub(crate) fn info_of(run: &RunState) -> WorkflowExecutionInfo {
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

/// What `describe` shows of a run's state.
pub(crate) fn describe_run(run: &RunState) -> WorkflowDescription {
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
            attempts: a.attempts.clone(),
        })
        .collect();
    let pending_workflow_task = run.workflow_task.as_ref().map(|w| PendingWorkflowTaskInfo {
        started: w.started.is_some(),
        attempt: w.attempt,
        scheduled_time_ms: w.scheduled_time_ms,
        original_scheduled_time_ms: w.original_scheduled_time_ms,
        started_time_ms: w.started.as_ref().map(|s| s.started_time_ms),
    });
    WorkflowDescription {
        info: info_of(run),
        pending_activities,
        pending_workflow_task,
    }
}

pub(crate) fn parse_run_id(run_id: &str) -> Option<u64> {
    let parts: Vec<&str> = run_id.split('-').collect();
    if parts.len() != 5 {
        return None;
    }
    let hi = u64::from_str_radix(parts[3], 16).ok()?;
    let lo = u64::from_str_radix(parts[4], 16).ok()?;
    Some((hi << 48) | lo)
}

/// A page of runs from a store (everything in it must be durable).
pub(crate) fn list_store(
    store: &Store,
    filter: &ListFilter,
    page_size: usize,
    page_token: Option<&PageToken>,
) -> Result<ListPage, EngineError> {
    let page_size = page_size.max(1);
    let before = page_token.map(PageToken::seq).transpose()?;
    let mut executions = Vec::new();
    let mut next_page_token = None;
    let index = filter.index();
    let runs: Box<dyn Iterator<Item = Result<RunState, StoreError>>> = match &filter.text {
        // No index narrows it more: read a few bytes per run, not its state.
        Some(text) if index == RunIndex::All => {
            let seqs = store.seqs_with_text(text.to_lowercase(), before);
            Box::new(seqs.map(move |seq| {
                let seq = seq?;
                store.run(seq)?.ok_or_else(|| StoreError::CorruptValue {
                    what: format!("text index entry of run {seq}"),
                    detail: "points at no run".into(),
                })
            }))
        }
        _ => store.runs_newest_first(&index, before),
    };
    for run in runs {
        let run = run?;
        if !filter.matches(&run) {
            continue;
        }
        if executions.len() == page_size {
            next_page_token = Some(PageToken::before(run.seq + 1));
            break;
        }
        executions.push(info_of(&run));
    }
    Ok(ListPage {
        executions,
        next_page_token,
    })
}

impl Engine {
    /// Finds a run: the given run id, or the workflow id's newest run.
    pub(crate) fn resolve(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<u64, EngineError> {
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
    pub(crate) async fn running_seq(
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
    pub(crate) async fn durable_run(&self, seq: u64) -> Result<RunState, EngineError> {
        let (run, ticket) = {
            let core = self.lock();
            let ticket = self.inner.store.written();
            let run = core.runs.get(&seq).cloned();
            (run, ticket)
        };
        // Every change reflected in memory was committed with a ticket ≤ this;
        // a run no longer in memory is read from sled only once its last
        // commit is applied (group commit applies writes at flush time).
        self.inner.store.settled(ticket).await?;
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
        Ok(describe_run(&run))
    }

    /// The history of a run (the newest run of the id when `run_id` is None).
    pub async fn history(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        let ticket = self.inner.store.written();
        self.inner.store.settled(ticket).await?;
        Ok(self.inner.store.history(seq)?)
    }

    /// Runs, newest first, `page_size` at a time.
    pub async fn list(
        &self,
        filter: &ListFilter,
        page_size: usize,
        page_token: Option<&PageToken>,
    ) -> Result<ListPage, EngineError> {
        let ticket = self.inner.store.written();
        self.inner.store.settled(ticket).await?;
        list_store(&self.inner.store, filter, page_size, page_token)
    }

    /// Up to `max` events of a run's history after event `after` (0 for
    /// the first page).
    pub async fn history_after(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let seq = self.resolve(workflow_id, run_id)?;
        self.inner.store.settled(self.inner.store.written()).await?;
        Ok(self.inner.store.history_page(seq, after + 1, max)?)
    }

    /// Subscribes to every committed change.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.store.subscribe()
    }

    /// Waits until the newest run of `workflow_id` satisfies `done`, woken
    /// by the change feed (never by polling), and returns its description.
    /// A subscriber that falls behind re-reads the run instead of guessing.
    pub async fn wait_until(
        &self,
        workflow_id: &str,
        done: impl Fn(&WorkflowDescription) -> bool,
    ) -> Result<WorkflowDescription, EngineError> {
        let mut feed = self.subscribe();
        let mut now = self.describe(workflow_id, None).await?;
        loop {
            if done(&now) {
                return Ok(now);
            }
            match feed.recv().await {
                Ok(change) => {
                    if let Some(r) = change.run_of(workflow_id) {
                        now = r.description.clone();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    now = self.describe(workflow_id, None).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Err(EngineError::Shutdown),
            }
        }
    }
}
