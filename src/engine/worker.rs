//! Workers: poll task queues, run workflow tasks (replaying from history
//! when they hold no cached state) and activities, concurrently within
//! their slots. `kill()` drops everything in flight without telling the
//! engine, as a crashed process would. `swap_activity` replaces an
//! activity's implementation while the worker runs (the hot fix).

mod activity;
mod errors;
mod instance;
pub(crate) mod workflow;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::history::Failure;
use super::history::{EventAttributes, Payload, WorkflowTaskFailedCause};
use super::runtime::Engine;
use super::worker_api::{ActivityTask, WorkflowTask};
use activity::ActivityFn;
pub use activity::{ActivityContext, ApplicationError, CANCELED_ERROR_TYPE};
use workflow::{
    ActivationError, WfContext, WorkflowError, WorkflowFuture, WorkflowInfo, WorkflowInstance,
};

type WorkflowFn = Arc<dyn Fn(WfContext, Payload) -> WorkflowFuture + Send + Sync>;

/// A worker's settings.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub task_queue: String,
    /// Recorded in events and pending-activity info.
    pub identity: String,
    pub max_concurrent_activities: usize,
    pub max_concurrent_workflow_tasks: usize,
    pub max_cached_workflows: usize,
    /// The build of the code this worker runs (Temporal's build id), shown
    /// with its pollers by [`Engine::describe_task_queue`].
    pub build_id: String,
    /// Whether runs it has cached get their next tasks on its own sticky
    /// queue, with only the new events (Temporal's default: on).
    pub sticky: bool,
    /// How long a clean stop lets running activities finish before handing
    /// them back (their attempt fails as `WorkerShutdown` and is retried).
    pub graceful_shutdown_timeout: Duration,
}

impl WorkerOptions {
    pub fn new(task_queue: impl Into<String>, identity: impl Into<String>) -> Self {
        WorkerOptions {
            task_queue: task_queue.into(),
            identity: identity.into(),
            max_concurrent_activities: 100,
            max_concurrent_workflow_tasks: 100,
            max_cached_workflows: 10_000,
            build_id: String::new(),
            sticky: true,
            graceful_shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters a worker keeps, for tests, the benchmark and the screen.
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub workflow_tasks_completed: AtomicU64,
    pub workflow_tasks_failed: AtomicU64,
    pub events_replayed: AtomicU64,
    /// History events delivered with workflow tasks (whole histories, or
    /// only the new events on the sticky queue).
    pub history_events_received: AtomicU64,
    pub cache_hits: AtomicU64,
    pub activities_started: AtomicU64,
    pub activities_completed: AtomicU64,
    pub activities_failed: AtomicU64,
    pub results_rejected: AtomicU64,
}

/// A worker being set up: register workflows and activities, then `start`.
pub struct Worker {
    engine: Engine,
    options: WorkerOptions,
    workflows: BTreeMap<String, WorkflowFn>,
    activities: HashMap<String, ActivityFn>,
}

fn decode_input<I: DeserializeOwned>(what: &str, payload: &Payload) -> Result<I, String> {
    payload
        .to_value::<I>()
        .map_err(|e| format!("input of {what} does not fit: {e}"))
}

/// Wraps a typed activity function into the engine's payload form.
pub(crate) fn activity_fn<I, O, F, Fut>(name: &str, f: F) -> ActivityFn
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ApplicationError>> + Send + 'static,
{
    let name = name.to_string();
    let f = Arc::new(f);
    Arc::new(move |ctx, payload| {
        let f = f.clone();
        let name = name.clone();
        async move {
            let input: I = decode_input(&format!("activity {name}"), &payload)
                .map_err(|m| ApplicationError::non_retryable("DeserializationError", m))?;
            let out = f(ctx, input).await?;
            Payload::from_value(&out)
                .map_err(|e| ApplicationError::non_retryable("SerializationError", e.to_string()))
        }
        .boxed()
    })
}

impl Worker {
    pub fn new(engine: &Engine, options: WorkerOptions) -> Worker {
        Worker {
            engine: engine.clone(),
            options,
            workflows: BTreeMap::new(),
            activities: HashMap::new(),
        }
    }

    /// Registers a workflow type. Its input is also checked by the engine at start.
    pub fn register_workflow<I, O, F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(WfContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + Send + 'static,
    {
        let type_name = name.to_string();
        self.engine.register_workflow_type(
            name,
            Arc::new(move |p: &Payload| {
                decode_input::<I>(&format!("workflow {type_name}"), p).map(|_| ())
            }),
        );
        let f = Arc::new(f);
        let type_name = name.to_string();
        self.workflows.insert(
            name.to_string(),
            Arc::new(move |ctx, payload| {
                let f = f.clone();
                let type_name = type_name.clone();
                Box::pin(async move {
                    let input: I = decode_input(&format!("workflow {type_name}"), &payload)
                        .map_err(|m| WorkflowError::application("DeserializationError", m))?;
                    let out = f(ctx, input).await?;
                    Payload::from_value(&out).map_err(|e| {
                        WorkflowError::application("SerializationError", e.to_string())
                    })
                })
            }),
        );
        self
    }

    /// Registers an activity type.
    pub fn register_activity<I, O, F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ApplicationError>> + Send + 'static,
    {
        self.activities
            .insert(name.to_string(), activity_fn(name, f));
        self
    }

    /// Replays a run's whole history with this worker's code from scratch,
    /// as a Temporal SDK's replayer does: every command the code issues must
    /// be the one history holds. Returns the commands the code issues after
    /// the last event (none once the run closed), or why it cannot.
    pub fn replay(
        &self,
        workflow_id: &str,
        run_id: &str,
        workflow_type: &str,
        history: &[super::history::HistoryEvent],
    ) -> Result<Vec<super::state::Command>, String> {
        let task = WorkflowTask {
            token: super::worker_api::WorkflowTaskToken::detached(),
            workflow_id: workflow_id.to_string(),
            run_id: run_id.to_string(),
            workflow_type: workflow_type.to_string(),
            attempt: 1,
            history: history.to_vec(),
            first_event_id: 1,
            started_time_ms: history.last().map_or(0, |e| e.event_time_ms),
        };
        let mut inst = instantiate(&self.workflows, &self.options.identity, &task)
            .map_err(|f| f.message.clone())?;
        match inst.activate(history, task.started_time_ms) {
            Ok(commands) => Ok(commands),
            Err(ActivationError::Nondeterminism(m)) | Err(ActivationError::Panic(m)) => Err(m),
        }
    }

    /// Starts polling. The returned handle kills the worker or swaps activities.
    pub fn start(self) -> WorkerHandle {
        if !self.options.build_id.is_empty() {
            self.engine
                .set_build_id(&self.options.identity, &self.options.build_id);
        }
        let cancel = CancellationToken::new();
        let shared = Arc::new(WorkerShared {
            engine: self.engine,
            workflows: self.workflows,
            activities: RwLock::new(self.activities),
            cache: Mutex::new(HashMap::new()),
            stats: WorkerStats::default(),
            stopping: cancel.child_token(),
            hand_back: cancel.child_token(),
            in_flight: tokio_util::task::TaskTracker::new(),
            sticky_queue: (self.options.sticky && self.options.max_cached_workflows > 0).then(
                || {
                    format!(
                        "{}-sticky-{:016x}",
                        self.options.identity,
                        fastrand::u64(..)
                    )
                },
            ),
            cancel,
            options: self.options,
        });
        let s = shared.clone();
        tokio::spawn(until_killed(shared.stopping.clone(), async move {
            let slots = s.options.max_concurrent_workflow_tasks;
            s.serve(
                slots,
                "workflow task",
                |me| {
                    async move {
                        me.engine
                            .poll_workflow_task_sticky(
                                &me.options.task_queue,
                                me.sticky_queue.as_deref(),
                                &me.options.identity,
                            )
                            .await
                    }
                    .boxed()
                },
                |me, task| async move { me.run_workflow_task(task).await }.boxed(),
            )
            .await;
        }));
        let s = shared.clone();
        tokio::spawn(until_killed(shared.stopping.clone(), async move {
            let slots = s.options.max_concurrent_activities;
            s.serve(
                slots,
                "activity task",
                |me| {
                    async move {
                        me.engine
                            .poll_activity_task(&me.options.task_queue, &me.options.identity)
                            .await
                    }
                    .boxed()
                },
                |me, task| async move { me.run_activity(task).await }.boxed(),
            )
            .await;
        }));
        let s = shared.clone();
        tokio::spawn(until_killed(shared.cancel.clone(), async move {
            s.query_loop().await;
        }));
        WorkerHandle { shared }
    }
}

struct WorkerShared {
    engine: Engine,
    options: WorkerOptions,
    workflows: BTreeMap<String, WorkflowFn>,
    activities: RwLock<HashMap<String, ActivityFn>>,
    cache: Mutex<HashMap<String, WorkflowInstance>>,
    stats: WorkerStats,
    /// Killed: everything stops at once.
    cancel: CancellationToken,
    /// Stopping cleanly: no more polls.
    stopping: CancellationToken,
    /// Running activities are handed back (end of a clean stop's grace).
    hand_back: CancellationToken,
    /// Workflow tasks and activities in flight.
    in_flight: tokio_util::task::TaskTracker,
    /// This worker's sticky queue, if it uses one.
    sticky_queue: Option<String>,
}

/// A running worker.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<WorkerShared>,
}

impl WorkerHandle {
    pub fn identity(&self) -> &str {
        &self.shared.options.identity
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats
    }

    /// Kills the worker like a crash: in-flight workflow tasks and activities
    /// are dropped mid-way and the engine is told nothing. Its cached
    /// workflow state is gone; another worker will replay.
    pub fn kill(&self) {
        self.shared.cancel.cancel();
        if let Ok(mut c) = self.shared.cache.lock() {
            c.clear();
        }
    }

    /// Stops the worker cleanly, as a Temporal SDK's `shutdown()`: it polls
    /// no more, its sticky queue is released (its runs' next tasks go to
    /// other workers at once, with no timeout), workflow tasks in flight
    /// finish, and running activities get `graceful_shutdown_timeout` to
    /// finish before they are handed back (their attempt fails as
    /// `WorkerShutdown` and is retried elsewhere).
    pub async fn shutdown(&self) {
        let s = &self.shared;
        s.stopping.cancel();
        if let Some(q) = &s.sticky_queue {
            s.engine.release_sticky_queue(q);
        }
        s.in_flight.close();
        tokio::select! {
            _ = s.in_flight.wait() => {}
            _ = s.engine.clock().sleep(s.options.graceful_shutdown_timeout) => {
                s.hand_back.cancel();
                s.in_flight.wait().await;
            }
        }
        s.cancel.cancel();
        if let Ok(mut c) = s.cache.lock() {
            c.clear();
        }
    }

    /// Declares that the worker now runs another build (after a hot swap).
    pub fn set_build_id(&self, build_id: &str) {
        self.shared
            .engine
            .set_build_id(&self.shared.options.identity, build_id);
    }

    pub fn is_killed(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Replaces an activity's implementation; the next attempt uses it.
    pub fn swap_activity<I, O, F, Fut>(&self, name: &str, f: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ApplicationError>> + Send + 'static,
    {
        if let Ok(mut a) = self.shared.activities.write() {
            a.insert(name.to_string(), activity_fn(name, f));
        }
    }
}

/// A fresh instance of the task's workflow, at the start of its history.
fn instantiate(
    workflows: &BTreeMap<String, WorkflowFn>,
    identity: &str,
    task: &WorkflowTask,
) -> Result<WorkflowInstance, Box<Failure>> {
    let Some(f) = workflows.get(&task.workflow_type) else {
        return Err(Box::new(Failure::application(
            "NotFoundError",
            format!(
                "Workflow type {:?} is not registered on worker {}; registered: [{}]",
                task.workflow_type,
                identity,
                workflows.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            false,
        )));
    };
    let (input, task_queue) = match task.history.first().map(|e| &e.attributes) {
        Some(EventAttributes::WorkflowExecutionStarted {
            input, task_queue, ..
        }) => (input.clone(), task_queue.clone()),
        _ => {
            return Err(Box::new(Failure::application(
                "InvalidHistory",
                "history does not begin with WorkflowExecutionStarted",
                false,
            )));
        }
    };
    let info = WorkflowInfo {
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
        workflow_type: task.workflow_type.clone(),
        task_queue,
    };
    let f = f.clone();
    Ok(WorkflowInstance::new(info, move |ctx| f(ctx, input)))
}

/// Runs `work` until the worker is killed. The kill is checked before
/// `work` is polled each time (tokio-util's `run_until_cancelled` polls the
/// work first, so a killed worker could still take one more task and hold
/// it until its timeout: a dead process takes nothing).
async fn until_killed<F: Future>(cancel: CancellationToken, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    // Registered with the token only once the work waits (as tokio-util's
    // own does): most tasks finish on their first poll.
    let mut killed = std::pin::pin!(cancel.clone().cancelled_owned());
    std::future::poll_fn(|cx| {
        if cancel.is_cancelled() {
            return std::task::Poll::Ready(None);
        }
        if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        if killed.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

impl WorkerShared {
    /// Polls with up to `slots` tasks in flight, running each in its own
    /// task that dies with the worker.
    async fn serve<T: Send + 'static>(
        self: Arc<Self>,
        slots: usize,
        what: &'static str,
        poll: impl Fn(Arc<Self>) -> BoxFuture<'static, Result<T, super::error::EngineError>>,
        handle: impl Fn(Arc<Self>, T) -> BoxFuture<'static, ()>,
    ) {
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let task = match poll(self.clone()).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "{what} poll failed");
                    self.engine.clock().sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let work = handle(self.clone(), task);
            self.in_flight
                .spawn(until_killed(self.cancel.clone(), async move {
                    work.await;
                    drop(permit);
                }));
        }
    }

    async fn run_workflow_task(&self, mut task: WorkflowTask) {
        let identity = &self.options.identity;
        self.stats
            .history_events_received
            .fetch_add(task.history.len() as u64, Ordering::Relaxed);
        let next = task.first_event_id + task.history.len() as u64;
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&task.run_id))
            .filter(|inst| (task.first_event_id..=next).contains(&inst.cursor()));
        if cached.is_none() && task.first_event_id > 1 {
            // A sticky task for a run no longer cached: read what came before.
            match self
                .engine
                .history(&task.workflow_id, Some(&task.run_id))
                .await
            {
                Ok(mut whole) => {
                    whole.truncate((next - 1) as usize);
                    task.history = whole;
                    task.first_event_id = 1;
                }
                Err(e) => {
                    let failure = Failure::application("HistoryUnavailable", e.to_string(), false);
                    self.fail_task(
                        &task,
                        WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                        failure,
                    )
                    .await;
                    return;
                }
            }
        }
        let mut inst = match cached {
            Some(i) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                i
            }
            None => match self.new_instance(&task) {
                Ok(i) => i,
                Err(failure) => {
                    self.fail_task(
                        &task,
                        WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                        *failure,
                    )
                    .await;
                    return;
                }
            },
        };
        let before = inst.replayed_events;
        let outcome = inst.activate(&task.history, task.started_time_ms);
        let replayed = inst.replayed_events - before;
        if replayed > 0 {
            self.stats
                .events_replayed
                .fetch_add(replayed, Ordering::Relaxed);
            tracing::info!(workflow_id = %task.workflow_id, replayed, worker = %identity, "replayed history");
        }
        match outcome {
            Ok(commands) => {
                // The run stays cached here: its next task comes to our sticky queue.
                let sticky = self.sticky_queue.as_deref().filter(|_| !inst.is_finished());
                match self
                    .engine
                    .complete_workflow_task_sticky(&task.token, identity, commands, sticky)
                    .await
                {
                    Ok(()) => {
                        self.stats
                            .workflow_tasks_completed
                            .fetch_add(1, Ordering::Relaxed);
                        if !inst.is_finished()
                            && let Ok(mut c) = self.cache.lock()
                        {
                            if c.len() >= self.options.max_cached_workflows
                                && let Some(k) = c.keys().next().cloned()
                            {
                                c.remove(&k);
                            }
                            c.insert(task.run_id.clone(), inst);
                        }
                    }
                    Err(e @ super::error::EngineError::CommandsRefused { .. }) => {
                        // The engine failed the task instead: what this
                        // instance holds is not what history says. Dropped
                        // (not cached), the next attempt replays from history.
                        self.stats
                            .workflow_tasks_failed
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(workflow_id = %task.workflow_id, "{e}");
                    }
                    Err(e) => {
                        self.stats.results_rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(workflow_id = %task.workflow_id, error = %e, "workflow task completion rejected");
                    }
                }
            }
            Err(ActivationError::Nondeterminism(msg)) => {
                tracing::warn!(workflow_id = %task.workflow_id, "{msg}");
                self.fail_task(
                    &task,
                    WorkflowTaskFailedCause::NonDeterministicError,
                    Failure::application("NondeterminismError", msg, false),
                )
                .await;
            }
            Err(ActivationError::Panic(msg)) => {
                tracing::warn!(workflow_id = %task.workflow_id, "workflow code panicked: {msg}");
                self.fail_task(
                    &task,
                    WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                    Failure::application("Panic", format!("workflow code panicked: {msg}"), false),
                )
                .await;
            }
        }
    }

    fn new_instance(&self, task: &WorkflowTask) -> Result<WorkflowInstance, Box<Failure>> {
        instantiate(&self.workflows, &self.options.identity, task)
    }

    async fn fail_task(
        &self,
        task: &WorkflowTask,
        cause: WorkflowTaskFailedCause,
        failure: Failure,
    ) {
        self.stats
            .workflow_tasks_failed
            .fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self
            .engine
            .fail_workflow_task(&task.token, &self.options.identity, cause, failure)
            .await
        {
            tracing::info!(workflow_id = %task.workflow_id, error = %e, "workflow task failure not recorded");
        }
    }

    async fn query_loop(self: Arc<Self>) {
        let _guard = self.engine.register_query_poller(&self.options.task_queue);
        loop {
            let task = match self.engine.poll_query_task(&self.options.task_queue).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "query poll failed");
                    self.engine.clock().sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let answer = self.answer_query(&task);
            task.answer(answer);
        }
    }

    /// Answers from the cached instance when it has seen the whole history,
    /// otherwise from a fresh replay of it.
    fn answer_query(&self, task: &super::worker_api::QueryTask) -> Result<Payload, String> {
        let next = task.history.len() as u64 + 1;
        if let Ok(c) = self.cache.lock()
            && let Some(inst) = c.get(&task.run_id)
            && inst.cursor() == next
        {
            return inst.query(&task.query_type, task.args.clone());
        }
        let wt = WorkflowTask {
            token: super::worker_api::WorkflowTaskToken::detached(),
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id.clone(),
            workflow_type: task.workflow_type.clone(),
            attempt: 1,
            history: task.history.clone(),
            first_event_id: 1,
            started_time_ms: task.history.last().map_or(0, |e| e.event_time_ms),
        };
        let mut inst = self.new_instance(&wt).map_err(|f| f.message.clone())?;
        match inst.activate(&task.history, wt.started_time_ms) {
            Ok(_) => inst.query(&task.query_type, task.args.clone()),
            Err(ActivationError::Nondeterminism(m)) | Err(ActivationError::Panic(m)) => Err(m),
        }
    }

    async fn run_activity(&self, task: ActivityTask) {
        self.stats
            .activities_started
            .fetch_add(1, Ordering::Relaxed);
        let identity = &self.options.identity;
        let f = self
            .activities
            .read()
            .ok()
            .and_then(|a| a.get(&task.activity_type).cloned());
        let outcome = match f {
            None => {
                let known = self
                    .activities
                    .read()
                    .map(|a| {
                        let mut k: Vec<_> = a.keys().cloned().collect();
                        k.sort();
                        k.join(", ")
                    })
                    .unwrap_or_default();
                Err(ApplicationError::retryable(
                    "NotFoundError",
                    format!(
                        "Activity type {:?} is not registered on worker {identity}; registered: [{known}]",
                        task.activity_type
                    ),
                ))
            }
            Some(f) => {
                let ctx = ActivityContext {
                    start_to_close_timeout: task.start_to_close_timeout,
                    workflow_id: task.workflow_id.clone(),
                    run_id: task.run_id.clone(),
                    activity_id: task.activity_id.clone(),
                    activity_type: task.activity_type.clone(),
                    attempt: task.attempt,
                    worker_identity: identity.clone(),
                    clock: self.engine.clock().clone(),
                    engine: self.engine.clone(),
                    token: task.token.clone(),
                    heartbeat_details: task.heartbeat_details.clone(),
                };
                let run = AssertUnwindSafe(f(ctx, task.input.clone())).catch_unwind();
                tokio::select! {
                    r = run => match r {
                        Ok(r) => r,
                        Err(panic) => Err(ApplicationError::retryable(
                            "Panic",
                            format!("activity panicked: {}", panic_message(panic)),
                        )),
                    },
                    _ = self.hand_back.cancelled() => Err(ApplicationError::retryable(
                        "WorkerShutdown",
                        format!("worker {identity} stopped before the activity finished"),
                    )),
                }
            }
        };
        let res = match outcome {
            Ok(result) => {
                self.stats
                    .activities_completed
                    .fetch_add(1, Ordering::Relaxed);
                self.engine
                    .complete_activity_task(&task.token, identity, result)
                    .await
            }
            Err(e) if e.is_cancellation() => {
                tracing::info!(
                    workflow_id = %task.workflow_id,
                    activity = %task.activity_type,
                    attempt = task.attempt,
                    "activity canceled"
                );
                self.engine
                    .cancel_activity_task(&task.token, identity, e.details)
                    .await
            }
            Err(e) => {
                self.stats.activities_failed.fetch_add(1, Ordering::Relaxed);
                // The words Temporal's Python worker logs.
                tracing::info!(
                    workflow_id = %task.workflow_id,
                    "Activity error. ActivityType {} Attempt {}: {e}",
                    task.activity_type,
                    task.attempt
                );
                self.engine
                    .fail_activity_task(&task.token, identity, e.into_failure())
                    .await
            }
        };
        if let Err(e) = res {
            self.stats.results_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(workflow_id = %task.workflow_id, error = %e, "activity result rejected");
        }
    }
}
