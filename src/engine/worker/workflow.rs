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
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::history::RetryPolicy;
use crate::engine::history::{Failure, FailureInfo};
use crate::engine::history::{Payload, RetryState};
use crate::engine::state::{ActivityCancellationType, ActivityOptions, Command};

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
pub(super) struct Shared {
    pub(super) now_ms: u64,
    pub(super) replaying: bool,
    pub(super) next_activity_seq: u64,
    pub(super) next_timer_seq: u64,
    /// Issued, not yet matched to a history event.
    pub(super) issued: VecDeque<Command>,
    pub(super) results: HashMap<String, Result<Payload, ActivityError>>,
    pub(super) fired_timers: std::collections::HashSet<String>,
    pub(super) signals: HashMap<String, VecDeque<Payload>>,
    pub(super) queries: std::collections::BTreeMap<String, QueryHandler>,
    pub(super) cancel_requested: bool,
    /// How many times the code was polled; futures note when they were issued.
    pub(super) polls: u64,
    /// The poll that delivers the run's cancel request to whatever the code
    /// awaits then (once, as an asyncio cancel does on Temporal's Python SDK).
    pub(super) cancel_delivery_poll: Option<u64>,
    /// Activities already resolved as canceled (TRY_CANCEL, ABANDON): what
    /// history says of them later no longer reaches the code.
    pub(super) detached: std::collections::HashSet<String>,
    /// Activity id → its ActivityTaskScheduled event id, once known.
    pub(super) scheduled_ids: HashMap<String, u64>,
}

impl Shared {
    /// Whether a future issued at poll `issued_at` must now take the run's
    /// cancel request: it was waiting when the request arrived.
    pub(super) fn delivers_cancel_to(&self, issued_at: u64) -> bool {
        self.cancel_delivery_poll
            .is_some_and(|p| p == self.polls && issued_at < p)
    }
}

/// What workflow code uses to act: run activities, read workflow time.
#[derive(Clone)]
pub struct WfContext {
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) info: Arc<WorkflowInfo>,
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
    /// crashes. If the run's cancellation is requested while the code awaits
    /// it, the timer is canceled (TimerCanceled) and it resolves to
    /// `Err(WorkflowError::Canceled)`.
    pub fn sleep(&self, d: Duration) -> TimerFuture {
        TimerFuture {
            ctx: self.clone(),
            duration: d,
            timer_id: None,
            issued_at_poll: 0,
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

    /// Resolves once `condition` holds (re-checked whenever new events
    /// arrive), or with `Err(WorkflowError::Canceled)` if the run's
    /// cancellation is requested while the code waits.
    pub fn wait_condition<F: Fn() -> bool>(&self, condition: F) -> WaitCondition<F> {
        WaitCondition {
            ctx: self.clone(),
            condition,
            first_polled: None,
        }
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
            cancellation_type: options.cancellation_type,
            options: Some(options),
            activity_id: None,
            issued_at_poll: 0,
            cancel_sent: false,
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
    /// What awaiting code sees if the activity is canceled (default TRY_CANCEL).
    pub fn cancellation(mut self, t: ActivityCancellationType) -> Self {
        self.cancellation_type = t;
        self
    }
}

/// Resolves when the activity closes (from a live result or from history).
pub struct ActivityFuture<O> {
    ctx: WfContext,
    activity_type: String,
    input: Option<Result<Payload, ActivityError>>,
    options: Option<ActivityOptions>,
    cancellation_type: ActivityCancellationType,
    activity_id: Option<String>,
    issued_at_poll: u64,
    cancel_sent: bool,
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
        let ctx = this.ctx.clone();
        let mut shared = ctx.shared();
        let id = this.activity_id.clone().unwrap_or_default();
        if !shared.results.contains_key(&id)
            && !this.cancel_sent
            && shared.delivers_cancel_to(this.issued_at_poll)
        {
            this.request_cancel(&mut shared);
        }
        match shared.results.remove(&id) {
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
                self.issued_at_poll = shared.polls;
                self.activity_id = Some(id);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Cancels the activity as its cancellation type says: TRY_CANCEL
    /// requests it (ActivityTaskCancelRequested) and resolves at once with a
    /// canceled error; WAIT_CANCELLATION_COMPLETED requests it and waits for
    /// the activity to close (a heartbeating one learns of it, one that does
    /// not may still complete); ABANDON resolves at once and asks nothing.
    /// Does nothing before the activity was issued, or once it resolved.
    pub fn cancel(&mut self) {
        if self.cancel_sent {
            return;
        }
        let ctx = self.ctx.clone();
        let mut shared = ctx.shared();
        let id = self.activity_id.clone().unwrap_or_default();
        if self.activity_id.is_some() && !shared.results.contains_key(&id) {
            self.request_cancel(&mut shared);
        }
    }

    fn request_cancel(&mut self, shared: &mut Shared) {
        let Some(id) = self.activity_id.clone() else {
            return;
        };
        self.cancel_sent = true;
        if self.cancellation_type != ActivityCancellationType::Abandon {
            shared.issued.push_back(Command::RequestCancelActivityTask {
                activity_id: id.clone(),
            });
        }
        if self.cancellation_type != ActivityCancellationType::WaitCancellationCompleted {
            let scheduled = shared.scheduled_ids.get(&id).copied().unwrap_or(0);
            let error = canceled_activity_error(&id, &self.activity_type, scheduled, 0, "", None);
            shared.results.insert(id.clone(), Err(error));
            shared.detached.insert(id);
        }
    }
}

/// The error awaiting code sees for a canceled activity: "Activity task
/// canceled" wrapping a canceled failure, retry state CANCEL_REQUESTED.
pub(super) fn canceled_activity_error(
    activity_id: &str,
    activity_type: &str,
    scheduled_event_id: u64,
    started_event_id: u64,
    identity: &str,
    details: Option<&Payload>,
) -> ActivityError {
    ActivityError {
        failure: Failure {
            message: "Activity task canceled".into(),
            source: String::new(),
            cause: Some(Box::new(Failure::canceled(details.cloned()))),
            info: FailureInfo::Activity {
                scheduled_event_id,
                started_event_id,
                identity: identity.to_string(),
                activity_type: activity_type.to_string(),
                activity_id: activity_id.to_string(),
                retry_state: RetryState::CancelRequested,
            },
        },
    }
}

/// A durable timer (see [`WfContext::sleep`]).
pub struct TimerFuture {
    ctx: WfContext,
    duration: Duration,
    timer_id: Option<String>,
    issued_at_poll: u64,
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
                this.issued_at_poll = shared.polls;
                id
            }
        };
        if shared.fired_timers.contains(&id) {
            Poll::Ready(Ok(()))
        } else if shared.delivers_cancel_to(this.issued_at_poll) {
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

    /// Waits for the next signal. If the run's cancellation is requested
    /// while the code waits here, resolves to `Err(WorkflowError::Canceled)`
    /// (as a Temporal SDK's wait raises a cancellation).
    pub fn recv(&self) -> impl Future<Output = Result<T, WorkflowError>> + '_ {
        let mut first_polled: Option<u64> = None;
        std::future::poll_fn(move |_| {
            if let Some(v) = self.try_recv() {
                return Poll::Ready(Ok(v));
            }
            let shared = self.ctx.shared();
            let at = *first_polled.get_or_insert(shared.polls);
            if shared.delivers_cancel_to(at) {
                Poll::Ready(Err(WorkflowError::Canceled))
            } else {
                Poll::Pending
            }
        })
    }
}

/// See [`WfContext::wait_condition`].
pub struct WaitCondition<F> {
    ctx: WfContext,
    condition: F,
    first_polled: Option<u64>,
}

// Nothing in it is pinned structurally: F is only called.
impl<F> Unpin for WaitCondition<F> {}

impl<F: Fn() -> bool> Future for WaitCondition<F> {
    type Output = Result<(), WorkflowError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if (this.condition)() {
            return Poll::Ready(Ok(()));
        }
        let shared = this.ctx.shared();
        let at = *this.first_polled.get_or_insert(shared.polls);
        if shared.delivers_cancel_to(at) {
            Poll::Ready(Err(WorkflowError::Canceled))
        } else {
            Poll::Pending
        }
    }
}

fn unsafe_free_get_mut<T: Unpin>(p: Pin<&mut T>) -> &mut T {
    Pin::into_inner(p)
}

pub use super::instance::{ActivationError, WorkflowFuture, WorkflowInstance};
