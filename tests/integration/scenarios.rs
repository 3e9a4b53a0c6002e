//! Every scenario in `scenarios/` runs headless on the virtual clock and
//! every step's checks hold: each lesson holdfast teaches is proven here.
//! A broken file is refused with its file, line, column and what was
//! expected; a scenario whose check fails makes `holdfast scenario run`
//! exit non-zero.

use std::process::Command;

use holdfast::apps::lab::Lab;
use holdfast::apps::research::Llm;
use holdfast::engine::{Clock, EngineConfig};
use holdfast::scenario::{self, Scenario};

#[tokio::test(start_paused = true)]
async fn every_scenario_passes_headless() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = scenario::files_in(&dir).unwrap();
    assert!(files.len() >= 10, "the ten scenarios: {files:?}");
    let mut failed = Vec::new();
    for f in files {
        let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap();
        let config = EngineConfig::new(tmp.path().join("data")).clock(Clock::virtual_time());
        let mut lab = Lab::open(config, Llm::Offline).unwrap();
        scenario::prepare(&s, &mut lab).unwrap();
        let mut log = Vec::new();
        let ok = scenario::run(&s, &mut lab, |r| log.push(scenario::describe_step(r))).await;
        if !ok {
            failed.push(format!("{}:\n{}", f.display(), log.join("\n")));
        }
        lab.kill_workers();
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn parse_err(text: &str) -> String {
    Scenario::parse(text, "broken.toml")
        .unwrap_err()
        .to_string()
}

const HEAD: &str = "title = \"t\"\nsummary = \"s\"\napp = \"transfer\"\n";

/// Bad TOML, an unknown action or check, a missing or mistyped field: one
/// line naming the file, the line and column, and what was expected.
#[test]
fn broken_files_say_where_and_what() {
    let e = parse_err(&format!("{HEAD}[[step]\nsay = \"x\"\n"));
    assert!(e.starts_with("broken.toml:4:"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[step]]\nsay = \"x\"\ndo = {{ action = \"explode\" }}\n"
    ));
    assert!(e.starts_with("broken.toml:6:"), "{e}");
    assert!(e.contains("unknown variant `explode`"), "{e}");
    assert!(e.contains("kill_worker"), "it lists what was expected: {e}");

    let e = parse_err(&format!(
        "{HEAD}[[step]]\nsay = \"x\"\nexpect = [{{ check = \"telepathy\" }}]\n"
    ));
    assert!(e.starts_with("broken.toml:6:"), "{e}");
    assert!(e.contains("unknown variant `telepathy`"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[step]]\nsay = \"x\"\nexpect = [{{ check = \"balance\", account = \"85-150\" }}]\n"
    ));
    assert!(e.contains("missing field `equals`"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[step]]\nsay = \"x\"\nexpect = [{{ check = \"balance\", account = \"85-150\", equals = \"lots\" }}]\n"
    ));
    assert!(e.starts_with("broken.toml:6:"), "{e}");
    assert!(
        e.contains("expected i64") || e.contains("invalid type"),
        "{e}"
    );

    let e = parse_err(&format!("{HEAD}[[step]]\nsay = \"x\"\nwhen = 3\n"));
    assert!(e.contains("unknown field `when`"), "{e}");

    let e = parse_err(HEAD);
    assert!(
        e.contains("missing field `step`") || e.contains("at least one"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

/// The headless runner prints each step with its observed values and
/// exits non-zero when a check does not hold in time; a broken file stops
/// everything before it starts.
#[test]
fn the_cli_runs_scenarios_and_fails_on_a_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("impossible.toml");
    std::fs::write(
        &bad,
        format!(
            "{HEAD}[[step]]\nsay = \"Expect money from nowhere.\"\nwithin = 5\nexpect = [{{ check = \"balance\", account = \"43-812\", equals = 1000000 }}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["scenario", "run"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ 1. Expect money from nowhere."),
        "{stdout}"
    );
    assert!(stdout.contains("✗ balance: $0"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scenario(s) failed"), "{stderr}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "title = \n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["scenario", "run"])
        .arg(&bad)
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing started"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml:1:"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["scenario", "run", "01-first-transfer"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("✓ history_length: 17 events"));
}

/// An event check with attributes holds only when the event has them; the
/// scenario's retry override reaches the transfers it starts.
#[tokio::test(start_paused = true)]
async fn event_attributes_and_retry_overrides_are_checked() {
    let text = |retry_state: &str| {
        format!(
            r#"{HEAD}faults = ["deposit-bug"]
retry = {{ maximum_attempts = 2 }}
[[step]]
say = "x"
do = {{ action = "start_transfer", workflow_id = "p" }}
within = 30
expect = [{{ check = "event", workflow = "p", type = "ActivityTaskFailed", activity = "deposit", attributes = {{ retry_state = "{retry_state}" }} }}]
"#
        )
    };
    for (state, holds) in [("MaximumAttemptsReached", true), ("Timeout", false)] {
        let s = Scenario::parse(&text(state), "t.toml").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let config = EngineConfig::new(tmp.path().join("data")).clock(Clock::virtual_time());
        let mut lab = Lab::open(config, Llm::Offline).unwrap();
        scenario::prepare(&s, &mut lab).unwrap();
        let ok = scenario::run(&s, &mut lab, |_| {}).await;
        assert_eq!(ok, holds, "{state}");
        let h = lab.engine().history("p", None).await.unwrap();
        let started = h
            .iter()
            .filter_map(|e| match &e.attributes {
                holdfast::engine::EventAttributes::ActivityTaskStarted { attempt, .. } => {
                    Some(*attempt)
                }
                _ => None,
            })
            .max();
        assert_eq!(
            started,
            Some(2),
            "two deposit attempts, as the override says"
        );
        lab.kill_workers();
    }
}
