//! Who polls which task queue, as Temporal's `DescribeTaskQueue` shows it:
//! each poller's identity, when it last polled, whether a poll is open now,
//! and the build of the code it runs (Temporal's worker build id, here
//! also "deposit: buggy" or "deposit: fixed").

pub use super::runtime::TaskQueueKind;
use super::runtime::{Core, Engine};

/// One poller of a task queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollerInfo {
    pub identity: String,
    pub kind: TaskQueueKind,
    /// When it last began or ended a poll.
    pub last_access_time_ms: u64,
    /// Whether it is waiting on the queue right now (a killed worker is not).
    pub polling_now: bool,
    /// The build of the code it runs, as its worker declared it.
    pub build_id: String,
}

/// What `describe_task_queue` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskQueueDescription {
    pub task_queue: String,
    /// Pollers seen on this queue since the engine opened, newest access first.
    pub pollers: Vec<PollerInfo>,
    /// Workflow tasks waiting for a poller.
    pub workflow_backlog: usize,
    /// Activity tasks waiting for a poller.
    pub activity_backlog: usize,
}

/// Marks a poll open while it lives; its drop (the poll answered, or its
/// worker killed mid-poll) marks it closed.
pub(crate) struct PollGuard {
    engine: Engine,
    queue: String,
    key: (String, TaskQueueKind),
}

impl PollGuard {
    pub(crate) fn new(engine: &Engine, queue: &str, identity: &str, kind: TaskQueueKind) -> Self {
        let now = engine.now_ms();
        let key = (identity.to_string(), kind);
        let mut core = engine.lock();
        let p = core
            .pollers
            .entry(queue.to_string())
            .or_default()
            .entry(key.clone())
            .or_default();
        p.outstanding += 1;
        p.last_access_ms = now;
        drop(core);
        PollGuard {
            engine: engine.clone(),
            queue: queue.to_string(),
            key,
        }
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        let now = self.engine.now_ms();
        let mut core = self.engine.lock();
        if let Some(p) = core
            .pollers
            .get_mut(&self.queue)
            .and_then(|q| q.get_mut(&self.key))
        {
            p.outstanding = p.outstanding.saturating_sub(1);
            p.last_access_ms = now;
        }
    }
}

fn describe(core: &Core, queue: &str) -> TaskQueueDescription {
    let mut pollers: Vec<PollerInfo> = core
        .pollers
        .get(queue)
        .into_iter()
        .flatten()
        .map(|((identity, kind), p)| PollerInfo {
            identity: identity.clone(),
            kind: *kind,
            last_access_time_ms: p.last_access_ms,
            polling_now: p.outstanding > 0,
            build_id: core.build_ids.get(identity).cloned().unwrap_or_default(),
        })
        .collect();
    pollers.sort_by_key(|p| std::cmp::Reverse(p.last_access_time_ms));
    TaskQueueDescription {
        task_queue: queue.to_string(),
        pollers,
        workflow_backlog: core.workflow_queues.get(queue).map_or(0, |q| q.items.len()),
        activity_backlog: core.activity_queues.get(queue).map_or(0, |q| q.items.len()),
    }
}

impl Engine {
    /// Pollers and backlog of a task queue.
    pub fn describe_task_queue(&self, task_queue: &str) -> TaskQueueDescription {
        describe(&self.lock(), task_queue)
    }

    /// Declares the build of the code a worker runs (shown with its pollers).
    pub fn set_build_id(&self, identity: &str, build_id: &str) {
        self.lock()
            .build_ids
            .insert(identity.to_string(), build_id.to_string());
    }
}
