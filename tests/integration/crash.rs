//! Crash safety: the workload runs in a child process (`holdfast
//! chaos-child`) that is SIGKILLed at random points — after a random number
//! of its output lines, so kills land during open/recovery, starts, workflow
//! tasks, activities and completions. After every kill the parent opens the
//! store read-only and checks:
//!
//! - every acknowledged start exists;
//! - every history decodes and is numbered 1..n without gaps;
//! - no activity already recorded completed ran again afterwards;
//! - no timer fired twice (a timer due while the process was down fires once);
//! - every acknowledged signal is in the history (and is delivered: runs complete);
//!
//! and at the end, after a run that is not killed, that every workflow completed.
//!
//! `HOLDFAST_CRASH_KILLS` sets the number of kills (default 24).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use holdfast::engine::{Archive, EventAttributes, EventType, WorkflowExecutionStatus};

const WORKFLOWS: usize = 40;

struct ChildRun {
    lines: Vec<String>,
    exited_ok: bool,
}

/// Runs the child; kills it once it has printed `kill_after` lines (never, if None).
fn run_child(data: &std::path::Path, kill_after: Option<usize>) -> ChildRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args([
            "chaos-child",
            "--workflows",
            &WORKFLOWS.to_string(),
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    if kill_after == Some(0) {
        let _ = child.kill();
    }
    while let Ok(line) = rx.recv() {
        lines.push(line);
        if Some(lines.len()) == kill_after {
            let _ = child.kill(); // SIGKILL
            break;
        }
    }
    let status = child.wait().expect("wait");
    // Lines written before the kill are still in the pipe.
    while let Ok(line) = rx.recv() {
        lines.push(line);
    }
    let _ = reader.join();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    if kill_after.is_none() {
        assert!(status.success(), "final child failed: {err}");
    }
    assert!(!err.contains("panicked"), "child panicked: {err}");
    ChildRun {
        lines,
        exited_ok: status.success(),
    }
}

struct Verified {
    completed_activities: HashSet<(String, String)>,
    completed_runs: usize,
}

/// Opens the store read-only (no recovery, nothing written) and checks it.
fn verify(data: &std::path::Path, acked: &HashSet<String>, signaled: &HashSet<String>) -> Verified {
    let store = Archive::open(data).expect("store reopens after kill -9");
    for id in acked {
        assert!(
            store.describe(id).is_ok(),
            "acknowledged start of {id} was lost"
        );
    }
    for id in signaled {
        let h = store.history(id, None).expect("signaled run exists");
        // In history, or buffered in the run's state while a workflow task ran
        // (appended after it, as Temporal buffers events).
        let buffered = store
            .buffered_events(id)
            .unwrap()
            .contains(&EventType::WorkflowExecutionSignaled);
        assert!(
            buffered
                || h.iter()
                    .any(|e| e.event_type() == EventType::WorkflowExecutionSignaled),
            "acknowledged signal to {id} was lost"
        );
    }
    let mut completed_activities = HashSet::new();
    let mut completed_runs = 0;
    for run in store.all_runs().expect("run states decode") {
        let run = run.info;
        let history = store
            .history(&run.workflow_id, Some(&run.run_id))
            .expect("history decodes and is contiguous");
        assert_eq!(
            history.len() as u64,
            run.history_length,
            "{}",
            run.workflow_id
        );
        assert_eq!(history[0].event_type(), EventType::WorkflowExecutionStarted);
        let mut scheduled = std::collections::HashMap::new();
        let fired = history
            .iter()
            .filter(|e| e.event_type() == EventType::TimerFired)
            .count();
        assert!(
            fired <= 1,
            "timer of {} fired {fired} times",
            run.workflow_id
        );
        if run.status == WorkflowExecutionStatus::Completed {
            assert_eq!(fired, 1, "{} completed without its timer", run.workflow_id);
        }
        for e in &history {
            match &e.attributes {
                EventAttributes::ActivityTaskScheduled { activity_id, .. } => {
                    scheduled.insert(e.event_id, activity_id.clone());
                }
                EventAttributes::ActivityTaskCompleted {
                    scheduled_event_id, ..
                } => {
                    let id = scheduled[scheduled_event_id].clone();
                    assert!(
                        completed_activities.insert((run.workflow_id.clone(), id)),
                        "activity completed twice in {}",
                        run.workflow_id
                    );
                }
                _ => {}
            }
        }
        if run.status == WorkflowExecutionStatus::Completed {
            completed_runs += 1;
        }
    }
    Verified {
        completed_activities,
        completed_runs,
    }
}

fn calls(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let mut p = l.split(' ');
            (p.next() == Some("CALL"))
                .then(|| (p.next().unwrap_or("").into(), p.next().unwrap_or("").into()))
        })
        .collect()
}

#[test]
fn survives_kill_9_at_random_points() {
    let kills: usize = std::env::var("HOLDFAST_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("HOLDFAST_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test: {kills} kills, seed {seed} (HOLDFAST_CRASH_SEED to repeat)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acked = HashSet::new();
    let mut signaled = HashSet::new();
    let mut done_before: HashSet<(String, String)> = HashSet::new();
    let mut killed = 0;
    for round in 0..kills {
        // Kill after 0..=30 lines: 0 lands during open and recovery.
        let k = rng.usize(0..=30);
        let run = run_child(&data, Some(k));
        if !run.exited_ok {
            killed += 1;
        }
        for l in &run.lines {
            if let Some(id) = l.strip_prefix("ACK ") {
                acked.insert(id.to_string());
            }
            if let Some(id) = l.strip_prefix("SIGNALED ") {
                signaled.insert(id.to_string());
            }
        }
        for call in calls(&run.lines) {
            assert!(
                !done_before.contains(&call),
                "round {round}: activity {call:?} ran again after it was recorded completed"
            );
        }
        let v = verify(&data, &acked, &signaled);
        assert!(
            v.completed_activities.is_superset(&done_before),
            "a completion was lost"
        );
        done_before = v.completed_activities;
    }
    let last = run_child(&data, None);
    for call in calls(&last.lines) {
        assert!(
            !done_before.contains(&call),
            "activity {call:?} ran again at the end"
        );
    }
    let v = verify(&data, &acked, &signaled);
    assert_eq!(v.completed_runs, WORKFLOWS, "every workflow completes");
    assert_eq!(v.completed_activities.len(), WORKFLOWS * 2);
    eprintln!(
        "crash test: {killed} of {kills} children were killed mid-run; all {WORKFLOWS} workflows completed"
    );
    assert!(
        killed * 2 >= kills,
        "most rounds should be real kills, got {killed}/{kills}"
    );
}

/// A crash in place (the lab's "crash the engine") loses exactly what was
/// not on disk: an activity's start that no flush covered is taken back, so
/// the attempt is scheduled again and the old worker's result is refused;
/// what was durable — the run, its history — is all there.
#[tokio::test(start_paused = true)]
async fn a_crash_in_place_takes_back_only_what_was_not_durable() {
    use holdfast::engine::{
        Clock, Command, Engine, EngineConfig, Payload, PendingActivityState, activity_options,
    };
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time()))
            .unwrap();
    let opts = holdfast::engine::StartWorkflowOptions::new("c", "T", "q", Payload("1".into()));
    engine.start_workflow(opts).await.unwrap();
    let wt = engine.poll_workflow_task("q", "w").await.unwrap();
    let schedule = Command::ScheduleActivity {
        activity_id: "1".into(),
        activity_type: "deposit".into(),
        input: Payload("1".into()),
        options: activity_options().start_to_close(Duration::from_secs(10)),
    };
    engine
        .complete_workflow_task(&wt.token, "w", vec![schedule])
        .await
        .unwrap();
    let before = engine.history("c", None).await.unwrap();
    let task = engine.poll_activity_task("q", "w").await.unwrap();
    // No await between the start and the crash: no flush covered the start.
    let recovery = engine.crash_and_recover().await.unwrap();
    assert_eq!((recovery.generation, recovery.runs), (1, 1));
    let d = engine.describe("c", None).await.unwrap();
    assert_eq!(
        d.pending_activities[0].state,
        PendingActivityState::Scheduled
    );
    assert_eq!(d.pending_activities[0].attempt, 1);
    assert_eq!(engine.history("c", None).await.unwrap(), before);
    let late = engine
        .complete_activity_task(&task.token, "w", Payload("1".into()))
        .await;
    assert!(
        late.is_err(),
        "a result for a start the crash took back is refused"
    );
    let again = engine.poll_activity_task("q", "w2").await.unwrap();
    assert_eq!(again.attempt, 1);
    engine
        .complete_activity_task(&again.token, "w2", Payload("1".into()))
        .await
        .unwrap();
}
