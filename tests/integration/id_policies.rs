//! Workflow-id policies with Temporal's defaults and wording: reuse
//! (closed runs; default AllowDuplicate) and conflict (running run; default Fail).

use crate::common;

use std::time::Duration;

use common::virtual_engine;
use holdfast::engine::{
    Engine, EngineError, Payload, StartWorkflowOptions, WfContext, Worker, WorkerOptions,
    WorkflowError, WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowOutcome,
};

fn opts(id: &str, secs: u64) -> StartWorkflowOptions {
    StartWorkflowOptions::new(id, "Sleep", "q", Payload::from_value(&secs).unwrap())
}

fn worker(engine: &Engine) -> holdfast::engine::WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new("q", "w"));
    w.register_workflow("Sleep", |ctx: WfContext, secs: u64| async move {
        ctx.sleep(Duration::from_secs(secs)).await?;
        if secs == 13 {
            return Err(WorkflowError::application("Unlucky", "thirteen"));
        }
        Ok::<_, WorkflowError>(secs)
    });
    w.start()
}

#[tokio::test(start_paused = true)]
async fn reuse_policy_for_closed_runs() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine);
    let first = engine.start_workflow(opts("dup", 1)).await.unwrap();
    engine.result("dup", None).await.unwrap();
    // Default AllowDuplicate: a new run with a new run id.
    let second = engine.start_workflow(opts("dup", 1)).await.unwrap();
    assert_ne!(first.run_id, second.run_id);
    engine.result("dup", None).await.unwrap();

    let mut reject = opts("dup", 1);
    reject.id_reuse_policy = WorkflowIdReusePolicy::RejectDuplicate;
    let err = engine.start_workflow(reject).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Workflow execution already finished. WorkflowId: dup, RunId: {}. Workflow Id reuse policy: reject duplicate workflow Id.",
            second.run_id
        )
    );
    let mut failed_only = opts("dup", 1);
    failed_only.id_reuse_policy = WorkflowIdReusePolicy::AllowDuplicateFailedOnly;
    let err = engine
        .start_workflow(failed_only.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::AlreadyFinished(_)));
    assert!(
        err.to_string()
            .starts_with("Workflow execution already finished successfully.")
    );

    // After a failed run, AllowDuplicateFailedOnly allows it.
    engine.start_workflow(opts("unlucky", 13)).await.unwrap();
    assert!(matches!(
        engine.result("unlucky", None).await.unwrap(),
        WorkflowOutcome::Failed(_)
    ));
    let mut again = opts("unlucky", 1);
    again.id_reuse_policy = WorkflowIdReusePolicy::AllowDuplicateFailedOnly;
    engine.start_workflow(again).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn conflict_policy_for_running_runs() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine);
    let first = engine.start_workflow(opts("busy", 60)).await.unwrap();
    let err = engine.start_workflow(opts("busy", 60)).await.unwrap_err();
    assert!(matches!(err, EngineError::AlreadyStarted { .. }));

    let mut use_existing = opts("busy", 60);
    use_existing.id_conflict_policy = WorkflowIdConflictPolicy::UseExisting;
    let same = engine.start_workflow(use_existing).await.unwrap();
    assert_eq!(same, first);

    let mut terminate = opts("busy", 1);
    terminate.id_conflict_policy = WorkflowIdConflictPolicy::TerminateExisting;
    let fresh = engine.start_workflow(terminate).await.unwrap();
    assert_ne!(fresh.run_id, first.run_id);
    let old = engine.describe("busy", Some(&first.run_id)).await.unwrap();
    assert_eq!(old.info.status, WorkflowExecutionStatus::Terminated);
    assert_eq!(
        engine.result("busy", None).await.unwrap(),
        WorkflowOutcome::Completed(Payload::from_value(&1).unwrap())
    );
}

/// A payload over the 2 MiB blob limit is refused before anything is written.
#[tokio::test(start_paused = true)]
async fn oversized_payloads_are_refused() {
    let (engine, _dir) = virtual_engine();
    let _w = worker(&engine);
    let big = Payload::from_value(&"x".repeat(holdfast::engine::BLOB_SIZE_LIMIT + 1)).unwrap();
    let err = engine
        .start_workflow(StartWorkflowOptions::new("big", "Sleep", "q", big.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("payload limit"), "{err}");
    assert!(
        engine.describe("big", None).await.is_err(),
        "nothing was written"
    );
    engine.start_workflow(opts("small", 60)).await.unwrap();
    let before = engine.history("small", None).await.unwrap().len();
    let err = engine
        .signal("small", None, "s", big, "cli")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("payload limit"), "{err}");
    assert_eq!(engine.history("small", None).await.unwrap().len(), before);
}

/// Oversized payloads from workflow code or activities are refused too: an
/// activity input fails the workflow task (nothing scheduled); an activity
/// result fails the activity for good.
#[tokio::test(start_paused = true)]
async fn oversized_payloads_from_code_are_refused() {
    use holdfast::engine::{
        ActivityContext, ApplicationError, EventType, WorkflowTaskFailedCause, activity_options,
    };
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("q", "w"));
    w.register_workflow("BigInput", |ctx: WfContext, _: ()| async move {
        let big = "x".repeat(holdfast::engine::BLOB_SIZE_LIMIT + 1);
        let r: () = ctx
            .activity(
                "noop",
                &big,
                activity_options().start_to_close(Duration::from_secs(5)),
            )
            .await?;
        Ok::<_, WorkflowError>(r)
    });
    w.register_workflow("BigResult", |ctx: WfContext, _: ()| async move {
        let r: String = ctx
            .activity(
                "huge",
                &(),
                activity_options().start_to_close(Duration::from_secs(5)),
            )
            .await?;
        Ok::<_, WorkflowError>(r.len())
    });
    w.register_activity("noop", |_: ActivityContext, _: String| async {
        Ok::<_, ApplicationError>(())
    });
    w.register_activity("huge", |_: ActivityContext, _: ()| async {
        Ok::<_, ApplicationError>("y".repeat(holdfast::engine::BLOB_SIZE_LIMIT + 1))
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "bi",
            "BigInput",
            "q",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "br",
            "BigResult",
            "q",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = engine.history("bi", None).await.unwrap();
    let failed = h
        .iter()
        .find(|e| e.event_type() == EventType::WorkflowTaskFailed)
        .expect("task failed");
    let holdfast::engine::EventAttributes::WorkflowTaskFailed { cause, failure, .. } =
        &failed.attributes
    else {
        unreachable!()
    };
    assert_eq!(
        *cause,
        WorkflowTaskFailedCause::BadScheduleActivityAttributes
    );
    assert!(
        failure.message.contains("payload limit"),
        "{}",
        failure.message
    );
    assert!(
        !h.iter()
            .any(|e| e.event_type() == EventType::ActivityTaskScheduled)
    );
    let out = engine.result("br", None).await.unwrap();
    let WorkflowOutcome::Failed(f) = out else {
        panic!("{out:?}")
    };
    assert_eq!(f.root_cause().error_type(), Some("BlobSizeExceedsLimit"));
}

/// A payload over the limit fails the workflow task the same way on every
/// attempt, as Temporal does, and a person can see why: before, the worker
/// kept the state it built from the refused command, and every later
/// attempt failed as a false "Nondeterminism error".
#[tokio::test(start_paused = true)]
async fn an_oversized_input_fails_every_attempt_with_the_same_cause() {
    let (engine, _dir) = virtual_engine();
    let mut w = Worker::new(&engine, WorkerOptions::new("q", "w"));
    w.register_workflow("BigInput", |ctx: WfContext, _: ()| async move {
        let big = "x".repeat(holdfast::engine::BLOB_SIZE_LIMIT + 1);
        let o = holdfast::engine::activity_options().start_to_close(Duration::from_secs(5));
        let r: String = ctx.activity("echo", &big, o).await?;
        Ok::<_, WorkflowError>(r)
    });
    let _w = w.start();
    engine
        .start_workflow(StartWorkflowOptions::new(
            "big",
            "BigInput",
            "q",
            Payload::from_value(&()).unwrap(),
        ))
        .await
        .unwrap();
    for attempt in 2..=5 {
        let d = engine
            .wait_until("big", |d| {
                d.pending_workflow_task
                    .as_ref()
                    .is_some_and(|w| w.attempt >= attempt)
            })
            .await
            .unwrap();
        let (cause, failure) = d
            .pending_workflow_task
            .unwrap()
            .last_failure
            .expect("describe says why");
        assert_eq!(
            cause,
            holdfast::engine::WorkflowTaskFailedCause::BadScheduleActivityAttributes,
            "attempt {attempt}: {}",
            failure.message
        );
        assert!(
            failure.message.contains("payload limit"),
            "{}",
            failure.message
        );
    }
}
