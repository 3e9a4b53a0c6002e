//! The money transfer of Temporal's first tutorial, on holdfast's engine:
//! a bank whose books live in sled beside the engine ([`Bank`]), the
//! `withdraw` / `deposit` / `refund` activities (idempotent by reference),
//! and the `MoneyTransfer` workflow: withdraw, deposit, and if the deposit
//! fails for good, refund the source and fail.
//!
//! The tutorial's bug is a second version of `deposit` that calls
//! `deposit_that_fails`; a worker runs one or the other ([`DepositCode`]),
//! and the fix is a worker restarted with the fixed code or the fixed
//! activity swapped into the running worker.

mod ledger;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use ledger::{Account, Bank, BankError, JournalEntry, Movement, SEED_ACCOUNTS};

use crate::engine::{
    ActivityContext, ApplicationError, Engine, EngineError, Payload, RetryPolicy, RunHandle,
    StartWorkflowOptions, WfContext, Worker, WorkerHandle, WorkflowError, activity_options,
};

/// The tutorial's task queue.
pub const QUEUE: &str = "TRANSFER_MONEY_TASK_QUEUE";
/// The tutorial's workflow type and id.
pub const WORKFLOW_TYPE: &str = "MoneyTransfer";
pub const WORKFLOW_ID: &str = "pay-invoice-701";

/// The tutorial's `PaymentDetails`, plus an optional override of the retry
/// policy (scenarios use it to show a deposit retried without limit).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PaymentDetails {
    pub source_account: String,
    pub target_account: String,
    pub amount: i64,
    pub reference_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<TransferRetry>,
    /// A transfer scheduled for later: the workflow first sleeps this many
    /// seconds on a durable timer (not in the tutorial; the timer lesson).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<u64>,
}

/// Overrides of the tutorial's activity options for one run.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TransferRetry {
    /// 0 retries without limit; the tutorial's is 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_attempts: Option<u32>,
    /// The tutorial's is 5 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_to_close_ms: Option<u64>,
}

impl PaymentDetails {
    pub fn new(source: &str, target: &str, amount: i64, reference_id: &str) -> Self {
        PaymentDetails {
            source_account: source.to_string(),
            target_account: target.to_string(),
            amount,
            reference_id: reference_id.to_string(),
            retry: None,
            delay_secs: None,
        }
    }

    /// The tutorial's request: 250 from 85-150 to 43-812, reference 12345.
    pub fn tutorial() -> Self {
        PaymentDetails::new("85-150", "43-812", 250, "12345")
    }

    pub fn with_maximum_attempts(mut self, attempts: u32) -> Self {
        self.retry
            .get_or_insert_with(Default::default)
            .maximum_attempts = Some(attempts);
        self
    }

    /// Refuses what no bank should be asked: checked before a run starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.amount <= 0 {
            return Err(format!(
                "amount must be a whole number above zero, got {}",
                self.amount
            ));
        }
        for (what, account) in [
            ("source", &self.source_account),
            ("target", &self.target_account),
        ] {
            if account.trim().is_empty() {
                return Err(format!("the {what} account is empty"));
            }
        }
        if self.source_account == self.target_account {
            return Err(format!(
                "source and target are the same account ({})",
                self.source_account
            ));
        }
        if self.reference_id.trim().is_empty() {
            return Err("the reference id is empty".into());
        }
        Ok(())
    }

    /// The tutorial's retry policy, with this run's overrides.
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut p = RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(2),
            maximum_attempts: 3,
            non_retryable_error_types: vec![
                "InvalidAccountError".into(),
                "InsufficientFundsError".into(),
            ],
        };
        if let Some(n) = self.retry.as_ref().and_then(|r| r.maximum_attempts) {
            p.maximum_attempts = n;
        }
        p
    }

    pub fn start_to_close(&self) -> Duration {
        let ms = self.retry.as_ref().and_then(|r| r.start_to_close_ms);
        Duration::from_millis(ms.unwrap_or(5_000))
    }
}

/// Which `deposit` a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositCode {
    /// `bank.deposit`.
    Fixed,
    /// The tutorial's commented-out line: `bank.deposit_that_fails`.
    Buggy,
}

impl DepositCode {
    /// The build a worker running this code declares ("deposit: buggy").
    pub fn build_id(self) -> &'static str {
        match self {
            DepositCode::Fixed => "deposit: fixed",
            DepositCode::Buggy => "deposit: buggy",
        }
    }
}

fn app_error(e: BankError) -> ApplicationError {
    // Non-retryability comes from the workflow's retry policy, as in the
    // tutorial, except for errors no retry can fix.
    match e {
        BankError::InvalidAmount { .. }
        | BankError::Overflow { .. }
        | BankError::ReferenceReused { .. }
        | BankError::ReferenceRefunded { .. }
        | BankError::NothingToRefund { .. } => {
            ApplicationError::non_retryable(e.error_type(), e.to_string())
        }
        _ => ApplicationError::retryable(e.error_type(), e.to_string()),
    }
}

fn log_failure(what: &str, ctx: &ActivityContext, e: &BankError) {
    if !matches!(e, BankError::InvalidAccount { .. }) {
        tracing::warn!(
            workflow_id = %ctx.workflow_id,
            activity_id = %ctx.activity_id,
            attempt = ctx.attempt,
            "{what} failed: {e}"
        );
    }
}

async fn withdraw(
    bank: Bank,
    ctx: ActivityContext,
    p: PaymentDetails,
) -> Result<String, ApplicationError> {
    // As the tutorial's activities print it.
    tracing::info!(workflow_id = %ctx.workflow_id, "Withdrawing ${} from account {}.", p.amount, p.source_account);
    bank.withdraw(&p.source_account, p.amount, &p.reference_id)
        .await
        .inspect_err(|e| log_failure("Withdrawal", &ctx, e))
        .map_err(app_error)
}

async fn deposit(
    bank: Bank,
    code: DepositCode,
    ctx: ActivityContext,
    p: PaymentDetails,
) -> Result<String, ApplicationError> {
    tracing::info!(workflow_id = %ctx.workflow_id, "Depositing ${} into account {}.", p.amount, p.target_account);
    let outcome = match code {
        DepositCode::Fixed => {
            bank.deposit(&p.target_account, p.amount, &p.reference_id)
                .await
        }
        DepositCode::Buggy => {
            bank.deposit_that_fails(&p.target_account, p.amount, &p.reference_id)
                .await
        }
    };
    outcome
        .inspect_err(|e| log_failure("Deposit", &ctx, e))
        .map_err(app_error)
}

async fn refund(
    bank: Bank,
    ctx: ActivityContext,
    p: PaymentDetails,
) -> Result<String, ApplicationError> {
    tracing::info!(workflow_id = %ctx.workflow_id, "Refunding ${} back into account {}.", p.amount, p.source_account);
    bank.refund(&p.source_account, p.amount, &p.reference_id)
        .await
        .inspect_err(|e| log_failure("Refund", &ctx, e))
        .map_err(app_error)
}

/// The tutorial's workflow.
pub async fn money_transfer(ctx: WfContext, p: PaymentDetails) -> Result<String, WorkflowError> {
    if let Some(secs) = p.delay_secs {
        // A durable timer: it survives a crash and fires once, on time.
        ctx.sleep(Duration::from_secs(secs)).await?;
    }
    let opts = activity_options()
        .start_to_close(p.start_to_close())
        .retry(p.retry_policy());
    let withdrawn: String = ctx.activity("withdraw", &p, opts.clone()).await?;
    let deposit_err = match ctx.activity::<String>("deposit", &p, opts.clone()).await {
        Ok(deposited) => {
            return Ok(format!(
                "Transfer complete (transaction IDs: {withdrawn}, {deposited})"
            ));
        }
        Err(e) => e,
    };
    if !ctx.is_replaying() {
        tracing::error!(workflow_id = %ctx.info().workflow_id, "Deposit failed: {deposit_err}");
    }
    match ctx.activity::<String>("refund", &p, opts).await {
        Ok(confirmation) => {
            if !ctx.is_replaying() {
                tracing::info!(
                    workflow_id = %ctx.info().workflow_id,
                    "Refund successful. Confirmation ID: {confirmation}"
                );
            }
            // The workflow fails even after a successful refund, as the tutorial's does.
            Err(deposit_err.into())
        }
        Err(refund_err) => {
            if !ctx.is_replaying() {
                tracing::error!(workflow_id = %ctx.info().workflow_id, "Refund failed: {refund_err}");
            }
            Err(refund_err.into())
        }
    }
}

/// Makes `MoneyTransfer` known to the engine with a check of its input, so a
/// bad request is refused before anything starts.
pub fn register_type(engine: &Engine) {
    engine.register_workflow_type(
        WORKFLOW_TYPE,
        Arc::new(|p: &Payload| {
            let d: PaymentDetails = p
                .to_value()
                .map_err(|e| format!("these are not payment details: {e}"))?;
            d.validate()
        }),
    );
}

/// The workflow after a code change that is not replay-safe: it checks the
/// source's balance before withdrawing. A run begun with the old code has
/// `withdraw` where this code now schedules `check_balance`: replaying it
/// is a nondeterminism error (Temporal's lesson: version such changes).
pub async fn money_transfer_changed(
    ctx: WfContext,
    p: PaymentDetails,
) -> Result<String, WorkflowError> {
    let opts = activity_options()
        .start_to_close(p.start_to_close())
        .retry(p.retry_policy());
    let _balance: i64 = ctx.activity("check_balance", &p, opts).await?;
    money_transfer(ctx, p).await
}

/// Registers the workflow and the three activities, as the tutorial's
/// `run_worker.py` (and `check_balance`, which the changed workflow uses).
pub fn register(engine: &Engine, worker: &mut Worker, bank: &Bank, code: DepositCode) {
    register_with(engine, worker, bank, code, false)
}

/// As [`register`], with the changed workflow code when `changed`.
pub fn register_with(
    engine: &Engine,
    worker: &mut Worker,
    bank: &Bank,
    code: DepositCode,
    changed: bool,
) {
    if changed {
        worker.register_workflow(WORKFLOW_TYPE, money_transfer_changed);
    } else {
        worker.register_workflow(WORKFLOW_TYPE, money_transfer);
    }
    let b = bank.clone();
    worker.register_activity(
        "check_balance",
        move |_: ActivityContext, p: PaymentDetails| {
            let b = b.clone();
            async move {
                b.account(&p.source_account)
                    .map(|a| a.balance)
                    .map_err(app_error)
            }
        },
    );
    let b = bank.clone();
    worker.register_activity("withdraw", move |ctx, p| withdraw(b.clone(), ctx, p));
    let b = bank.clone();
    worker.register_activity("deposit", move |ctx, p| deposit(b.clone(), code, ctx, p));
    let b = bank.clone();
    worker.register_activity("refund", move |ctx, p| refund(b.clone(), ctx, p));
    register_type(engine);
}

/// Swaps a version of `deposit` into a running worker: the hot fix (or the bug).
pub fn swap_deposit(worker: &WorkerHandle, bank: &Bank, code: DepositCode) {
    let b = bank.clone();
    worker.swap_activity("deposit", move |ctx, p| deposit(b.clone(), code, ctx, p));
}

/// Starts a transfer on the tutorial's queue.
pub async fn start_transfer(
    engine: &Engine,
    workflow_id: &str,
    details: &PaymentDetails,
) -> Result<RunHandle, EngineError> {
    let input = Payload::from_value(details).map_err(|e| EngineError::InvalidInput {
        workflow_type: WORKFLOW_TYPE.into(),
        detail: e.to_string(),
    })?;
    engine
        .start_workflow(StartWorkflowOptions::new(
            workflow_id,
            WORKFLOW_TYPE,
            QUEUE,
            input,
        ))
        .await
}
