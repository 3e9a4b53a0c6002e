//! A new run's state and first events (WorkflowExecutionStarted and the
//! first WorkflowTaskScheduled), for a start and for a continue-as-new.

use std::time::Duration;

use super::{Effect, RunState, TimerKey, Transition};
use crate::engine::history::{EventAttributes, Payload};

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
    if let Some(first) = &spec.first_execution_run_id {
        run.first_execution_run_id = first.clone();
    }
    run.first_workflow_task_backoff = spec.first_workflow_task_backoff;
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
            .retain(|e| !matches!(e, Effect::EnqueueWorkflowTask { .. }));
        if let Some(w) = run.workflow_task.as_mut() {
            w.not_before_ms = now + backoff_ms;
        }
        tr.effects.push(Effect::Timer {
            at_ms: now + backoff_ms,
            key: TimerKey::WorkflowTaskRetry { seq, attempt: 1 },
        });
    }
    if let Some(at_ms) = expiration_ms {
        tr.effects.push(Effect::Timer {
            at_ms,
            key: TimerKey::WorkflowExpiration { seq },
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
