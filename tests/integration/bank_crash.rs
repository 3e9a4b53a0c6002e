//! The bank invariant test (Jepsen's bank test) under kill -9: 500
//! transfers between the bank's eight accounts, with the deposit bug
//! switched in and out at random and some transfers too large or to and
//! from accounts that do not exist, in a child process (`holdfast
//! bank-chaos-child`) SIGKILLed at random instants. After every kill the
//! parent opens the store and checks the books:
//!
//! - money is conserved: balances plus money withdrawn and not yet
//!   deposited or refunded equal what the bank was seeded with;
//! - no balance is negative, and every balance is its seed plus its journal;
//! - each reference is withdrawn at most once and deposited or refunded at
//!   most once, never both, and nothing is deposited or refunded that was
//!   not withdrawn;
//!
//! and at the end, after a run that is not killed, that every transfer
//! ended completed (withdrawn and deposited, its result naming the bank's
//! transaction ids) or failed (nothing moved, or withdrawn and refunded).
//!
//! `HOLDFAST_BANK_KILLS` sets the number of kills (default 30).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use holdfast::apps::bank::{Bank, SEED_ACCOUNTS};
use holdfast::engine::{Archive, EventAttributes, WorkflowExecutionStatus};

const TRANSFERS: usize = 500;

fn child(data: &std::path::Path, seed: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    c.args([
        "bank-chaos-child",
        "--transfers",
        &TRANSFERS.to_string(),
        "--seed",
        &seed.to_string(),
        "--data-dir",
    ])
    .arg(data)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

#[derive(Default, Debug)]
struct Movements {
    withdrawn: Option<(i64, String)>,
    deposited: Option<(i64, String)>,
    refunded: Option<(i64, String)>,
}

/// Checks the books; returns each transfer reference's movements.
fn check_books(store: &Archive, when: &str) -> HashMap<String, Movements> {
    let bank = Bank::open_in(store).expect("bank opens");
    let journal = bank.journal().expect("journal decodes");
    let mut expected: HashMap<String, i64> = SEED_ACCOUNTS
        .iter()
        .map(|(a, b)| (a.to_string(), *b))
        .collect();
    let mut by_ref: HashMap<String, Movements> = HashMap::new();
    for (i, e) in journal.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as u64 + 1,
            "{when}: journal has a gap at {}",
            e.seq
        );
        *expected
            .get_mut(&e.account)
            .expect("journal names a real account") += e.delta;
        let (base, kind) = e.reference.rsplit_once('-').expect("reference has a kind");
        let m = by_ref.entry(base.to_string()).or_default();
        let slot = match kind {
            "withdrawal" => &mut m.withdrawn,
            "deposit" => &mut m.deposited,
            "refund" => &mut m.refunded,
            other => panic!("{when}: unknown movement {other}"),
        };
        assert!(slot.is_none(), "{when}: {} moved money twice", e.reference);
        *slot = Some((e.delta, e.transaction_id.clone()));
    }
    let accounts = bank.accounts().unwrap();
    assert_eq!(accounts.len(), SEED_ACCOUNTS.len());
    let mut total = 0;
    for a in &accounts {
        assert!(
            a.balance >= 0,
            "{when}: {} is negative: {}",
            a.number,
            a.balance
        );
        assert_eq!(
            a.balance, expected[&a.number],
            "{when}: balance of {} is not its seed plus its journal",
            a.number
        );
        total += a.balance;
    }
    let mut in_flight = 0;
    for (r, m) in &by_ref {
        assert!(
            !(m.deposited.is_some() && m.refunded.is_some()),
            "{when}: {r} deposited and refunded"
        );
        match &m.withdrawn {
            None => assert!(
                m.deposited.is_none() && m.refunded.is_none(),
                "{when}: {r} deposited or refunded without a withdrawal"
            ),
            Some((w, _)) => {
                for (d, _) in m.deposited.iter().chain(&m.refunded) {
                    assert_eq!(*d, -w, "{when}: {r} moved a different amount back");
                }
                if m.deposited.is_none() && m.refunded.is_none() {
                    in_flight -= w;
                }
            }
        }
    }
    let seeded: i64 = SEED_ACCOUNTS.iter().map(|(_, b)| b).sum();
    assert_eq!(
        total + in_flight,
        seeded,
        "{when}: money was created or lost (balances {total}, in flight {in_flight})"
    );
    by_ref
}

/// How a transfer ended, its result, and the reference it used (read from
/// its input: some transfers reuse an earlier transfer's reference).
fn final_outcome(store: &Archive, id: &str) -> (WorkflowExecutionStatus, Option<String>, String) {
    let run = store
        .describe(id)
        .unwrap_or_else(|e| panic!("{id} was never started: {e}"));
    let history = store.history(id, None).unwrap();
    let reference = match &history[0].attributes {
        EventAttributes::WorkflowExecutionStarted { input, .. } => {
            input
                .to_value::<holdfast::apps::bank::PaymentDetails>()
                .expect("payment details")
                .reference_id
        }
        other => panic!("{id} begins with {other:?}"),
    };
    let result = history.iter().find_map(|e| match &e.attributes {
        EventAttributes::WorkflowExecutionCompleted { result, .. } => {
            result.to_value::<String>().ok()
        }
        _ => None,
    });
    (run.info.status, result, reference)
}

/// Checks that every transfer ended as it may; returns (completed, failed, refunded).
fn check_endings(store: &Archive, by_ref: &HashMap<String, Movements>) -> (usize, usize, usize) {
    let (mut completed, mut failed, mut refunded) = (0, 0, 0);
    let mut reused = 0;
    let mut completed_refs = std::collections::HashSet::new();
    let mut deposited_by_other = Vec::new();
    for i in 0..TRANSFERS {
        let id = format!("transfer-{i}");
        let (status, result, reference) = final_outcome(store, &id);
        if reference != format!("t{i}") {
            reused += 1;
        }
        let m = by_ref.get(&reference);
        match status {
            WorkflowExecutionStatus::Completed => {
                completed += 1;
                completed_refs.insert(reference.clone());
                let m = m.unwrap_or_else(|| panic!("{id} completed but moved no money"));
                let (Some((_, w)), Some((_, d)), None) = (&m.withdrawn, &m.deposited, &m.refunded)
                else {
                    panic!("{id} completed but its movements are {m:?}")
                };
                assert_eq!(
                    result.as_deref(),
                    Some(format!("Transfer complete (transaction IDs: {w}, {d})").as_str()),
                    "{id}: the result names other transactions than the bank made"
                );
            }
            WorkflowExecutionStatus::Failed => {
                failed += 1;
                if let Some(m) = m {
                    // Its reference moved money: refunded, or deposited by
                    // another transfer of the same request that completed.
                    assert!(
                        m.refunded.is_some() || m.deposited.is_some(),
                        "{id} failed and left its money in flight: {m:?}"
                    );
                    if m.refunded.is_some() {
                        refunded += 1;
                    } else {
                        deposited_by_other.push((id.clone(), reference.clone()));
                    }
                }
            }
            other => panic!("{id} ended {other:?}"),
        }
    }
    for (id, reference) in deposited_by_other {
        assert!(
            completed_refs.contains(&reference),
            "{id} failed, yet its reference {reference} deposited and no transfer of it completed"
        );
    }
    assert!(reused > 0, "the plan reuses some references");
    (completed, failed, refunded)
}

/// Runs the workload to its end without a kill and checks every ending.
fn finish_epoch(data: &std::path::Path, seed: u64, totals: &mut (usize, usize, usize)) {
    let out = child(data, seed).output().expect("final child");
    assert!(
        out.status.success(),
        "final child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Archive::open(data).unwrap_or_else(|e| panic!("store opens: {e}"));
    let by_ref = check_books(&store, "at the end");
    for (reference, m) in &by_ref {
        assert!(
            m.withdrawn.is_none() || m.deposited.is_some() || m.refunded.is_some(),
            "at the end, {reference} still holds withdrawn money: {m:?}"
        );
    }
    let (c, f, r) = check_endings(&store, &by_ref);
    totals.0 += c;
    totals.1 += f;
    totals.2 += r;
}

#[test]
fn bank_books_balance_after_every_kill() {
    let kills: usize = std::env::var("HOLDFAST_BANK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed = std::env::var("HOLDFAST_BANK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("bank crash test: {kills} kills, seed {seed} (HOLDFAST_BANK_SEED to repeat)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    // An epoch is one data dir and one run of the workload; once a child
    // gets to the end before its kill, the epoch is checked and a new one begins.
    let mut epoch = 0;
    let mut data = dir.path().join("data-0");
    let mut totals = (0, 0, 0);
    let mut killed = 0;
    let mut moved_before = 0;
    let mut round = 0;
    while killed < kills {
        round += 1;
        let mut c = child(&data, seed).spawn().expect("spawn child");
        // Anywhere from during open and recovery to well into the transfers.
        std::thread::sleep(Duration::from_millis(rng.u64(0..=400)));
        let _ = c.kill(); // SIGKILL
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked"),
            "round {round}: child panicked: {err}"
        );
        if out.status.success() {
            finish_epoch(&data, seed, &mut totals);
            epoch += 1;
            data = dir.path().join(format!("data-{epoch}"));
            moved_before = 0;
            continue;
        }
        killed += 1;
        if !data.join("db").exists() {
            continue; // killed before it created the store
        }
        let store = Archive::open(&data).expect("store reopens after kill -9");
        let by_ref = check_books(&store, &format!("after kill {round}"));
        let moved: usize = by_ref.len();
        assert!(moved >= moved_before, "round {round}: movements were lost");
        moved_before = moved;
    }
    finish_epoch(&data, seed, &mut totals);
    let (completed, failed, refunded) = totals;
    eprintln!(
        "bank crash test: {killed} kills in {round} rounds over {} epochs; {completed} transfers completed, {failed} failed ({refunded} of them refunded)",
        epoch + 1
    );
    assert!(completed > 0 && refunded > 0, "both endings were exercised");
}
