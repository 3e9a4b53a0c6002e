//! Shared test helpers: an engine on the virtual clock in a temp dir, and
//! the reference histories captured from a real Temporal server.

#![allow(dead_code)]

pub mod llm_server;

use std::path::PathBuf;

use holdfast::engine::{Clock, Engine, EngineConfig, HistoryEvent};

/// An engine on the virtual clock in a fresh temp dir (keep the TempDir alive).
pub fn virtual_engine() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine =
        Engine::open(EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time()))
            .expect("open engine");
    (engine, dir)
}

/// The reference histories and describe output captured from a real
/// Temporal server, copied into the repo from `shared/reference/`.
pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// A comparable line per event: type plus the attributes that matter.
pub fn signature_of_reference(name: &str) -> Vec<String> {
    let path = reference_dir()
        .join("temporal-histories")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("reference json");
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(reference_line)
        .collect()
}

fn pascal(enum_name: &str, prefix: &str) -> String {
    enum_name
        .trim_start_matches(prefix)
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

fn failure_type(f: &serde_json::Value) -> String {
    if let Some(t) = f["applicationFailureInfo"]["type"].as_str() {
        return t.to_string();
    }
    if let Some(t) = f["timeoutFailureInfo"]["timeoutType"].as_str() {
        return t.to_string();
    }
    String::new()
}

fn reference_line(e: &serde_json::Value) -> String {
    let ty = pascal(e["eventType"].as_str().unwrap_or(""), "EVENT_TYPE_");
    let attrs = e
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.ends_with("Attributes"))
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    let mut parts = vec![ty.clone()];
    if ty == "WorkflowTaskScheduled" && attrs["taskQueue"]["kind"] == "TASK_QUEUE_KIND_STICKY" {
        parts.push("sticky".into());
    }
    if let Some(t) = attrs["timeoutType"].as_str() {
        parts.push(format!("timeoutType={t}"));
    }
    if let Some(a) = attrs["attempt"].as_i64()
        && ty.starts_with("Activity")
    {
        parts.push(format!("attempt={a}"));
    }
    if attrs["lastFailure"].is_object() {
        parts.push(format!(
            "lastFailure={}:{}",
            failure_type(&attrs["lastFailure"]),
            attrs["lastFailure"]["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(r) = attrs["retryState"].as_str()
        && !ty.starts_with("WorkflowExecution")
    {
        parts.push(format!("retryState={r}"));
    }
    if attrs["failure"].is_object() {
        let f = &attrs["failure"];
        parts.push(format!(
            "failure={}:{}",
            failure_type(f),
            f["message"].as_str().unwrap_or("")
        ));
        if f["cause"].is_object() {
            parts.push(format!(
                "cause={}:{}",
                failure_type(&f["cause"]),
                f["cause"]["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(c) = attrs["cause"].as_str() {
        parts.push(format!("cause={c}"));
    }
    parts.join(" ")
}

/// The same line for one of our events.
pub fn signature_of(events: &[HistoryEvent]) -> Vec<String> {
    use holdfast::engine::{EventAttributes as A, Failure, FailureInfo};
    fn ft(f: &Failure) -> String {
        match &f.info {
            FailureInfo::Application { error_type, .. } => error_type.clone(),
            FailureInfo::Timeout { timeout_type, .. } => timeout_type.temporal_name().to_string(),
            _ => String::new(),
        }
    }
    fn fail(parts: &mut Vec<String>, f: &Failure) {
        parts.push(format!("failure={}:{}", ft(f), f.message));
        if let Some(c) = &f.cause {
            parts.push(format!("cause={}:{}", ft(c), c.message));
        }
    }
    events
        .iter()
        .map(|e| {
            let mut parts = vec![e.event_type().name().to_string()];
            match &e.attributes {
                A::ActivityTaskStarted {
                    attempt,
                    last_failure,
                    ..
                } => {
                    parts.push(format!("attempt={attempt}"));
                    if let Some(f) = last_failure {
                        parts.push(format!("lastFailure={}:{}", ft(f), f.message));
                    }
                }
                A::ActivityTaskFailed {
                    failure,
                    retry_state,
                    ..
                }
                | A::ActivityTaskTimedOut {
                    failure,
                    retry_state,
                    ..
                } => {
                    parts.push(format!("retryState={}", retry_state.temporal_name()));
                    fail(&mut parts, failure);
                }
                A::WorkflowExecutionFailed { failure, .. } => fail(&mut parts, failure),
                A::WorkflowTaskScheduled {
                    sticky_queue: Some(_),
                    ..
                } => parts.push("sticky".into()),
                A::WorkflowTaskTimedOut { timeout_type, .. } => {
                    parts.push(format!("timeoutType={}", timeout_type.temporal_name()))
                }
                A::WorkflowTaskFailed { failure, cause, .. } => {
                    fail(&mut parts, failure);
                    parts.push(format!("cause={}", cause.temporal_name()));
                }
                _ => {}
            }
            parts.join(" ")
        })
        .collect()
}

/// Starts a workflow with a JSON-encodable input; panics if the start is refused.
pub async fn start(
    engine: &holdfast::engine::Engine,
    id: &str,
    workflow_type: &str,
    task_queue: &str,
    input: impl serde::Serialize,
) -> holdfast::engine::RunHandle {
    engine
        .start_workflow(holdfast::engine::StartWorkflowOptions::new(
            id,
            workflow_type,
            task_queue,
            holdfast::engine::Payload::from_value(&input).expect("encode input"),
        ))
        .await
        .expect("start")
}

/// How long (engine time, virtual in tests) a wait on the feed may take
/// before the test fails instead of hanging.
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Waits, woken by the change feed, until `id`'s pending `activity`
/// satisfies `f`; returns it.
pub async fn pending_activity(
    engine: &holdfast::engine::Engine,
    id: &str,
    activity: &str,
    f: impl Fn(&holdfast::engine::PendingActivityInfo) -> bool + Send + Sync,
) -> holdfast::engine::PendingActivityInfo {
    let find = |d: &holdfast::engine::WorkflowDescription| {
        d.pending_activities
            .iter()
            .find(|a| a.activity_type == activity && f(a))
            .cloned()
    };
    let d = tokio::time::timeout(WAIT_LIMIT, engine.wait_until(id, |d| find(d).is_some()))
        .await
        .unwrap_or_else(|_| panic!("{id}: {activity} never got there"))
        .expect("describe");
    find(&d).expect("found")
}

/// Waits, woken by the change feed, until `pred` holds for `id`'s history;
/// returns that history.
pub async fn history_until(
    engine: &holdfast::engine::Engine,
    id: &str,
    pred: impl Fn(&[HistoryEvent]) -> bool,
) -> Vec<HistoryEvent> {
    let wait = async {
        let mut feed = engine.subscribe();
        loop {
            let h = engine.history(id, None).await.expect("history");
            if pred(&h) {
                return h;
            }
            loop {
                match feed.recv().await {
                    Ok(c) if c.run_of(id).is_some_and(|r| r.new_events > 0) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(e) => panic!("feed closed: {e}"),
                }
            }
        }
    };
    tokio::time::timeout(WAIT_LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("condition never held for {id}"))
}
