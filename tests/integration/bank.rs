//! The money transfer of Temporal's tutorial, on the real bank: histories
//! match the ones captured from a Temporal server, money moves (or does
//! not) as the tutorial promises, and the bug is fixed both ways while the
//! workflow waits.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{signature_of, signature_of_reference, virtual_engine};
use holdfast::apps::bank::{
    self, Bank, BankError, DepositCode, Movement, PaymentDetails, QUEUE, SEED_ACCOUNTS,
};
use holdfast::engine::{
    Engine, EngineError, EventAttributes, EventType, PendingActivityState, Worker, WorkerHandle,
    WorkerOptions, WorkflowExecutionStatus, WorkflowOutcome,
};

fn worker(engine: &Engine, bank: &Bank, code: DepositCode, identity: &str) -> WorkerHandle {
    let mut w = Worker::new(engine, WorkerOptions::new(QUEUE, identity));
    bank::register(engine, &mut w, bank, code);
    w.start()
}

fn balance(bank: &Bank, account: &str) -> i64 {
    bank.account(account).unwrap().balance
}

fn seeded_total() -> i64 {
    SEED_ACCOUNTS.iter().map(|(_, b)| b).sum()
}

fn total(bank: &Bank) -> i64 {
    bank.accounts().unwrap().iter().map(|a| a.balance).sum()
}

async fn run(engine: &Engine, id: &str, details: PaymentDetails) -> WorkflowOutcome {
    bank::start_transfer(engine, id, &details).await.unwrap();
    engine.result(id, None).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn transfer_moves_the_money_with_the_tutorials_history() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let _w = worker(&engine, &bank, DepositCode::Fixed, "w1");
    let out = run(&engine, "pay-invoice-701", PaymentDetails::tutorial()).await;
    let WorkflowOutcome::Completed(result) = out else {
        panic!("expected completion, got {out:?}")
    };
    let text: String = result.to_value().unwrap();
    let withdrawal = bank.entry("12345", Movement::Withdrawal).unwrap().unwrap();
    let deposit = bank.entry("12345", Movement::Deposit).unwrap().unwrap();
    assert_eq!(
        text,
        format!(
            "Transfer complete (transaction IDs: {}, {})",
            withdrawal.transaction_id, deposit.transaction_id
        )
    );
    assert!(withdrawal.transaction_id.starts_with("W-"));
    assert!(deposit.transaction_id.starts_with("D-"));
    assert_eq!(balance(&bank, "85-150"), 1750);
    assert_eq!(balance(&bank, "43-812"), 250);
    assert_eq!(total(&bank), seeded_total());
    let h = engine.history("pay-invoice-701", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-success")
    );
    // The activity options recorded are the tutorial's.
    let Some(EventAttributes::ActivityTaskScheduled {
        start_to_close_timeout,
        retry_policy,
        ..
    }) = h
        .iter()
        .find(|e| e.event_type() == EventType::ActivityTaskScheduled)
        .map(|e| &e.attributes)
    else {
        panic!("no ActivityTaskScheduled")
    };
    assert_eq!(*start_to_close_timeout, Duration::from_secs(5));
    assert_eq!(retry_policy.maximum_attempts, 3);
    assert_eq!(retry_policy.maximum_interval, Duration::from_secs(2));
}

/// The deposit bug with the tutorial's policy: three attempts at +0, +1 s,
/// +3 s, then the refund, then the workflow fails; no money is lost.
#[tokio::test(start_paused = true)]
async fn deposit_bug_refunds_and_fails_like_the_tutorial() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let _w = worker(&engine, &bank, DepositCode::Buggy, "w1");
    let out = run(&engine, "pay-invoice-701", PaymentDetails::tutorial()).await;
    let WorkflowOutcome::Failed(f) = out else {
        panic!("expected failure, got {out:?}")
    };
    assert_eq!(f.message, "Activity task failed");
    assert_eq!(f.root_cause().message, "This deposit has failed.");
    let h = engine.history("pay-invoice-701", None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-deposit-fails-refund")
    );
    let started = h
        .iter()
        .filter(|e| e.event_type() == EventType::ActivityTaskStarted)
        .nth(1)
        .unwrap();
    let scheduled = h
        .iter()
        .filter(|e| e.event_type() == EventType::ActivityTaskScheduled)
        .nth(1)
        .unwrap();
    // attempt 3 starts after 1 s + 2 s of backoff
    assert_eq!(started.event_time_ms - scheduled.event_time_ms, 3_000);
    assert_eq!(balance(&bank, "85-150"), 2000);
    assert_eq!(balance(&bank, "43-812"), 0);
    let refs: Vec<String> = bank
        .journal()
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.reference, e.delta))
        .collect();
    assert_eq!(refs, ["12345-withdrawal -250", "12345-refund 250"]);
}

#[tokio::test(start_paused = true)]
async fn insufficient_funds_and_invalid_account_fail_without_retry_or_movement() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let _w = worker(&engine, &bank, DepositCode::Fixed, "w1");
    let cases = [
        (
            "too-much",
            PaymentDetails::new("85-150", "43-812", 25_000, "r1"),
            "money-transfer-insufficient-funds",
            "InsufficientFundsError",
            "The account 85-150 has insufficient funds to complete this transaction.",
        ),
        (
            "bad-source",
            PaymentDetails::new("85-151", "43-812", 250, "r2"),
            "money-transfer-invalid-account",
            "InvalidAccountError",
            "The account number 85-151 is invalid.",
        ),
    ];
    for (id, details, reference, ty, message) in cases {
        let out = run(&engine, id, details).await;
        let WorkflowOutcome::Failed(f) = out else {
            panic!("{id}: expected failure, got {out:?}")
        };
        assert_eq!(f.root_cause().error_type(), Some(ty), "{id}");
        assert_eq!(f.root_cause().message, message, "{id}");
        let h = engine.history(id, None).await.unwrap();
        assert_eq!(signature_of(&h), signature_of_reference(reference), "{id}");
    }
    assert!(bank.journal().unwrap().is_empty());
    assert_eq!(total(&bank), seeded_total());
}

/// A target that does not exist: the withdrawal happens, the deposit fails
/// for good (non-retryable), the source gets its money back.
#[tokio::test(start_paused = true)]
async fn unknown_target_is_refunded() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let _w = worker(&engine, &bank, DepositCode::Fixed, "w1");
    let out = run(
        &engine,
        "t",
        PaymentDetails::new("85-150", "00-000", 100, "r9"),
    )
    .await;
    let WorkflowOutcome::Failed(f) = out else {
        panic!("expected failure, got {out:?}")
    };
    assert_eq!(f.root_cause().error_type(), Some("InvalidAccountError"));
    assert_eq!(balance(&bank, "85-150"), 2000);
    let h = engine.history("t", None).await.unwrap();
    let sig = signature_of(&h);
    assert!(
        sig.iter().any(|l| l.starts_with("ActivityTaskFailed")
            && l.contains("RETRY_STATE_NON_RETRYABLE_FAILURE")
            && l.contains("InvalidAccountError")),
        "{sig:#?}"
    );
    assert_eq!(
        h.iter()
            .filter(|e| e.event_type() == EventType::ActivityTaskCompleted)
            .count(),
        2,
        "withdraw and refund completed"
    );
}

/// Waits, on the feed, until the deposit has failed `n` times and waits for its next attempt.
async fn until_deposit_failed(engine: &Engine, id: &str, n: u32) {
    let a = common::pending_activity(engine, id, "deposit", |a| {
        a.attempt > n && a.state == PendingActivityState::Scheduled
    })
    .await;
    assert_eq!(
        a.last_failure.as_ref().map(|f| f.message.as_str()),
        Some("This deposit has failed.")
    );
}

/// The tutorial's fix: stop the worker, fix the code, start it again; the
/// workflow was waiting and completes, and the withdrawal is not repeated.
#[tokio::test(start_paused = true)]
async fn bug_fixed_by_restarting_the_worker_with_fixed_code() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let buggy = worker(&engine, &bank, DepositCode::Buggy, "buggy");
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(&engine, "pay-invoice-701", &details)
        .await
        .unwrap();
    until_deposit_failed(&engine, "pay-invoice-701", 4).await;
    buggy.kill();
    // Nothing runs while no worker is up; the run waits.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let d = engine.describe("pay-invoice-701", None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Running);
    let _fixed = worker(&engine, &bank, DepositCode::Fixed, "fixed");
    let out = engine.result("pay-invoice-701", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = engine.history("pay-invoice-701", None).await.unwrap();
    let deposit_started = h
        .iter()
        .filter_map(|e| match &e.attributes {
            EventAttributes::ActivityTaskStarted {
                attempt,
                last_failure,
                identity,
                ..
            } => Some((*attempt, last_failure.is_some(), identity.clone())),
            _ => None,
        })
        .nth(1)
        .unwrap();
    assert!(deposit_started.0 >= 5, "{deposit_started:?}");
    assert!(deposit_started.1);
    assert_eq!(deposit_started.2, "fixed");
    assert_eq!(balance(&bank, "85-150"), 1750);
    assert_eq!(balance(&bank, "43-812"), 250);
    assert_eq!(
        bank.journal().unwrap().len(),
        2,
        "one withdrawal, one deposit"
    );
}

/// The hot fix: the fixed deposit swapped into the running worker.
#[tokio::test(start_paused = true)]
async fn bug_fixed_by_swapping_the_activity_into_the_running_worker() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let w = worker(&engine, &bank, DepositCode::Buggy, "w1");
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(&engine, "pay-invoice-701", &details)
        .await
        .unwrap();
    until_deposit_failed(&engine, "pay-invoice-701", 2).await;
    bank::swap_deposit(&w, &bank, DepositCode::Fixed);
    let out = engine.result("pay-invoice-701", None).await.unwrap();
    assert!(matches!(out, WorkflowOutcome::Completed(_)), "{out:?}");
    let h = engine.history("pay-invoice-701", None).await.unwrap();
    let sig = signature_of(&h);
    assert_eq!(sig.len(), 17, "{sig:#?}");
    assert_eq!(
        sig[11],
        "ActivityTaskStarted attempt=3 lastFailure=ValueError:This deposit has failed."
    );
    assert_eq!(balance(&bank, "43-812"), 250);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_refused_before_anything_starts() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let cases = [
        (PaymentDetails::new("85-150", "43-812", -5, "a"), "-5"),
        (PaymentDetails::new("85-150", "43-812", 0, "b"), "got 0"),
        (
            PaymentDetails::new("85-150", "85-150", 10, "c"),
            "same account (85-150)",
        ),
        (
            PaymentDetails::new("85-150", "43-812", 10, " "),
            "reference",
        ),
    ];
    // The app's type is registered once, by whoever starts its workflows.
    bank::register_type(&engine);
    for (details, needle) in cases {
        let err = bank::start_transfer(&engine, "bad", &details)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidInput { detail, .. } if detail.contains(needle)),
            "{err}"
        );
    }
    // An amount beyond any integer: refused as not fitting.
    let err = engine
        .start_workflow(holdfast::engine::StartWorkflowOptions::new(
            "bad",
            "MoneyTransfer",
            QUEUE,
            holdfast::engine::Payload(
                r#"{"source_account":"85-150","target_account":"43-812","amount":99999999999999999999,"reference_id":"x"}"#.into(),
            ),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput { .. }), "{err}");
    let runs = engine.list(&Default::default(), 10, None).await.unwrap();
    assert!(runs.executions.is_empty(), "nothing started");
    assert!(bank.journal().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_bank_is_idempotent_by_reference() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let first = bank.withdraw("85-150", 300, "x").await.unwrap();
    let again = bank.withdraw("85-150", 300, "x").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(balance(&bank, "85-150"), 1700);
    assert_eq!(
        bank.withdraw("85-150", 1, "x").await.unwrap_err(),
        BankError::ReferenceReused {
            reference: "x-withdrawal".into(),
            existing: first
        }
    );
    assert!(matches!(
        bank.deposit("12-358", i64::MAX, "big").await,
        Err(BankError::Overflow { .. })
    ));
    assert!(matches!(
        bank.withdraw("85-150", -1, "neg").await,
        Err(BankError::InvalidAmount { amount: -1 })
    ));
    assert_eq!(balance(&bank, "12-358"), 10_000);
    assert_eq!(bank.journal().unwrap().len(), 1);
    // The books survive a reopen.
    drop(bank);
    let data = engine.data_dir().to_path_buf();
    drop(engine);
    let config =
        holdfast::engine::EngineConfig::new(&data).clock(holdfast::engine::Clock::virtual_time());
    let engine = holdfast::engine::Engine::reopen(config).await.unwrap();
    let bank = Bank::open(&engine).unwrap();
    assert_eq!(balance(&bank, "85-150"), 1700);
    assert_eq!(total(&bank) + 300, seeded_total());
}

/// A reference is one transfer: once its money was returned it never moves
/// money again (before, a second run with the refunded reference found its
/// withdrawal "already done", deposited, and the bank's total grew by the
/// amount); a refund returns exactly what was withdrawn, never more, and
/// never after a deposit.
#[tokio::test(start_paused = true)]
async fn a_refunded_reference_never_moves_money_again() {
    let (engine, _dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let total = |bank: &Bank| -> i64 { bank.accounts().unwrap().iter().map(|a| a.balance).sum() };
    let before = total(&bank);
    bank.withdraw("85-150", 250, "r1").await.unwrap();
    let refund = bank.refund("85-150", 250, "r1").await.unwrap();
    assert_eq!(
        bank.refund("85-150", 250, "r1").await.unwrap(),
        refund,
        "idempotent"
    );
    assert_eq!(total(&bank), before);
    for err in [
        bank.withdraw("85-150", 250, "r1").await.unwrap_err(),
        bank.deposit("43-812", 250, "r1").await.unwrap_err(),
    ] {
        assert!(matches!(err, BankError::ReferenceRefunded { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("a new transfer needs a new reference")
        );
    }
    assert_eq!(total(&bank), before, "no money from nothing");
    // A refund of what was never withdrawn, of more than was, or after the
    // deposit, would create money: refused.
    assert!(matches!(
        bank.refund("85-150", 250, "never").await,
        Err(BankError::NothingToRefund { .. })
    ));
    bank.withdraw("85-150", 100, "r2").await.unwrap();
    assert!(matches!(
        bank.refund("85-150", 250, "r2").await,
        Err(BankError::NothingToRefund { .. })
    ));
    bank.deposit("43-812", 100, "r2").await.unwrap();
    assert!(matches!(
        bank.refund("85-150", 100, "r2").await,
        Err(BankError::NothingToRefund { .. })
    ));
    assert_eq!(total(&bank), before);
}

/// The tutorial's transfer with the bug and unlimited attempts, its
/// deposit waiting for attempt 4 (as the captured references were taken).
async fn deposit_in_backoff_after_3_failures() -> (Engine, Bank, WorkerHandle, tempfile::TempDir) {
    let (engine, dir) = virtual_engine();
    let bank = Bank::open(&engine).unwrap();
    let w = worker(&engine, &bank, DepositCode::Buggy, "buggy");
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(&engine, "pay-invoice-701", &details)
        .await
        .unwrap();
    until_deposit_failed(&engine, "pay-invoice-701", 3).await;
    (engine, bank, w, dir)
}

/// Cancel while the deposit waits for its next attempt (unlimited attempts,
/// attempt 3 failed), as captured on Temporal: the workflow task that
/// delivers the request cancels the deposit (TRY_CANCEL) and schedules the
/// refund; ActivityTaskCanceled follows the refund's Scheduled event with
/// `ACTIVITY_ID_NOT_STARTED`; no deposit attempt runs after the request;
/// the run closes Canceled and the money is back.
#[tokio::test(start_paused = true)]
async fn cancel_while_the_deposit_retries_refunds_and_closes_canceled() {
    let (engine, bank, w, _dir) = deposit_in_backoff_after_3_failures().await;
    let id = "pay-invoice-701";
    let started_before = w.stats().activities_started.load(Ordering::Relaxed);
    engine.cancel(id, None, "temporal-cli").await.unwrap();
    let out = engine.result(id, None).await.unwrap();
    assert_eq!(out, WorkflowOutcome::Canceled);
    let started_after = w.stats().activities_started.load(Ordering::Relaxed);
    assert_eq!(started_after - started_before, 1, "only the refund ran");
    let h = engine.history(id, None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-cancel-in-backoff")
    );
    let at = |ty: EventType| h.iter().position(|e| e.event_type() == ty).unwrap();
    let requested = at(EventType::ActivityTaskCancelRequested);
    assert_eq!(
        h[requested + 1].event_type(),
        EventType::ActivityTaskScheduled
    );
    let EventAttributes::ActivityTaskScheduled { activity_type, .. } = &h[requested + 1].attributes
    else {
        unreachable!()
    };
    assert_eq!(activity_type, "refund");
    let EventAttributes::ActivityTaskCanceled {
        details,
        latest_cancel_requested_event_id,
        scheduled_event_id,
        started_event_id,
        identity,
    } = &h[requested + 2].attributes
    else {
        panic!("expected ActivityTaskCanceled, got {:?}", h[requested + 2])
    };
    assert_eq!(
        details.as_ref().and_then(|d| d.to_value::<String>().ok()),
        Some("ACTIVITY_ID_NOT_STARTED".to_string())
    );
    assert_eq!(*latest_cancel_requested_event_id, h[requested].event_id);
    assert_eq!(*started_event_id, 0);
    assert_eq!(identity, "buggy");
    let deposit = h
        .iter()
        .find(|e| {
            matches!(&e.attributes, EventAttributes::ActivityTaskScheduled { activity_type, .. } if activity_type == "deposit")
        })
        .unwrap();
    assert_eq!(*scheduled_event_id, deposit.event_id);
    assert_eq!(
        h.last().unwrap().event_type(),
        EventType::WorkflowExecutionCanceled
    );
    // Closed as soon as the refund ran: the deposit's backoff was not waited out.
    let cancel_at = h[at(EventType::WorkflowExecutionCancelRequested)].event_time_ms;
    assert!(h.last().unwrap().event_time_ms - cancel_at < 1_000);
    assert_eq!(balance(&bank, "85-150"), 2000);
    assert_eq!(balance(&bank, "43-812"), 0);
    assert_eq!(total(&bank), seeded_total());
}

/// Terminate while the deposit waits for its next attempt, as captured on
/// Temporal: one WorkflowExecutionTerminated and nothing for the deposit;
/// describe still lists it (attempt 4, scheduled, its last failure) but no
/// next attempt; nothing runs after; the withdrawn money stays withdrawn
/// (terminate runs no workflow code: no refund — cancel is the way that refunds).
#[tokio::test(start_paused = true)]
async fn terminate_while_the_deposit_retries_stops_everything_at_once() {
    let (engine, bank, w, _dir) = deposit_in_backoff_after_3_failures().await;
    let id = "pay-invoice-701";
    engine
        .terminate(id, None, "stuck retrying", "temporal-cli")
        .await
        .unwrap();
    let started = w.stats().activities_started.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        w.stats().activities_started.load(Ordering::Relaxed),
        started
    );
    let h = engine.history(id, None).await.unwrap();
    assert_eq!(
        signature_of(&h),
        signature_of_reference("money-transfer-terminate-in-backoff")
    );
    let d = engine.describe(id, None).await.unwrap();
    assert_eq!(d.info.status, WorkflowExecutionStatus::Terminated);
    let a = &d.pending_activities[0];
    assert_eq!((a.activity_type.as_str(), a.attempt), ("deposit", 4));
    assert_eq!(a.state, PendingActivityState::Scheduled);
    assert_eq!(
        a.last_failure.as_ref().map(|f| f.message.as_str()),
        Some("This deposit has failed.")
    );
    assert_eq!(a.next_attempt_schedule_time_ms, None);
    assert_eq!(a.last_started_time_ms, None);
    assert_eq!(balance(&bank, "85-150"), 1750);
}
