//! What the engine holds in memory for workers: task queues, queries
//! waiting for an answer, and who polls. All of it is derived (queues and
//! timers are rebuilt by recovery) or transient (queries, pollers).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::engine::history::{HistoryEvent, Payload};

/// The kind of task a poller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskQueueKind {
    Workflow,
    Activity,
}

pub(crate) struct TaskQueue<T> {
    pub(crate) items: VecDeque<T>,
    pub(crate) notify: Arc<Notify>,
}

impl<T> Default for TaskQueue<T> {
    fn default() -> Self {
        TaskQueue {
            items: VecDeque::new(),
            notify: Arc::new(Notify::new()),
        }
    }
}

/// A query for a worker to answer from the run's state.
#[derive(Debug)]
pub struct QueryTask {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub history: Vec<HistoryEvent>,
    pub query_type: String,
    pub args: Payload,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Payload, String>>,
}

impl QueryTask {
    /// Sends the answer back to whoever asked.
    pub fn answer(self, result: Result<Payload, String>) {
        let _ = self.reply.send(result);
    }
}

#[derive(Default)]
pub(crate) struct PollerState {
    pub(crate) last_access_ms: u64,
    pub(crate) outstanding: u32,
}

/// Pollers by queue, then by (identity, kind).
pub(crate) type Pollers = BTreeMap<String, BTreeMap<(String, TaskQueueKind), PollerState>>;
