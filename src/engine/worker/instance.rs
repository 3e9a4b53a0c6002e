//! The replay machine: one workflow run in a worker's memory, driven from
//! its history. Each command the code issues is matched, in order, against
//! the events recorded after each WorkflowTaskCompleted; results recorded
//! in history resolve the code's futures without calling anything again.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use super::workflow::{
    ActivityError, NONDETERMINISM_CODE, Shared, WfContext, WorkflowError, WorkflowInfo,
    canceled_activity_error,
};
use crate::engine::history::{
    EventAttributes, Failure, FailureInfo, HistoryEvent, Payload, RetryState,
};
use crate::engine::state::Command;

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
        self.shared().polls += 1;
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
                let cancel_requested = self.shared().cancel_requested;
                let cmd = match out {
                    Ok(result) => Command::CompleteWorkflowExecution { result },
                    // Ended by a cancellation after a cancel request: Canceled, not Failed.
                    Err(e) if e.is_cancellation() && cancel_requested => {
                        Command::CancelWorkflowExecution
                    }
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
                            self.shared()
                                .scheduled_ids
                                .insert(activity_id.clone(), ev.event_id);
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
                    let mut shared = self.shared();
                    if !shared.cancel_requested {
                        shared.cancel_requested = true;
                        shared.cancel_delivery_poll = Some(shared.polls + 1);
                    }
                    drop(shared);
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
                    details,
                    ..
                } => {
                    if let Some((id, ty)) = self.activities.get(scheduled_event_id) {
                        let err = canceled_activity_error(
                            id,
                            ty,
                            *scheduled_event_id,
                            *started_event_id,
                            identity,
                            details.as_ref(),
                        );
                        self.deliver(id.clone(), Err(err));
                    }
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
                        self.deliver(id.clone(), Ok(result.clone()));
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
        self.deliver(id, Err(err));
    }

    /// Hands an activity's outcome to the code awaiting it, unless the code
    /// stopped waiting (it resolved as canceled already).
    fn deliver(&mut self, id: String, outcome: Result<Payload, ActivityError>) {
        let mut shared = self.shared();
        if shared.detached.remove(&id) {
            return;
        }
        shared.results.insert(id, outcome);
        drop(shared);
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
