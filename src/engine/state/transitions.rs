//! One unit test per transition, each on a run built step by step by
//! [`RunBuilder`] (as sdk-core's `TestHistoryBuilder` builds histories):
//! every step is one pure transition; the test asserts the events it
//! wrote, the effects it asked for and the state it left. No IO.

use std::time::Duration;

use super::start::{NewRun, build_run};
use super::*;
use crate::engine::history::{
    EventType, Failure, RetryPolicy, TimeoutType, WorkflowTaskFailedCause,
};

const SEQ: u64 = 7;

/// A run and everything that happened to it, one transition at a time.
struct RunBuilder {
    run: RunState,
    history: Vec<HistoryEvent>,
    /// The latest step's transition.
    last: Transition,
    now: u64,
    requests: u64,
}

impl RunBuilder {
    /// A run just started: WorkflowExecutionStarted, WorkflowTaskScheduled.
    fn started() -> Self {
        let spec = NewRun {
            workflow_id: "wf".into(),
            workflow_type: "T".into(),
            task_queue: "q".into(),
            input: Payload("1".into()),
            identity: "client".into(),
            task_timeout: Duration::from_secs(10),
            execution_timeout: None,
            run_timeout: None,
            continued_execution_run_id: None,
            first_execution_run_id: None,
            first_workflow_task_backoff: Duration::ZERO,
        };
        let (run, tr) = build_run(SEQ, 0, spec);
        RunBuilder {
            run,
            history: tr.events.clone(),
            last: tr,
            now: 0,
            requests: 0,
        }
    }

    /// Moves the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = ms;
        self
    }

    /// Applies one transition.
    fn step(&mut self, f: impl FnOnce(&mut RunState, &mut Transition, u64)) -> &mut Self {
        let mut tr = Transition::default();
        f(&mut self.run, &mut tr, self.now);
        self.history.extend(tr.events.iter().cloned());
        self.last = tr;
        self
    }

    fn take_task(&mut self) -> &mut Self {
        self.requests += 1;
        let (now, request) = (self.now, self.requests);
        let timer = self.run.start_workflow_task("w", now, request);
        assert!(timer.is_some(), "a workflow task was there to take");
        self
    }

    fn complete_task(&mut self, commands: Vec<Command>) -> &mut Self {
        self.take_task();
        self.step(|r, tr, now| {
            let _ = r.complete_workflow_task(tr, now, "w", commands);
        })
    }

    fn schedule(&mut self, id: &str, policy: RetryPolicy) -> &mut Self {
        let opts = ActivityOptions {
            start_to_close_timeout: Some(Duration::from_secs(5)),
            retry_policy: Some(policy),
            ..ActivityOptions::default()
        };
        self.complete_task(vec![Command::ScheduleActivity {
            activity_id: id.into(),
            activity_type: "deposit".into(),
            input: Payload("250".into()),
            options: opts,
        }])
    }

    fn start_attempt(&mut self) -> Vec<Effect> {
        let now = self.now;
        self.run.start_activity(0, "worker-A", now)
    }

    fn fail_attempt(&mut self, message: &str) -> &mut Self {
        let failure = Failure::application("DepositError", message, false);
        self.step(|r, tr, now| r.fail_activity_attempt(tr, now, 0, failure, Some("worker-A")))
    }

    fn types(&self) -> Vec<EventType> {
        self.last.events.iter().map(|e| e.event_type()).collect()
    }

    fn activity(&self) -> &ActivityState {
        &self.run.activities[0]
    }

    fn history_is_numbered(&self) -> bool {
        self.history
            .iter()
            .enumerate()
            .all(|(i, e)| e.event_id == i as u64 + 1)
    }
}

fn policy(maximum_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        maximum_attempts,
        ..RetryPolicy::default()
    }
}

fn enqueues_workflow_task(tr: &Transition) -> bool {
    tr.effects
        .iter()
        .any(|e| matches!(e, Effect::EnqueueWorkflowTask { seq: SEQ, .. }))
}

/// A start writes WorkflowExecutionStarted and the first
/// WorkflowTaskScheduled, and dispatches that task once durable.
#[test]
fn start() {
    let b = RunBuilder::started();
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled
        ]
    );
    assert!(enqueues_workflow_task(&b.last));
    assert_eq!(b.run.status, WorkflowExecutionStatus::Running);
}

/// Taking a workflow task writes nothing yet (Started is written with the
/// task's outcome) and arms its start-to-close timeout.
#[test]
fn workflow_task_taken() {
    let mut b = RunBuilder::started();
    b.at(100);
    let timer = b.run.start_workflow_task("w", 100, 1);
    assert!(matches!(
        timer,
        Some(Effect::Timer {
            at_ms: 10_100,
            key: TimerKey::WorkflowTaskTimeout { seq: SEQ, .. }
        })
    ));
    assert!(b.run.workflow_task.as_ref().unwrap().started.is_some());
    assert_eq!(b.run.history_length(), 2, "nothing written by taking it");
}

/// A failed first attempt is recorded (Started, Failed); the retry is
/// transient: the second failure writes nothing.
#[test]
fn workflow_task_failed() {
    let mut b = RunBuilder::started();
    b.take_task();
    let failure = || Failure::application("Panic", "boom", false);
    b.step(|r, tr, now| {
        r.fail_workflow_task(
            tr,
            now,
            "w",
            WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
            failure(),
        )
    });
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed
        ]
    );
    assert_eq!(b.run.workflow_task.as_ref().unwrap().attempt, 2);
    b.take_task();
    b.step(|r, tr, now| {
        r.fail_workflow_task(
            tr,
            now,
            "w",
            WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
            failure(),
        )
    });
    assert!(b.types().is_empty(), "attempt 2 is not written");
    assert_eq!(b.run.workflow_task.as_ref().unwrap().attempt, 3);
}

/// A workflow task that outlives its timeout: Started, TimedOut
/// (StartToClose), and a new task.
#[test]
fn workflow_task_timed_out() {
    let mut b = RunBuilder::started();
    b.take_task();
    b.at(10_000)
        .step(|r, tr, now| r.time_out_workflow_task(tr, now));
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskTimedOut
        ]
    );
    assert!(b.run.workflow_task.is_some(), "scheduled again");
}

/// An attempt's start writes no event; it records the worker, arms the
/// start-to-close timeout and opens an attempt record.
#[test]
fn activity_started() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0)).at(50);
    let effects = b.start_attempt();
    assert!(matches!(
        effects[0],
        Effect::Timer {
            at_ms: 5_050,
            key: TimerKey::ActivityStartToClose { attempt: 1, .. }
        }
    ));
    let a = b.activity();
    assert_eq!(a.state, PendingActivityState::Started);
    assert_eq!(a.last_worker_identity, "worker-A");
    assert_eq!(a.attempts.len(), 1);
    assert_eq!(a.attempts[0].outcome, AttemptOutcome::Running);
    assert_eq!(a.attempts[0].started_time_ms, Some(50));
}

/// A retryable failure writes no event: the attempt count, the failure
/// and the next attempt's time live in the pending activity, and a timer
/// dispatches the next attempt after the backoff.
#[test]
fn activity_attempt_failed_and_retried() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    b.start_attempt();
    b.at(300).fail_attempt("This deposit has failed.");
    assert!(b.types().is_empty(), "retries are not events");
    let a = b.activity();
    assert_eq!((a.attempt, a.state), (2, PendingActivityState::Scheduled));
    assert_eq!(a.next_attempt_schedule_time_ms, Some(1_300));
    assert_eq!(a.current_retry_interval, Some(Duration::from_secs(1)));
    assert_eq!(a.attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(a.attempts[0].ended_time_ms, Some(300));
    assert_eq!(a.attempts[0].next_attempt_time_ms, Some(1_300));
    assert!(b.last.effects.iter().any(|e| matches!(
        e,
        Effect::Timer {
            at_ms: 1_300,
            key: TimerKey::ActivityRetry { attempt: 2, .. }
        }
    )));
    assert!(b.run.has_activity_retrying());
}

/// The last allowed attempt fails: Started (its attempt, the previous
/// failure) and Failed are written together, and a workflow task follows.
#[test]
fn activity_failed_for_good() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(2));
    b.start_attempt();
    b.fail_attempt("first");
    b.at(1_000);
    b.start_attempt();
    b.fail_attempt("second");
    assert_eq!(
        b.types(),
        [
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskFailed,
            EventType::WorkflowTaskScheduled
        ]
    );
    match &b.last.events[0].attributes {
        EventAttributes::ActivityTaskStarted {
            attempt,
            last_failure,
            ..
        } => {
            assert_eq!(*attempt, 2);
            assert_eq!(last_failure.as_ref().unwrap().message, "first");
        }
        other => panic!("{other:?}"),
    }
    assert!(b.run.activities.is_empty());
    assert!(b.history_is_numbered());
}

/// A result writes Started and Completed and schedules a workflow task.
#[test]
fn activity_completed() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    b.start_attempt();
    b.step(|r, tr, now| r.complete_activity(tr, now, 0, "worker-A", Payload("\"ok\"".into())));
    assert_eq!(
        b.types(),
        [
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
            EventType::WorkflowTaskScheduled
        ]
    );
    assert!(b.run.activities.is_empty());
}

/// "Retry now" dispatches the waiting attempt at once, same attempt number;
/// an activity not in backoff is refused.
#[test]
fn activity_retried_now() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    let err = b
        .run
        .retry_activity_now(&mut Transition::default(), 0, None);
    assert!(err.is_err(), "not waiting for a retry yet");
    b.start_attempt();
    b.fail_attempt("down");
    b.at(200);
    let mut tr = Transition::default();
    assert_eq!(
        b.run.retry_activity_now(&mut tr, 200, None).as_deref(),
        Ok("1")
    );
    assert!(tr.events.is_empty());
    assert!(matches!(
        tr.effects[0],
        Effect::EnqueueActivity { attempt: 2, .. }
    ));
    assert_eq!(b.activity().next_attempt_schedule_time_ms, Some(200));
}

/// A timer fires once: TimerFired and a workflow task.
#[test]
fn timer_fired() {
    let mut b = RunBuilder::started();
    b.complete_task(vec![Command::StartTimer {
        timer_id: "t".into(),
        duration: Duration::from_secs(60),
    }]);
    let started = b.history.last().unwrap().event_id;
    assert!(b.last.effects.iter().any(|e| matches!(
        e,
        Effect::Timer {
            at_ms: 60_000,
            key: TimerKey::UserTimer { .. }
        }
    )));
    let mut fired = false;
    b.at(60_000)
        .step(|r, tr, now| fired = r.fire_timer(tr, now, started));
    assert!(fired);
    assert_eq!(
        b.types(),
        [EventType::TimerFired, EventType::WorkflowTaskScheduled]
    );
    let mut again = true;
    b.step(|r, tr, now| again = r.fire_timer(tr, now, started));
    assert!(!again, "a timer fires once");
}

/// A signal to an idle run: Signaled and a workflow task to deliver it.
#[test]
fn signaled() {
    let mut b = RunBuilder::started();
    b.complete_task(vec![]);
    b.step(|r, tr, now| r.signal(tr, now, "approve", Payload("true".into()), "cli"));
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled
        ]
    );
}

/// A cancel request is recorded and delivered by a workflow task; the run
/// stays open until its code decides.
#[test]
fn cancel_requested() {
    let mut b = RunBuilder::started();
    b.complete_task(vec![]);
    b.step(|r, tr, now| r.request_cancel(tr, now, "cli"));
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowExecutionCancelRequested,
            EventType::WorkflowTaskScheduled
        ]
    );
    assert!(b.run.is_running());
}

/// Terminate closes the run at once: nothing runs again (what was pending
/// stays listed for describe, with no next attempt).
#[test]
fn terminated() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    b.step(|r, tr, now| r.terminate(tr, now, "enough", "cli"));
    assert_eq!(b.types(), [EventType::WorkflowExecutionTerminated]);
    assert_eq!(b.run.status, WorkflowExecutionStatus::Terminated);
    assert!(b.run.workflow_task.is_none());
    // Still listed, as Temporal's describe shows it, with nothing next.
    assert_eq!(b.run.activities.len(), 1);
    assert_eq!(b.activity().next_attempt_schedule_time_ms, None);
    assert!(b.last.effects.contains(&Effect::Closed { seq: SEQ }));
    assert!(!b.run.has_activity_retrying());
}

/// The execution timeout closes the run TimedOut.
#[test]
fn timed_out() {
    let mut b = RunBuilder::started();
    b.step(|r, tr, now| r.time_out(tr, now));
    assert_eq!(b.types(), [EventType::WorkflowExecutionTimedOut]);
    assert_eq!(b.run.status, WorkflowExecutionStatus::TimedOut);
}

/// Continue-as-new closes this run and hands the engine the next run's input.
#[test]
fn continued_as_new() {
    let mut b = RunBuilder::started();
    b.complete_task(vec![Command::ContinueAsNewWorkflowExecution {
        input: Payload("2".into()),
    }]);
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::WorkflowExecutionContinuedAsNew
        ]
    );
    assert_eq!(b.run.status, WorkflowExecutionStatus::ContinuedAsNew);
    assert_eq!(b.last.continue_as_new, Some(Payload("2".into())));
}

/// Canceling an activity that is waiting (not running) cancels it at once,
/// and a workflow task delivers that.
#[test]
fn activity_cancel_requested_while_scheduled() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    // Something wakes the workflow (here a signal) and it cancels the activity.
    b.step(|r, tr, now| r.signal(tr, now, "stop", Payload("null".into()), "cli"));
    b.complete_task(vec![Command::RequestCancelActivityTask {
        activity_id: "1".into(),
    }]);
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::ActivityTaskCancelRequested,
            EventType::ActivityTaskCanceled,
            EventType::WorkflowTaskScheduled
        ]
    );
    assert!(b.run.activities.is_empty());
    assert!(b.history_is_numbered());
}

/// An attempt that outlives its start-to-close timeout is retried like a
/// failure; its record says it timed out.
#[test]
fn attempt_timed_out() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    b.start_attempt();
    let failure = Failure::activity_timeout(TimeoutType::StartToClose);
    b.at(5_000)
        .step(|r, tr, now| r.fail_activity_attempt(tr, now, 0, failure, None));
    assert!(b.types().is_empty());
    let r = &b.activity().attempts[0];
    assert_eq!(
        r.outcome,
        AttemptOutcome::TimedOut(TimeoutType::StartToClose)
    );
    assert_eq!(r.ended_time_ms, Some(5_000));
    assert_eq!(b.activity().attempt, 2);
}

/// Canceling an activity that is not running in the task that closes the
/// run: the close follows the cancel request directly and no
/// ActivityTaskCanceled is written (as a Temporal dev server does).
#[test]
fn activity_canceled_by_the_task_that_closes_the_run() {
    let mut b = RunBuilder::started();
    b.schedule("1", policy(0));
    b.step(|r, tr, now| r.signal(tr, now, "stop", Payload("null".into()), "cli"));
    b.complete_task(vec![
        Command::RequestCancelActivityTask {
            activity_id: "1".into(),
        },
        Command::FailWorkflowExecution {
            failure: Failure::application("Bye", "bye", true),
        },
    ]);
    assert_eq!(
        b.types(),
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::ActivityTaskCancelRequested,
            EventType::WorkflowExecutionFailed
        ]
    );
    assert_eq!(b.run.status, WorkflowExecutionStatus::Failed);
    assert!(b.run.buffered.is_empty());
}
