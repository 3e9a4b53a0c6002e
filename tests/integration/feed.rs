//! The change feed is complete: a subscriber that applies the changes in
//! order holds exactly what `describe` returns, at every step of a run's
//! life — workflow tasks taken and completed, an activity scheduled,
//! started on a worker, failed and scheduled again, started on another,
//! heartbeating, completed, the run's close — and both runs of a reset
//! arrive in one change. The steps are driven through the worker protocol
//! by hand, on the virtual clock.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::virtual_engine;
use holdfast::engine::{
    AttemptOutcome, Change, Command, Engine, Failure, Payload, PendingActivityState, RetryPolicy,
    WorkflowDescription, WorkflowExecutionStatus, activity_options,
};
use tokio::sync::broadcast;

/// What a screen holds: the newest description of every run it heard of.
struct Subscriber {
    feed: broadcast::Receiver<Change>,
    runs: HashMap<String, WorkflowDescription>,
    last_commit: u64,
    changes: Vec<Change>,
}

impl Subscriber {
    fn new(engine: &Engine) -> Self {
        Subscriber {
            feed: engine.subscribe(),
            runs: HashMap::new(),
            last_commit: 0,
            changes: Vec::new(),
        }
    }

    /// Compares what the feed built with `describe` of `workflow_id`'s
    /// newest run. Describe first: it waits for everything committed so far
    /// to be durable, and so announced.
    async fn check(
        &mut self,
        engine: &Engine,
        workflow_id: &str,
        step: &str,
    ) -> WorkflowDescription {
        let described = engine.describe(workflow_id, None).await.unwrap();
        while let Ok(change) = self.feed.try_recv() {
            assert_eq!(
                change.commit,
                self.last_commit + 1,
                "{step}: every commit is announced, once, in order"
            );
            self.last_commit = change.commit;
            for r in &change.runs {
                self.runs
                    .insert(r.description.info.run_id.clone(), r.description.clone());
            }
            self.changes.push(change);
        }
        assert_eq!(
            self.runs.get(&described.info.run_id),
            Some(&described),
            "{step}: the feed and describe disagree"
        );
        described
    }
}

fn deposit() -> Command {
    let policy = RetryPolicy {
        initial_interval: Duration::from_secs(1),
        backoff_coefficient: 2.0,
        maximum_interval: Duration::from_secs(100),
        maximum_attempts: 5,
        non_retryable_error_types: Vec::new(),
    };
    Command::ScheduleActivity {
        activity_id: "1".into(),
        activity_type: "deposit".into(),
        input: Payload::from_value(&250).unwrap(),
        options: activity_options()
            .start_to_close(Duration::from_secs(10))
            .retry(policy),
    }
}

/// Every step of an activity retried once, as a screen sees it from the feed.
#[tokio::test(start_paused = true)]
async fn the_feed_rebuilds_what_describe_shows_at_every_step() {
    let (engine, _dir) = virtual_engine();
    let mut sub = Subscriber::new(&engine);
    common::start(&engine, "feed-1", "Transfer", "q", 250).await;
    let d = sub.check(&engine, "feed-1", "started").await;
    assert!(d.pending_workflow_task.is_some_and(|w| !w.started));

    let wt = engine.poll_workflow_task("q", "wf-worker").await.unwrap();
    let d = sub.check(&engine, "feed-1", "workflow task taken").await;
    assert!(d.pending_workflow_task.is_some_and(|w| w.started));
    engine
        .complete_workflow_task(&wt.token, "wf-worker", vec![deposit()])
        .await
        .unwrap();
    let d = sub.check(&engine, "feed-1", "activity scheduled").await;
    assert_eq!(
        d.pending_activities[0].state,
        PendingActivityState::Scheduled
    );

    let a1 = engine.poll_activity_task("q", "worker-A").await.unwrap();
    let d = sub.check(&engine, "feed-1", "attempt 1 started").await;
    let p = &d.pending_activities[0];
    assert_eq!(p.state, PendingActivityState::Started);
    assert_eq!(p.last_worker_identity, "worker-A");
    assert_eq!(p.attempts.len(), 1);
    assert_eq!(p.attempts[0].outcome, AttemptOutcome::Running);

    let failed_at = engine.now_ms();
    engine
        .fail_activity_task(
            &a1.token,
            "worker-A",
            Failure::application("DepositError", "This deposit has failed.", false),
        )
        .await
        .unwrap();
    let d = sub.check(&engine, "feed-1", "attempt 1 failed").await;
    let p = &d.pending_activities[0];
    assert_eq!((p.state, p.attempt), (PendingActivityState::Scheduled, 2));
    assert_eq!(p.next_attempt_schedule_time_ms, Some(failed_at + 1000));
    let first = &p.attempts[0];
    assert_eq!(first.outcome, AttemptOutcome::Failed);
    assert_eq!(
        first.failure_message.as_deref(),
        Some("This deposit has failed.")
    );
    assert_eq!(first.next_attempt_time_ms, Some(failed_at + 1000));

    // The poll waits out the backoff on the virtual clock.
    let a2 = engine.poll_activity_task("q", "worker-B").await.unwrap();
    assert_eq!(engine.now_ms(), failed_at + 1000);
    let d = sub.check(&engine, "feed-1", "attempt 2 started").await;
    let p = &d.pending_activities[0];
    assert_eq!(p.last_worker_identity, "worker-B");
    assert_eq!(p.attempts.len(), 2);
    assert_eq!(p.attempts[1].started_time_ms, Some(failed_at + 1000));

    engine
        .record_activity_heartbeat(&a2.token, Payload::from_value(&"half way").unwrap())
        .unwrap();
    let d = sub.check(&engine, "feed-1", "heartbeat").await;
    assert!(d.pending_activities[0].heartbeat_details.is_some());

    engine
        .complete_activity_task(&a2.token, "worker-B", Payload::from_value(&"ok").unwrap())
        .await
        .unwrap();
    let d = sub.check(&engine, "feed-1", "activity completed").await;
    assert!(d.pending_activities.is_empty());

    let wt = engine.poll_workflow_task("q", "wf-worker").await.unwrap();
    sub.check(&engine, "feed-1", "second workflow task taken")
        .await;
    let done = Command::CompleteWorkflowExecution {
        result: Payload::from_value(&"done").unwrap(),
    };
    engine
        .complete_workflow_task(&wt.token, "wf-worker", vec![done])
        .await
        .unwrap();
    let d = sub.check(&engine, "feed-1", "closed").await;
    assert_eq!(d.info.status, WorkflowExecutionStatus::Completed);

    let events: u64 = sub
        .changes
        .iter()
        .flat_map(|c| &c.runs)
        .map(|r| r.new_events)
        .sum();
    assert_eq!(events, d.info.history_length, "every event announced once");
}

/// A reset terminates the running run and starts the new one in one
/// commit: one change names both.
#[tokio::test(start_paused = true)]
async fn a_reset_announces_both_runs_in_one_change() {
    let (engine, _dir) = virtual_engine();
    let mut sub = Subscriber::new(&engine);
    let old = common::start(&engine, "feed-2", "Transfer", "q", 250).await;
    let wt = engine.poll_workflow_task("q", "wf-worker").await.unwrap();
    let sleep = Command::StartTimer {
        timer_id: "1".into(),
        duration: Duration::from_secs(3600),
    };
    engine
        .complete_workflow_task(&wt.token, "wf-worker", vec![sleep])
        .await
        .unwrap();
    sub.check(&engine, "feed-2", "sleeping").await;

    let new = engine.reset("feed-2", None, 4, "try again").await.unwrap();
    let d = sub.check(&engine, "feed-2", "reset").await;
    assert_eq!(d.info.run_id, new.run_id);
    let last = sub.changes.last().unwrap();
    let statuses: Vec<_> = last
        .runs
        .iter()
        .map(|r| (r.description.info.run_id.clone(), r.description.info.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (old.run_id.clone(), WorkflowExecutionStatus::Terminated),
            (new.run_id.clone(), WorkflowExecutionStatus::Running),
        ]
    );
    let old_now = engine.describe("feed-2", Some(&old.run_id)).await.unwrap();
    assert_eq!(sub.runs.get(&old.run_id), Some(&old_now));
}

/// `wait_until` wakes on the feed: a waiter for the second attempt returns
/// exactly when the engine schedules it.
#[tokio::test(start_paused = true)]
async fn wait_until_wakes_on_the_change_it_waits_for() {
    let (engine, _dir) = virtual_engine();
    common::start(&engine, "feed-3", "Transfer", "q", 250).await;
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .wait_until("feed-3", |d| {
                    d.pending_activities.first().is_some_and(|a| a.attempt == 2)
                })
                .await
        })
    };
    let wt = engine.poll_workflow_task("q", "w").await.unwrap();
    engine
        .complete_workflow_task(&wt.token, "w", vec![deposit()])
        .await
        .unwrap();
    let a1 = engine.poll_activity_task("q", "w").await.unwrap();
    assert!(!waiter.is_finished());
    engine
        .fail_activity_task(&a1.token, "w", Failure::application("E", "no", false))
        .await
        .unwrap();
    let d = waiter.await.unwrap().unwrap();
    assert_eq!(d.pending_activities[0].attempt, 2);
    assert_eq!(
        d.pending_activities[0].state,
        PendingActivityState::Scheduled
    );
}

/// Resetting an older run while a newer one of the same id runs (here,
/// resetting the same run twice) leaves one running run per workflow id:
/// the current run is terminated in the same commit, as Temporal does.
#[tokio::test(start_paused = true)]
async fn a_reset_keeps_one_running_run_per_id() {
    let (engine, _dir) = virtual_engine();
    let first = common::start(&engine, "feed-4", "Transfer", "q", 250).await;
    let wt = engine.poll_workflow_task("q", "w").await.unwrap();
    let sleep = Command::StartTimer {
        timer_id: "1".into(),
        duration: Duration::from_secs(3600),
    };
    engine
        .complete_workflow_task(&wt.token, "w", vec![sleep])
        .await
        .unwrap();
    let second = engine
        .reset("feed-4", Some(&first.run_id), 4, "one")
        .await
        .unwrap();
    let third = engine
        .reset("feed-4", Some(&first.run_id), 4, "two")
        .await
        .unwrap();
    let running = engine
        .list(
            &holdfast::engine::ListFilter {
                status: Some(WorkflowExecutionStatus::Running),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    let ids: Vec<_> = running
        .executions
        .iter()
        .map(|e| e.run_id.clone())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&third.run_id), "one running run");
    let d = engine
        .describe("feed-4", Some(&second.run_id))
        .await
        .unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Terminated);
}

/// A worker killed while it awaits its activity's completion (the commit
/// staged, not yet durable) must not take with it what follows: the next
/// workflow task is still queued once the commit is on disk. (Found by the
/// scenario tests: a report waited forever for a task written, never queued.)
#[tokio::test(start_paused = true)]
async fn a_completion_whose_caller_dies_still_queues_the_next_task() {
    let (engine, _dir) = virtual_engine();
    common::start(&engine, "orphan", "Transfer", "q", 250).await;
    let wt = engine.poll_workflow_task("q", "w").await.unwrap();
    engine
        .complete_workflow_task(&wt.token, "w", vec![deposit()])
        .await
        .unwrap();
    let at = engine.poll_activity_task("q", "w").await.unwrap();
    let payload = holdfast::engine::Payload::from_value(&"done").unwrap();
    {
        let completion = engine.complete_activity_task(&at.token, "w", payload);
        tokio::pin!(completion);
        // Polled once: staged, waiting for the flush; then the caller is gone.
        assert!(futures::poll!(completion.as_mut()).is_pending());
    }
    let next = tokio::time::timeout(
        Duration::from_secs(60),
        engine.poll_workflow_task("q", "w2"),
    )
    .await
    .expect("the next workflow task was queued")
    .unwrap();
    assert!(
        next.history
            .iter()
            .any(|e| e.event_type() == holdfast::engine::EventType::ActivityTaskCompleted)
    );
}
