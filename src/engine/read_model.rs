//! The read model: what a screen or the CLI reads of the engine — list with
//! filters and pages, describe with pending activities and their attempts,
//! history pages — plus waiting on the change feed for a run to reach a
//! state. Reads see only what is durable.

use tokio::sync::broadcast;

use super::error::{EngineError, StoreError};
use super::feed::Change;
use super::history::HistoryEvent;
use super::runtime::Engine;
use super::state::{RunState, WorkflowExecutionStatus};
use super::store::{RunIndex, Store};

pub use super::state::describe::{
    PendingActivityInfo, PendingWorkflowTaskInfo, WorkflowDescription, WorkflowExecutionInfo,
};
use super::state::describe::{describe_run, info_of};

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
        loop {
            let generation = self.generation();
            let (run, ticket) = {
                let core = self.lock();
                let ticket = self.inner.store.written();
                let run = core.runs.get(&seq).cloned();
                (run, ticket)
            };
            // Every change reflected in memory was committed with a ticket ≤
            // this; a run no longer in memory is read from sled only once its
            // last commit is applied (group commit applies writes at flush time).
            self.inner.store.settled(ticket).await?;
            if self.generation() != generation {
                // A crash took back what the copy may hold: read again.
                continue;
            }
            return match run {
                Some(r) => Ok(r),
                None => self
                    .inner
                    .store
                    .run(seq)?
                    .ok_or(EngineError::TaskNotFound(format!("run {seq} vanished"))),
            };
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
        Ok(self
            .inner
            .store
            .history_page(seq, after.saturating_add(1), max)?)
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
