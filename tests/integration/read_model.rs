//! The read model and change feed a UI relies on: list (newest first,
//! status filter, pages), describe while retrying, the change feed after
//! each durable transition, and backoff capped by the maximum interval.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::virtual_engine;
use holdfast::engine::{
    ActivityContext, ApplicationError, Engine, ListFilter, Payload, RetryPolicy,
    StartWorkflowOptions, WfContext, Worker, WorkerOptions, WorkflowError, WorkflowExecutionStatus,
    activity_options,
};

fn worker(engine: &Engine) -> holdfast::engine::WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new("q", "w"));
    w.register_workflow("Echo", |ctx: WfContext, fail: bool| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(5))
            .retry(RetryPolicy {
                maximum_attempts: 1,
                ..RetryPolicy::default()
            });
        let r: bool = ctx.activity("maybe_fail", &fail, o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("maybe_fail", |_: ActivityContext, fail: bool| async move {
        if fail {
            Err(ApplicationError::retryable("Boom", "failed on purpose"))
        } else {
            Ok(true)
        }
    });
    w.start()
}

async fn start(engine: &Engine, id: &str, fail: bool) {
    common::start(engine, id, "Echo", "q", fail).await;
}

/// List returns runs newest first, filters by status, and pages without
/// repeating or skipping a run.
#[tokio::test(start_paused = true)]
async fn list_is_newest_first_filtered_and_paged() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine);
    for i in 0..7 {
        let id = format!("wf-{i}");
        start(&engine, &id, i % 3 == 0).await;
        engine.result(&id, None).await.unwrap();
    }
    let all = engine
        .list(&ListFilter::default(), 100, None)
        .await
        .unwrap();
    let ids: Vec<_> = all
        .executions
        .iter()
        .map(|e| e.workflow_id.clone())
        .collect();
    assert_eq!(
        ids,
        ["wf-6", "wf-5", "wf-4", "wf-3", "wf-2", "wf-1", "wf-0"]
    );
    assert!(all.next_page_token.is_none());

    let failed = ListFilter {
        status: Some(WorkflowExecutionStatus::Failed),
        ..ListFilter::default()
    };
    let f = engine.list(&failed, 100, None).await.unwrap();
    let ids: Vec<_> = f
        .executions
        .iter()
        .map(|e| e.workflow_id.as_str())
        .collect();
    assert_eq!(ids, ["wf-6", "wf-3", "wf-0"]);

    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let page = engine
            .list(&ListFilter::default(), 3, token.as_ref())
            .await
            .unwrap();
        assert!(page.executions.len() <= 3);
        paged.extend(page.executions.into_iter().map(|e| e.workflow_id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(
        paged,
        ["wf-6", "wf-5", "wf-4", "wf-3", "wf-2", "wf-1", "wf-0"]
    );
    let completed = &all.executions[1];
    assert_eq!(completed.status, WorkflowExecutionStatus::Completed);
    assert_eq!(completed.history_length, 11);
}

/// Subscribers hear of every committed change, in commit order, with the
/// run's new status, ending with its close.
#[tokio::test(start_paused = true)]
async fn change_feed_reports_each_durable_change() {
    let (engine, _dir) = virtual_engine();
    let mut feed = engine.subscribe();
    let _w = worker(&engine);
    start(&engine, "watched", false).await;
    engine.result("watched", None).await.unwrap();
    let mut changes = Vec::new();
    while let Ok(c) = feed.try_recv() {
        assert_eq!(c.runs.len(), 1);
        assert_eq!(c.runs[0].description.info.workflow_id, "watched");
        changes.push(c);
    }
    // start; workflow task taken, completed; activity taken, completed;
    // workflow task taken, completed (close)
    assert_eq!(changes.len(), 7, "{changes:#?}");
    assert!(changes.windows(2).all(|w| w[0].commit < w[1].commit));
    assert_eq!(
        changes.last().unwrap().runs[0].description.info.status,
        WorkflowExecutionStatus::Completed
    );
    let events: u64 = changes.iter().map(|c| c.runs[0].new_events).sum();
    assert_eq!(events, 11, "every event was announced once");
}

/// With a 2 s maximum interval the backoffs are 1, 2, 2, 2 s: attempts at
/// +0, +1, +3, +5, +7 s; describe shows the interval being waited out.
#[tokio::test(start_paused = true)]
async fn backoff_is_capped_by_maximum_interval() {
    let (engine, _dir) = virtual_engine();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut w = Worker::new(&engine, WorkerOptions::new("q", "w"));
    w.register_workflow("Capped", |ctx: WfContext, _: ()| async move {
        let o = activity_options()
            .start_to_close(Duration::from_secs(5))
            .retry(RetryPolicy {
                maximum_interval: Duration::from_secs(2),
                maximum_attempts: 5,
                ..RetryPolicy::default()
            });
        let r: () = ctx.activity("flaky", &(), o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("flaky", move |ctx: ActivityContext, _: ()| {
        s.lock().unwrap().push(ctx.clock().now_ms());
        async move {
            if ctx.attempt < 5 {
                Err(ApplicationError::retryable("Flaky", "not yet"))
            } else {
                Ok(())
            }
        }
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "capped",
            "Capped",
            "q",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let d = engine.describe("capped", None).await.unwrap();
    let p = &d.pending_activities[0];
    assert_eq!(p.attempt, 4);
    assert_eq!(p.current_retry_interval, Some(Duration::from_secs(2)));
    assert_eq!(p.maximum_attempts, 5);
    engine.result("capped", None).await.unwrap();
    let t = seen.lock().unwrap().clone();
    let rel: Vec<u64> = t.iter().map(|x| x - t[0]).collect();
    assert_eq!(rel, vec![0, 1_000, 3_000, 5_000, 7_000]);
}

/// Type, text and "retrying" filters each find exactly their runs, through
/// the `ReadModel` trait a second backend implements.
#[tokio::test(start_paused = true)]
async fn filters_by_type_text_and_retrying() {
    use holdfast::engine::{ReadModel, WorkflowClient};
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("q", "w"));
    w.register_workflow("Stuck", |ctx: WfContext, _: ()| async move {
        let o = activity_options().start_to_close(Duration::from_secs(5));
        let r: bool = ctx.activity("always_fails", &(), o).await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_activity("always_fails", |_: ActivityContext, _: ()| async move {
        Err::<bool, _>(ApplicationError::retryable("Down", "still down"))
    });
    let _w = w.start();
    let _echo = worker(&engine);
    async fn go<C: WorkflowClient>(c: &C, id: &str, ty: &str, input: &str) {
        let opts = StartWorkflowOptions::new(id, ty, "q", Payload(input.into()));
        c.start_workflow(opts).await.unwrap();
    }
    go(&engine, "pay-invoice-1", "Echo", "false").await;
    go(&engine, "stuck-1", "Stuck", "null").await;
    go(&engine, "pay-invoice-2", "Echo", "false").await;
    engine.result("pay-invoice-2", None).await.unwrap();
    engine
        .wait_until("stuck-1", |d| {
            d.pending_activities.first().is_some_and(|a| a.attempt >= 3)
        })
        .await
        .unwrap();
    let ids = |f: ListFilter| {
        let engine = engine.clone();
        async move {
            ReadModel::list(&engine, &f, 10, None)
                .await
                .unwrap()
                .executions
                .into_iter()
                .map(|e| e.workflow_id)
                .collect::<Vec<_>>()
        }
    };
    let by_type = ListFilter {
        workflow_type: Some("Echo".into()),
        ..ListFilter::default()
    };
    assert_eq!(ids(by_type).await, ["pay-invoice-2", "pay-invoice-1"]);
    let by_text = ListFilter {
        text: Some("INVOICE-1".into()),
        ..ListFilter::default()
    };
    assert_eq!(ids(by_text).await, ["pay-invoice-1"]);
    let retrying = ListFilter {
        retrying: true,
        ..ListFilter::default()
    };
    assert_eq!(ids(retrying.clone()).await, ["stuck-1"]);
    engine
        .terminate("stuck-1", None, "enough", "test")
        .await
        .unwrap();
    assert!(
        ids(retrying).await.is_empty(),
        "a closed run is not retrying"
    );
    let bad = "zz-not-a-token".parse::<holdfast::engine::PageToken>();
    assert!(bad.is_err());
}

/// Describe a task queue: its pollers with identity, last access and the
/// build they run; a killed worker stops polling.
#[tokio::test(start_paused = true)]
async fn describe_task_queue_shows_pollers_and_their_build() {
    let (engine, _dir) = virtual_engine();
    let mut opts = WorkerOptions::new("q", "worker-1");
    opts.build_id = "deposit: buggy".into();
    let w = Worker::new(&engine, opts).start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let d = engine.describe_task_queue("q");
    assert_eq!(d.pollers.len(), 2, "{d:?}"); // workflow and activity pollers
    assert!(
        d.pollers
            .iter()
            .all(|p| p.identity == "worker-1" && p.polling_now && p.build_id == "deposit: buggy")
    );
    w.set_build_id("deposit: fixed");
    assert!(
        engine
            .describe_task_queue("q")
            .pollers
            .iter()
            .all(|p| p.build_id == "deposit: fixed")
    );
    w.kill();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let d = engine.describe_task_queue("q");
    assert!(d.pollers.iter().all(|p| !p.polling_now), "{d:?}");
    start(&engine, "waiting", false).await;
    assert_eq!(engine.describe_task_queue("q").workflow_backlog, 1);
}
