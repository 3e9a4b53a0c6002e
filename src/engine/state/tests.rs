//! Unit tests of the transitions, on histories built by hand.

use super::*;
use crate::engine::history::{EventType, RetryPolicy, WorkflowTaskFailedCause};

fn new_run() -> (RunState, Transition) {
    let mut run = RunState::new(1, "wf", "run", "T", "q", 0, Duration::from_secs(10));
    let mut tr = Transition::default();
    run.append(
        &mut tr,
        0,
        EventAttributes::WorkflowExecutionStarted {
            workflow_id: "wf".into(),
            workflow_type: "T".into(),
            task_queue: "q".into(),
            input: Payload("null".into()),
            workflow_task_timeout: Duration::from_secs(10),
            original_execution_run_id: "run".into(),
            first_execution_run_id: "run".into(),
            identity: "test".into(),
            attempt: 1,
            workflow_execution_timeout: Duration::ZERO,
            workflow_run_timeout: Duration::ZERO,
            workflow_execution_expiration_time_ms: None,
            continued_execution_run_id: None,
            first_workflow_task_backoff: Duration::ZERO,
        },
    );
    run.schedule_workflow_task(&mut tr, 0);
    (run, tr)
}

fn types(tr: &Transition) -> Vec<EventType> {
    tr.events.iter().map(|e| e.event_type()).collect()
}

fn schedule(id: &str, opts: ActivityOptions) -> Command {
    Command::ScheduleActivity {
        activity_id: id.into(),
        activity_type: "act".into(),
        input: Payload("1".into()),
        options: opts,
    }
}

fn stc() -> ActivityOptions {
    ActivityOptions {
        start_to_close_timeout: Some(Duration::from_secs(5)),
        ..ActivityOptions::default()
    }
}

/// Completing a workflow task writes its deferred Started event, Completed,
/// then one event per command, and dispatches the activity after commit.
#[test]
fn workflow_task_completion_writes_started_completed_and_commands() {
    let (mut run, tr) = new_run();
    assert_eq!(
        types(&tr),
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled
        ]
    );
    run.start_workflow_task("w", 10, 7);
    let mut tr = Transition::default();
    let _ = run.complete_workflow_task(&mut tr, 20, "w", vec![schedule("1", stc())]);
    assert_eq!(
        types(&tr),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::ActivityTaskScheduled
        ]
    );
    assert_eq!(
        tr.events[0].event_time_ms, 10,
        "Started carries the start time"
    );
    assert!(
        tr.effects
            .iter()
            .any(|e| matches!(e, Effect::EnqueueActivity { .. }))
    );
    assert_eq!(run.activities.len(), 1);
    assert!(run.workflow_task.is_none());
}

/// An activity result arriving while a workflow task runs is buffered and
/// written after that task's events, with a new workflow task.
#[test]
fn events_during_a_workflow_task_are_buffered() {
    let (mut run, _) = new_run();
    run.start_workflow_task("w", 0, 1);
    let mut tr = Transition::default();
    let _ = run.complete_workflow_task(
        &mut tr,
        0,
        "w",
        vec![schedule("1", stc()), schedule("2", stc())],
    );
    // activity 1 completes, a task runs; activity 2 completes during it
    run.start_activity(0, "w", 1);
    let mut tr = Transition::default();
    run.complete_activity(&mut tr, 2, 0, "w", Payload("1".into()));
    run.start_workflow_task("w", 3, 2);
    run.start_activity(0, "w", 3);
    let mut tr = Transition::default();
    run.complete_activity(&mut tr, 4, 0, "w", Payload("2".into()));
    assert!(tr.events.is_empty(), "nothing appended while the task runs");
    assert_eq!(run.buffered.len(), 2);
    let mut tr = Transition::default();
    let _ = run.complete_workflow_task(&mut tr, 5, "w", vec![]);
    assert_eq!(
        types(&tr),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
            EventType::WorkflowTaskScheduled
        ]
    );
    let EventAttributes::ActivityTaskCompleted {
        started_event_id, ..
    } = tr.events[3].attributes
    else {
        unreachable!()
    };
    assert_eq!(started_event_id, tr.events[2].event_id);
}

/// An activity with neither start-to-close nor schedule-to-close fails
/// the workflow task with Temporal's cause and message.
#[test]
fn activity_without_timeouts_fails_the_workflow_task() {
    let (mut run, _) = new_run();
    run.start_workflow_task("w", 0, 1);
    let mut tr = Transition::default();
    let _ = run.complete_workflow_task(
        &mut tr,
        0,
        "w",
        vec![schedule("1", ActivityOptions::default())],
    );
    let EventAttributes::WorkflowTaskFailed { cause, failure, .. } = &tr.events[1].attributes
    else {
        panic!("{:?}", types(&tr))
    };
    assert_eq!(
        *cause,
        WorkflowTaskFailedCause::BadScheduleActivityAttributes
    );
    assert!(
        failure
            .message
            .starts_with("a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set")
    );
    assert!(run.activities.is_empty());
}

/// Schedule-to-close bounds the other timeouts, as Temporal normalizes them.
#[test]
fn timeouts_are_normalized() {
    let o = ActivityOptions {
        schedule_to_close_timeout: Some(Duration::from_secs(5)),
        start_to_close_timeout: Some(Duration::from_secs(30)),
        heartbeat_timeout: Some(Duration::from_secs(60)),
        ..ActivityOptions::default()
    };
    let (t, p) = o.normalize("1", "a").unwrap();
    assert_eq!(t.schedule_to_start, Duration::from_secs(5));
    assert_eq!(t.start_to_close, Duration::from_secs(5));
    assert_eq!(t.heartbeat, Duration::from_secs(5));
    assert_eq!(p, RetryPolicy::default());
}
