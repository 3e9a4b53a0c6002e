//! Workflow code's side: the context it gets, the errors it sees, and the
//! replay machine that drives it from history.
//!
//! Workflow code is a deterministic async function. Each command it issues
//! (run an activity, complete) gets a per-run sequence number and is matched,
//! in order, against the history: the commands recorded after each
//! WorkflowTaskCompleted must be exactly the ones the code issues at that
//! point. Results recorded in history (ActivityTaskCompleted, …) resolve the
//! code's futures without calling anything again. A mismatch is a
//! nondeterminism error that names the event, what history holds and what
//! the code issued.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::history::RetryPolicy;
use crate::engine::history::{EventAttributes, HistoryEvent, Payload, RetryState};
use crate::engine::history::{Failure, FailureInfo};
use crate::engine::state::{ActivityOptions, Command};

pub use super::errors::{ActivityError, NONDETERMINISM_CODE, WorkflowError};

/// Who and what the workflow is.
#[derive(Clone, Debug)]
pub struct WorkflowInfo {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
}

/// Answers one query from the workflow's state.
pub type QueryHandler = Arc<dyn Fn(Payload) -> Result<Payload, String> + Send + Sync>;

#[derive(Default)]
struct Shared {
    now_ms: u64,
    replaying: bool,
    next_activity_seq: u64,
    next_timer_seq: u64,
    /// Issued, not yet matched to a history event.
    issued: VecDeque<Command>,
    results: HashMap<String, Result<Payload, ActivityError>>,
    fired_timers: std::collections::HashSet<String>,
    signals: HashMap<String, VecDeque<Payload>>,
    queries: std::collections::BTreeMap<String, QueryHandler>,
    cancel_requested: bool,
}

/// What workflow code uses to act: run activities, read workflow time.
#[derive(Clone)]
pub struct WfContext {
    shared: Arc<Mutex<Shared>>,
    info: Arc<WorkflowInfo>,
}

impl WfContext {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn info(&self) -> &WorkflowInfo {
        &self.info
    }

    /// Workflow time: when the current workflow task started (deterministic on replay).
    pub fn now_ms(&self) -> u64 {
        self.shared().now_ms
    }

    /// True while the code re-runs history it already made (log only when false).
    pub fn is_replaying(&self) -> bool {
        self.shared().replaying
    }

    /// Ends this run and starts a new one of the same type with `input`:
    /// `return Err(ctx.continue_as_new(&next))`.
    pub fn continue_as_new(&self, input: &impl Serialize) -> WorkflowError {
        match Payload::from_value(input) {
            Ok(p) => WorkflowError::ContinueAsNew(p),
            Err(e) => WorkflowError::application("SerializationError", e.to_string()),
        }
    }

    /// Whether cancellation of this run was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.shared().cancel_requested
    }

    /// A durable timer: resolves after `d` of workflow time, surviving
    /// crashes. If cancellation is requested first, the timer is canceled
    /// (TimerCanceled) and it resolves to `Err(WorkflowError::Canceled)`.
    pub fn sleep(&self, d: Duration) -> TimerFuture {
        TimerFuture {
            ctx: self.clone(),
            duration: d,
            timer_id: None,
        }
    }

    /// Signals named `name`, delivered in the order they were recorded.
    pub fn signal_channel<T: DeserializeOwned>(&self, name: &str) -> SignalChannel<T> {
        SignalChannel {
            ctx: self.clone(),
            name: name.to_string(),
            _t: std::marker::PhantomData,
        }
    }

    /// Resolves once `condition` holds (re-checked whenever new events arrive).
    pub fn wait_condition<F: Fn() -> bool>(&self, condition: F) -> WaitCondition<F> {
        WaitCondition { condition }
    }

    /// Registers a query handler; queries read state and write nothing to history.
    pub fn set_query_handler<A, R, F>(&self, name: &str, f: F)
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        let name_owned = name.to_string();
        let handler: QueryHandler = Arc::new(move |args: Payload| {
            let a: A = args
                .to_value()
                .map_err(|e| format!("arguments of query {name_owned:?} do not fit: {e}"))?;
            Payload::from_value(&f(a)).map_err(|e| e.to_string())
        });
        self.shared().queries.insert(name.to_string(), handler);
    }

    /// Runs an activity. The command is issued when the future is first polled.
    pub fn activity<O: DeserializeOwned>(
        &self,
        activity_type: &str,
        input: &impl Serialize,
        options: ActivityOptions,
    ) -> ActivityFuture<O> {
        let input = Payload::from_value(input).map_err(|e| ActivityError {
            failure: Failure::application(
                "SerializationError",
                format!("cannot encode the input of activity {activity_type}: {e}"),
                true,
            ),
        });
        ActivityFuture {
            ctx: self.clone(),
            activity_type: activity_type.to_string(),
            input: Some(input),
            options: Some(options),
            activity_id: None,
            _out: std::marker::PhantomData,
        }
    }
}

/// Options for an activity, built fluently.
pub fn activity_options() -> ActivityOptions {
    ActivityOptions::default()
}

impl ActivityOptions {
    pub fn start_to_close(mut self, d: Duration) -> Self {
        self.start_to_close_timeout = Some(d);
        self
    }
    pub fn schedule_to_close(mut self, d: Duration) -> Self {
        self.schedule_to_close_timeout = Some(d);
        self
    }
    pub fn schedule_to_start(mut self, d: Duration) -> Self {
        self.schedule_to_start_timeout = Some(d);
        self
    }
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat_timeout = Some(d);
        self
    }
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry_policy = Some(p);
        self
    }
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.activity_id = Some(id.into());
        self
    }
}

/// Resolves when the activity closes (from a live result or from history).
pub struct ActivityFuture<O> {
    ctx: WfContext,
    activity_type: String,
    input: Option<Result<Payload, ActivityError>>,
    options: Option<ActivityOptions>,
    activity_id: Option<String>,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned> Future for ActivityFuture<O> {
    type Output = Result<O, ActivityError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Nothing here is structurally pinned.
        let this = unsafe_free_get_mut(self);
        if let Err(e) = this.issue() {
            return Poll::Ready(Err(e));
        }
        let mut shared = this.ctx.shared();
        let id = this.activity_id.as_deref().unwrap_or_default();
        match shared.results.remove(id) {
            None => Poll::Pending,
            Some(Err(e)) => Poll::Ready(Err(e)),
            Some(Ok(p)) => Poll::Ready(p.to_value::<O>().map_err(|e| ActivityError {
                failure: Failure::application(
                    "DeserializationError",
                    format!(
                        "the result of activity {} ({}) does not fit the type the workflow expects: {e}",
                        this.activity_type, id
                    ),
                    true,
                ),
            })),
        }
    }
}

impl<O> Unpin for ActivityFuture<O> {}

impl<O> ActivityFuture<O> {
    /// Issues the ScheduleActivityTask command now, without waiting on the
    /// result (Temporal's `start_activity`); await the future later.
    // Same error type the future yields when awaited; boxing it here alone buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn start(&mut self) -> Result<(), ActivityError> {
        self.issue()
    }

    #[allow(clippy::result_large_err)]
    fn issue(&mut self) -> Result<(), ActivityError> {
        if self.activity_id.is_some() {
            return Ok(());
        }
        match self.input.take() {
            Some(Ok(input)) => {
                let mut shared = self.ctx.shared();
                shared.next_activity_seq += 1;
                let options = self.options.take().unwrap_or_default();
                let id = options
                    .activity_id
                    .clone()
                    .unwrap_or_else(|| shared.next_activity_seq.to_string());
                shared.issued.push_back(Command::ScheduleActivity {
                    activity_id: id.clone(),
                    activity_type: self.activity_type.clone(),
                    input,
                    options,
                });
                self.activity_id = Some(id);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Requests cancellation (ActivityTaskCancelRequested) and keeps waiting
    /// for the activity to close, as Temporal's WAIT_CANCELLATION_COMPLETED:
    /// a heartbeating activity learns of it; one that does not may still
    /// complete. Does nothing before the activity was scheduled.
    pub fn cancel(&mut self) {
        if let Some(id) = &self.activity_id {
            self.ctx
                .shared()
                .issued
                .push_back(Command::RequestCancelActivityTask {
                    activity_id: id.clone(),
                });
        }
    }
}

/// A durable timer (see [`WfContext::sleep`]).
pub struct TimerFuture {
    ctx: WfContext,
    duration: Duration,
    timer_id: Option<String>,
}

impl TimerFuture {
    /// Cancels the timer (writes TimerCanceled) unless it already fired.
    pub fn cancel(&mut self) {
        let mut shared = self.ctx.shared();
        if let Some(id) = &self.timer_id
            && !shared.fired_timers.contains(id)
        {
            shared.issued.push_back(Command::CancelTimer {
                timer_id: id.clone(),
            });
        }
    }
}

impl Future for TimerFuture {
    type Output = Result<(), WorkflowError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = Pin::into_inner(self);
        let mut shared = this.ctx.shared();
        let id = match &this.timer_id {
            Some(id) => id.clone(),
            None => {
                shared.next_timer_seq += 1;
                let id = shared.next_timer_seq.to_string();
                shared.issued.push_back(Command::StartTimer {
                    timer_id: id.clone(),
                    duration: this.duration,
                });
                this.timer_id = Some(id.clone());
                id
            }
        };
        if shared.fired_timers.contains(&id) {
            Poll::Ready(Ok(()))
        } else if shared.cancel_requested {
            shared
                .issued
                .push_back(Command::CancelTimer { timer_id: id });
            Poll::Ready(Err(WorkflowError::Canceled))
        } else {
            Poll::Pending
        }
    }
}

/// Receives signals of one name (see [`WfContext::signal_channel`]).
pub struct SignalChannel<T> {
    ctx: WfContext,
    name: String,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> SignalChannel<T> {
    /// The next signal, if one has arrived. A signal whose input does not fit `T` is skipped.
    pub fn try_recv(&self) -> Option<T> {
        let mut shared = self.ctx.shared();
        let q = shared.signals.get_mut(&self.name)?;
        while let Some(p) = q.pop_front() {
            if let Ok(v) = p.to_value() {
                return Some(v);
            }
        }
        None
    }

    /// Waits for the next signal.
    pub fn recv(&self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(move |_| match self.try_recv() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        })
    }
}

/// See [`WfContext::wait_condition`].
pub struct WaitCondition<F> {
    condition: F,
}

impl<F: Fn() -> bool> Future for WaitCondition<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        // F is never moved out or pinned structurally.
        if (self.condition)() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn unsafe_free_get_mut<T: Unpin>(p: Pin<&mut T>) -> &mut T {
    Pin::into_inner(p)
}

/// The boxed future of a running workflow.
pub type WorkflowFuture = Pin<Box<dyn Future<Output = Result<Payload, WorkflowError>> + Send>>;

/// Why an activation could not produce commands.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationError {
    Nondeterminism(String),
    Panic(String),
}

/// One workflow run in a worker's memory: its future and where it is in history.
pub struct WorkflowInstance {
    shared: Arc<Mutex<Shared>>,
    future: Option<WorkflowFuture>,
    /// Next history event id to apply.
    cursor: u64,
    polled: bool,
    dirty: bool,
    /// Scheduled event id → activity id, for routing results.
    activities: HashMap<u64, (String, String)>,
    /// Events this instance re-applied from earlier workflow tasks.
    pub replayed_events: u64,
}

impl WorkflowInstance {
    pub fn new(
        info: WorkflowInfo,
        make: impl FnOnce(WfContext) -> WorkflowFuture,
    ) -> WorkflowInstance {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let ctx = WfContext {
            shared: shared.clone(),
            info: Arc::new(info),
        };
        WorkflowInstance {
            shared,
            future: Some(make(ctx)),
            cursor: 1,
            polled: false,
            dirty: true,
            activities: HashMap::new(),
            replayed_events: 0,
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this instance has seen events up to (not including) `next_event_id`.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Polls the workflow future once (inside `catch_unwind`).
    fn poll(&mut self) -> Result<(), ActivationError> {
        self.polled = true;
        self.dirty = false;
        let Some(fut) = self.future.as_mut() else {
            return Ok(());
        };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
        match res {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "workflow code panicked".into());
                self.future = None;
                Err(ActivationError::Panic(msg))
            }
            Ok(Poll::Pending) => Ok(()),
            Ok(Poll::Ready(out)) => {
                self.future = None;
                let cmd = match out {
                    Ok(result) => Command::CompleteWorkflowExecution { result },
                    Err(WorkflowError::Canceled) => Command::CancelWorkflowExecution,
                    Err(WorkflowError::ContinueAsNew(input)) => {
                        Command::ContinueAsNewWorkflowExecution { input }
                    }
                    Err(e) => Command::FailWorkflowExecution {
                        failure: e.into_failure(),
                    },
                };
                self.shared().issued.push_back(cmd);
                Ok(())
            }
        }
    }

    fn nondeterminism(event: &HistoryEvent, issued: Option<&Command>) -> ActivationError {
        let held = format!(
            "{}({})",
            event.event_type(),
            match &event.attributes {
                EventAttributes::ActivityTaskScheduled {
                    activity_type,
                    activity_id,
                    ..
                } => format!("type {activity_type:?}, id {activity_id:?}"),
                other => other.summary(),
            }
        );
        let code = match issued {
            Some(c) => c.describe(),
            None => "no command".to_string(),
        };
        ActivationError::Nondeterminism(format!(
            "[{NONDETERMINISM_CODE}] Nondeterminism error: history event {} is {held}, but the workflow code issued {code}",
            event.event_id
        ))
    }

    /// Applies the history from the cursor on, polling the code at each
    /// recorded workflow task, and returns the commands of the new task.
    pub fn activate(
        &mut self,
        history: &[HistoryEvent],
        task_started_ms: u64,
    ) -> Result<Vec<Command>, ActivationError> {
        let last_completed = history
            .iter()
            .rev()
            .find(|e| matches!(e.attributes, EventAttributes::WorkflowTaskCompleted { .. }))
            .map_or(0, |e| e.event_id);
        let mut in_command_group = false;
        let fresh = !self.polled;
        let start = self.cursor;
        for ev in history.iter().filter(|e| e.event_id >= start) {
            self.cursor = ev.event_id + 1;
            let is_command = matches!(
                ev.attributes,
                EventAttributes::ActivityTaskScheduled { .. }
                    | EventAttributes::TimerStarted { .. }
                    | EventAttributes::TimerCanceled { .. }
                    | EventAttributes::WorkflowExecutionCompleted { .. }
                    | EventAttributes::WorkflowExecutionFailed { .. }
                    | EventAttributes::WorkflowExecutionCanceled { .. }
                    | EventAttributes::WorkflowExecutionContinuedAsNew { .. }
                    | EventAttributes::ActivityTaskCancelRequested { .. }
            );
            if in_command_group && !is_command {
                in_command_group = false;
                let extra = self.shared().issued.front().cloned();
                if let Some(cmd) = extra {
                    return Err(ActivationError::Nondeterminism(format!(
                        "[{NONDETERMINISM_CODE}] Nondeterminism error: the workflow code issued {} which history does not have before event {} ({})",
                        cmd.describe(),
                        ev.event_id,
                        ev.event_type()
                    )));
                }
            }
            if fresh && ev.event_id <= last_completed {
                self.replayed_events += 1;
                self.shared().replaying = true;
            }
            match &ev.attributes {
                EventAttributes::WorkflowTaskStarted { .. } => {
                    self.shared().now_ms = ev.event_time_ms;
                }
                EventAttributes::WorkflowTaskCompleted { .. } => {
                    if self.dirty || !self.polled {
                        self.poll()?;
                    }
                    in_command_group = true;
                }
                EventAttributes::ActivityTaskScheduled {
                    activity_id,
                    activity_type,
                    ..
                } => {
                    let issued = self.shared().issued.pop_front();
                    match &issued {
                        Some(Command::ScheduleActivity {
                            activity_id: id,
                            activity_type: ty,
                            ..
                        }) if id == activity_id && ty == activity_type => {
                            self.activities
                                .insert(ev.event_id, (activity_id.clone(), activity_type.clone()));
                        }
                        other => return Err(Self::nondeterminism(ev, other.as_ref())),
                    }
                }
                EventAttributes::TimerStarted { timer_id, .. } => {
                    let issued = self.shared().issued.pop_front();
                    match &issued {
                        Some(Command::StartTimer { timer_id: id, .. }) if id == timer_id => {}
                        other => return Err(Self::nondeterminism(ev, other.as_ref())),
                    }
                }
                EventAttributes::TimerCanceled { timer_id, .. } => {
                    let issued = self.shared().issued.pop_front();
                    match &issued {
                        Some(Command::CancelTimer { timer_id: id }) if id == timer_id => {}
                        other => return Err(Self::nondeterminism(ev, other.as_ref())),
                    }
                }
                EventAttributes::WorkflowExecutionCancelRequested { .. } => {
                    self.shared().cancel_requested = true;
                    self.dirty = true;
                }
                EventAttributes::ActivityTaskCancelRequested {
                    scheduled_event_id, ..
                } => {
                    let issued = self.shared().issued.pop_front();
                    let expected = self.activities.get(scheduled_event_id).map(|(id, _)| id);
                    match &issued {
                        Some(Command::RequestCancelActivityTask { activity_id })
                            if Some(activity_id) == expected => {}
                        other => return Err(Self::nondeterminism(ev, other.as_ref())),
                    }
                }
                EventAttributes::ActivityTaskCanceled {
                    scheduled_event_id,
                    started_event_id,
                    identity,
                } => {
                    let failure = Failure {
                        message: "activity canceled".into(),
                        source: String::new(),
                        cause: None,
                        info: FailureInfo::Canceled,
                    };
                    self.resolve_failure(
                        &failure,
                        *scheduled_event_id,
                        *started_event_id,
                        identity,
                        RetryState::CancelRequested,
                    );
                }
                EventAttributes::WorkflowExecutionContinuedAsNew { .. } => {
                    let issued = self.shared().issued.pop_front();
                    if !matches!(issued, Some(Command::ContinueAsNewWorkflowExecution { .. })) {
                        return Err(Self::nondeterminism(ev, issued.as_ref()));
                    }
                }
                EventAttributes::WorkflowExecutionCanceled { .. } => {
                    let issued = self.shared().issued.pop_front();
                    if !matches!(issued, Some(Command::CancelWorkflowExecution)) {
                        return Err(Self::nondeterminism(ev, issued.as_ref()));
                    }
                }
                EventAttributes::TimerFired { timer_id, .. } => {
                    self.shared().fired_timers.insert(timer_id.clone());
                    self.dirty = true;
                }
                EventAttributes::WorkflowExecutionSignaled {
                    signal_name, input, ..
                } => {
                    self.shared()
                        .signals
                        .entry(signal_name.clone())
                        .or_default()
                        .push_back(input.clone());
                    self.dirty = true;
                }
                EventAttributes::WorkflowExecutionCompleted { .. } => {
                    let issued = self.shared().issued.pop_front();
                    if !matches!(issued, Some(Command::CompleteWorkflowExecution { .. })) {
                        return Err(Self::nondeterminism(ev, issued.as_ref()));
                    }
                }
                EventAttributes::WorkflowExecutionFailed { .. } => {
                    let issued = self.shared().issued.pop_front();
                    if !matches!(issued, Some(Command::FailWorkflowExecution { .. })) {
                        return Err(Self::nondeterminism(ev, issued.as_ref()));
                    }
                }
                EventAttributes::ActivityTaskCompleted {
                    result,
                    scheduled_event_id,
                    ..
                } => {
                    if let Some((id, _)) = self.activities.get(scheduled_event_id) {
                        let id = id.clone();
                        self.shared().results.insert(id, Ok(result.clone()));
                        self.dirty = true;
                    }
                }
                EventAttributes::ActivityTaskFailed {
                    failure,
                    scheduled_event_id,
                    started_event_id,
                    identity,
                    retry_state,
                } => self.resolve_failure(
                    failure,
                    *scheduled_event_id,
                    *started_event_id,
                    identity,
                    *retry_state,
                ),
                EventAttributes::ActivityTaskTimedOut {
                    failure,
                    scheduled_event_id,
                    started_event_id,
                    retry_state,
                } => self.resolve_failure(
                    failure,
                    *scheduled_event_id,
                    *started_event_id,
                    "",
                    *retry_state,
                ),
                _ => {}
            }
        }
        // Commands issued at a recorded task that history does not have.
        if let Some(cmd) = self.shared().issued.front().cloned() {
            return Err(ActivationError::Nondeterminism(format!(
                "[{NONDETERMINISM_CODE}] Nondeterminism error: the workflow code issued {} which history does not have after event {}",
                cmd.describe(),
                self.cursor - 1
            )));
        }
        {
            let mut s = self.shared();
            s.replaying = false;
            s.now_ms = task_started_ms;
        }
        if self.dirty || !self.polled {
            self.poll()?;
        }
        // They stay queued: the next task's history must hold them, in order.
        Ok(self.shared().issued.iter().cloned().collect())
    }

    /// Resolves an activity future with its final failure, wrapped as Temporal wraps it.
    fn resolve_failure(
        &mut self,
        failure: &Failure,
        scheduled_event_id: u64,
        started_event_id: u64,
        identity: &str,
        retry_state: RetryState,
    ) {
        let Some((id, ty)) = self.activities.get(&scheduled_event_id) else {
            return;
        };
        let message = if failure.timeout_type().is_some() {
            "Activity task timed out"
        } else if matches!(failure.info, FailureInfo::Canceled) {
            "Activity task canceled"
        } else {
            "Activity task failed"
        };
        let err = ActivityError {
            failure: Failure {
                message: message.into(),
                source: String::new(),
                cause: Some(Box::new(failure.clone())),
                info: FailureInfo::Activity {
                    scheduled_event_id,
                    started_event_id,
                    identity: identity.to_string(),
                    activity_type: ty.clone(),
                    activity_id: id.clone(),
                    retry_state,
                },
            },
        };
        let id = id.clone();
        self.shared().results.insert(id, Err(err));
        self.dirty = true;
    }

    /// Answers a query from the instance's state.
    pub fn query(&self, name: &str, args: Payload) -> Result<Payload, String> {
        let handler = {
            let shared = self.shared();
            match shared.queries.get(name) {
                Some(h) => h.clone(),
                None => {
                    let known: Vec<_> = shared.queries.keys().cloned().collect();
                    return Err(format!(
                        "Query handler for '{name}' expected but not found, known queries: [{}]",
                        known.join(" ")
                    ));
                }
            }
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler(args))) {
            Ok(r) => r,
            Err(_) => Err(format!("query handler '{name}' panicked")),
        }
    }

    /// True once the code has returned.
    pub fn is_finished(&self) -> bool {
        self.future.is_none()
    }
}
