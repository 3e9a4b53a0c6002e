//! Bad input from a person gets a one-line error that says what and where;
//! nothing is written and nothing is lost.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::virtual_engine;
use holdfast::engine::{
    ActivityContext, ApplicationError, Clock, Engine, EngineConfig, EngineError, Payload,
    StartWorkflowOptions, StoreError, WfContext, Worker, WorkerOptions, WorkflowError,
    activity_options,
};
use serde::Deserialize;

/// Runs `holdfast workflow list` on `data`, expecting it to fail with one
/// line on stderr and no panic; returns that line.
fn cli_list_error(data: &std::path::Path) -> String {
    let out = bin()
        .args(["workflow", "list", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
}

/// A second process opening a data dir in use gets one line naming the dir,
/// exits non-zero, and the first process carries on.
#[tokio::test]
async fn locked_data_dir_is_refused_by_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(EngineConfig::new(&data)).unwrap();
    let err = cli_list_error(&data);
    assert!(err.contains("in use by another holdfast process"), "{err}");
    assert!(err.contains(&data.display().to_string()), "{err}");
    // It names the process that holds it.
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "{err}"
    );
    // The first process still works.
    engine.list(&Default::default(), 10, None).await.unwrap();
}

/// A directory of garbage is refused with a clear error and left byte-for-byte untouched.
#[test]
fn garbage_data_dir_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    std::fs::write(data.join("conf"), &garbage[..200]).unwrap();
    std::fs::write(data.join("db"), &garbage).unwrap();
    let before = snapshot(&data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(async { Engine::open(EngineConfig::new(&data)) })
        .expect_err("garbage must not open");
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::Damaged { .. }),
        "expected Damaged, got {err:?}"
    );
    assert!(msg.contains(&data.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(snapshot(&data), before, "the data dir was modified");

    // The CLI says the same in one line, with no stack trace.
    let err = cli_list_error(&data);
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(snapshot(&data), before);
}

/// A directory holding someone else's files is not turned into a store.
#[test]
fn foreign_directory_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let before = snapshot(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(async { Engine::open(EngineConfig::new(dir.path())) })
        .expect_err("must refuse");
    assert!(matches!(err, StoreError::NotADataDir { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
}

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Transfer {
    amount: u64,
    reference_id: String,
}

fn worker_with_transfer(engine: &Engine) -> holdfast::engine::WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new("q", "w"));
    w.register_workflow("MoneyTransfer", |ctx: WfContext, t: Transfer| async move {
        let _: () = ctx
            .activity(
                "slow",
                &t.amount,
                activity_options().start_to_close(Duration::from_secs(60)),
            )
            .await?;
        Ok::<_, WorkflowError>(())
    });
    w.register_activity("slow", |ctx: ActivityContext, _: u64| async move {
        ctx.sleep(Duration::from_secs(30)).await;
        Ok::<_, ApplicationError>(())
    });
    w.start()
}

fn transfer(id: &str, input: serde_json::Value) -> StartWorkflowOptions {
    StartWorkflowOptions::new(
        id,
        "MoneyTransfer",
        "q",
        Payload::from_value(&input).unwrap(),
    )
}

/// Unknown workflow type, input that does not deserialize, a duplicate
/// running id and unknown ids are refused before anything is written.
#[tokio::test(start_paused = true)]
async fn client_errors_write_nothing() {
    let (engine, _dir) = virtual_engine();
    let _w = worker_with_transfer(&engine);

    let err = engine
        .start_workflow(StartWorkflowOptions::new(
            "x",
            "NoSuchWorkflow",
            "q",
            Payload::from_value(&1).unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownWorkflowType { .. }));
    assert!(
        err.to_string().contains("MoneyTransfer"),
        "lists known types: {err}"
    );

    let err = engine
        .start_workflow(transfer("bad-input", serde_json::json!({"amount": -5})))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("MoneyTransfer"), "{err}");

    let err = engine
        .start_workflow(StartWorkflowOptions::new(
            "",
            "MoneyTransfer",
            "q",
            Payload::from_value(&1).unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidArgument(_)));

    let ok = serde_json::json!({"amount": 5, "reference_id": "r"});
    let first = engine
        .start_workflow(transfer("dup", ok.clone()))
        .await
        .unwrap();
    let err = engine
        .start_workflow(transfer("dup", ok))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Workflow execution is already running. WorkflowId: dup, RunId: {}.",
            first.run_id
        )
    );

    let listed = engine.list(&Default::default(), 100, None).await.unwrap();
    let ids: Vec<_> = listed
        .executions
        .iter()
        .map(|e| e.workflow_id.as_str())
        .collect();
    assert_eq!(ids, ["dup"], "only the one good start was written");

    let err = engine.describe("nope", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow not found: no workflow with id \"nope\""
    );
    let err = engine.history("dup", Some("not-a-run")).await.unwrap_err();
    assert!(matches!(err, EngineError::RunNotFound { .. }));
    let err = engine.result("nope", None).await.unwrap_err();
    assert!(matches!(err, EngineError::WorkflowNotFound { .. }));
}

/// The CLI's unknown id: one line on stderr, exit 1.
#[test]
fn cli_unknown_id_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            Engine::open(EngineConfig::new(&data).clock(Clock::system())).unwrap()
        });
    }
    let out = bin()
        .args(["workflow", "describe", "-w", "missing", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: workflow not found: no workflow with id \"missing\""
    );
}

/// A store damaged while holdfast was stopped — one bit flipped in the
/// middle of `db`, or 2,000 bytes overwritten, or the file cut short — is
/// never made worse by opening it: before, sled's repair zeroed the intact
/// data after the damage, and holdfast then said it was left untouched.
/// Now every byte of the data directory is as it was, the message says
/// what is wrong in plain words and where a copy of the damaged files is.
#[test]
fn a_damaged_store_is_never_made_worse_by_opening_it() {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("bit flip", |db| {
            let mid = db.len() / 2;
            db[mid] ^= 0x10;
        }),
        ("2000 random bytes", |db| {
            let mid = db.len() / 3;
            let mut rng = fastrand::Rng::with_seed(3);
            let end = (mid + 2000).min(db.len());
            for b in &mut db[mid..end] {
                *b = rng.u8(..);
            }
        }),
        ("cut short", |db| {
            let keep = db.len() * 2 / 3;
            db.truncate(keep);
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let engine = Engine::open(
                EngineConfig::new(&data).clock(holdfast::engine::Clock::virtual_time()),
            )
            .unwrap();
            for i in 0..200 {
                let opts = holdfast::engine::StartWorkflowOptions::new(
                    format!("wf-{i}"),
                    "T",
                    "q",
                    holdfast::engine::Payload(format!("\"{}\"", "x".repeat(200))),
                );
                engine.start_workflow(opts).await.unwrap();
            }
        });
        drop(rt); // a clean stop
        let expected: Vec<_> = {
            let archive = holdfast::engine::Archive::open(&data).unwrap();
            (0..200)
                .map(|i| archive.history(&format!("wf-{i}"), None).unwrap())
                .collect()
        };
        let db_path = data.join("db");
        let mut db = std::fs::read(&db_path).unwrap();
        damage(&mut db);
        std::fs::write(&db_path, &db).unwrap();
        let before = snapshot(&data);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let opened = rt.block_on(async {
            let engine = Engine::open(EngineConfig::new(&data))?;
            let mut histories = Vec::new();
            for i in 0..200 {
                histories.push(engine.history(&format!("wf-{i}"), None).await.ok());
            }
            Ok::<_, StoreError>(histories)
        });
        let err = match opened {
            // It opened: then nothing of what was there may be missing.
            Ok(histories) => {
                for (i, (h, want)) in histories.iter().zip(&expected).enumerate() {
                    assert_eq!(h.as_ref(), Some(want), "{what}: wf-{i} was lost or changed");
                }
                continue;
            }
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{what}: {err:?}");
        assert!(
            !msg.contains('\n') && !msg.contains("backtrace"),
            "{what}: {msg}"
        );
        assert!(
            snapshot(&data) == before,
            "{what}: opening changed the data directory"
        );
        let StoreError::Damaged { kept, .. } = &err else {
            unreachable!()
        };
        assert!(
            std::path::Path::new(kept).join("db").is_file(),
            "{what}: the copy named in the message exists: {msg}"
        );
        // And again from the command line: one line, nothing changed.
        let line = cli_list_error(&data);
        assert!(line.contains("is damaged"), "{what}: {line}");
        assert!(
            snapshot(&data) == before,
            "{what}: the CLI changed the data directory"
        );
    }
}

/// A store closed cleanly opens directly, and one only touched while
/// stopped (its time changed, not its bytes) still opens.
#[tokio::test(start_paused = true)]
async fn a_clean_or_touched_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let (engine, _) = (Engine::open(EngineConfig::new(&data)).unwrap(), ());
        common::start(&engine, "a", "T", "q", 1).await;
    }
    let engine = Engine::reopen(EngineConfig::new(&data)).await.unwrap();
    assert!(engine.describe("a", None).await.is_ok());
    drop(engine);
    let db = data.join("db");
    let f = std::fs::File::options().write(true).open(&db).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    let engine = Engine::reopen(EngineConfig::new(&data)).await.unwrap();
    assert!(engine.describe("a", None).await.is_ok());
}

/// A garbled snapshot file alone: the log is intact, so the message says to
/// remove the snapshot (not to give up the directory), nothing is changed,
/// and once it is removed the store opens with everything in it.
#[test]
fn a_garbled_snapshot_alone_says_to_remove_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::open(EngineConfig::new(&data)).unwrap();
        common::start(&engine, "kept", "T", "q", 1).await;
        drop(engine);
        // sled writes its snapshot as it opens a store with a log behind it.
        drop(Engine::reopen(EngineConfig::new(&data)).await.unwrap());
    });
    let snap = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .expect("sled wrote a snapshot");
    let mut bytes = std::fs::read(&snap).unwrap();
    for b in bytes.iter_mut().skip(8).take(16) {
        *b ^= 0x5a;
    }
    std::fs::write(&snap, &bytes).unwrap();
    let before = snapshot(&data);
    let line = cli_list_error(&data);
    assert!(line.contains("snapshot file is damaged"), "{line}");
    assert!(line.contains("remove the snapshot file"), "{line}");
    assert!(snapshot(&data) == before, "nothing changed");
    std::fs::remove_file(&snap).unwrap();
    let engine = rt
        .block_on(async { Engine::reopen(EngineConfig::new(&data)).await })
        .unwrap();
    assert!(rt.block_on(engine.describe("kept", None)).is_ok());
}
