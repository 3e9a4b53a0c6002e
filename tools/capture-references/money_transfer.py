"""The money transfer of Temporal's first tutorial, written again for the
reference captures (same names, options and behaviour; none of its code).

Workflow `MoneyTransfer` on the task queue `TRANSFER_MONEY_TASK_QUEUE`
(the name the tutorial, holdfast's `src/apps/bank.rs` and the existing
reference histories use): withdraw, then deposit; if the deposit fails for
good (or is cancelled), refund the source and re-raise the deposit's error.

This module is imported into the workflow sandbox, so it imports nothing but
the standard library and temporalio at the top level.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, Optional

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

TASK_QUEUE = "TRANSFER_MONEY_TASK_QUEUE"
WORKFLOW_TYPE = "MoneyTransfer"


class PaymentDetails:
    """The tutorial's PaymentDetails, plus an optional retry override.

    A plain class rather than a dataclass so that `retry` is left out of the
    JSON when it is not set (the SDK's JSON encoder calls `dict()`): the
    tutorial's input stays byte-for-byte the tutorial's, and a run with an
    override carries `"retry":{"maximum_attempts":0}` as holdfast's
    `PaymentDetails` does.
    """

    def __init__(
        self,
        source_account: str,
        target_account: str,
        amount: int,
        reference_id: str,
        retry: Optional[dict[str, Any]] = None,
    ) -> None:
        self.source_account = source_account
        self.target_account = target_account
        self.amount = amount
        self.reference_id = reference_id
        self.retry = retry

    def dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source_account": self.source_account,
            "target_account": self.target_account,
            "amount": self.amount,
            "reference_id": self.reference_id,
        }
        if self.retry:
            d["retry"] = dict(self.retry)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PaymentDetails":
        return cls(
            d["source_account"],
            d["target_account"],
            int(d["amount"]),
            d["reference_id"],
            d.get("retry"),
        )

    @classmethod
    def tutorial(cls, maximum_attempts: Optional[int] = None) -> "PaymentDetails":
        """250 from 85-150 to 43-812, reference 12345."""
        retry = None if maximum_attempts is None else {"maximum_attempts": maximum_attempts}
        return cls("85-150", "43-812", 250, "12345", retry)

    def maximum_attempts(self) -> int:
        """The tutorial's 3, or this run's override (0 = unlimited)."""
        if self.retry and "maximum_attempts" in self.retry:
            return int(self.retry["maximum_attempts"])
        return 3


# --- activities -------------------------------------------------------------


class InvalidAccountError(Exception):
    pass


class InsufficientFundsError(Exception):
    pass


class Bank:
    """An in-memory bank, one per worker process (enough for captures)."""

    def __init__(self) -> None:
        self.balances = {"85-150": 2000, "43-812": 0}

    def _check(self, account: str) -> None:
        if account not in self.balances:
            raise InvalidAccountError(f"The account number {account} is invalid.")

    def withdraw(self, account: str, amount: int) -> str:
        self._check(account)
        if amount > self.balances[account]:
            raise InsufficientFundsError(
                f"The account {account} has insufficient funds."
            )
        self.balances[account] -= amount
        return f"W-{uuid.uuid4()}"

    def deposit(self, account: str, amount: int) -> str:
        self._check(account)
        self.balances[account] += amount
        return f"D-{uuid.uuid4()}"


class BankingActivities:
    """`withdraw`, `deposit`, `refund`.

    `deposit_bug`: the tutorial's bug, a deposit that raises every time.
    `withdraw_sleep`: seconds the withdraw takes (gives the capture a window
    in which to stop or kill the worker while an activity is running).
    """

    def __init__(self, deposit_bug: bool, withdraw_sleep: float = 0.0) -> None:
        self.bank = Bank()
        self.deposit_bug = deposit_bug
        self.withdraw_sleep = withdraw_sleep

    def _log(self, what: str) -> None:
        info = activity.info()
        print(
            f"activity {info.activity_type} id={info.activity_id} "
            f"attempt={info.attempt} workflow={info.workflow_id}: {what}",
            flush=True,
        )

    @activity.defn(name="withdraw")
    async def withdraw(self, details: dict) -> str:
        p = PaymentDetails.from_dict(details)
        self._log("started")
        if self.withdraw_sleep:
            await asyncio.sleep(self.withdraw_sleep)
        confirmation = self.bank.withdraw(p.source_account, p.amount)
        self._log(f"done {confirmation}")
        return confirmation

    @activity.defn(name="deposit")
    async def deposit(self, details: dict) -> str:
        p = PaymentDetails.from_dict(details)
        self._log("started")
        if self.deposit_bug:
            self._log("failing (deposit bug)")
            raise ValueError("This deposit has failed.")
        confirmation = self.bank.deposit(p.target_account, p.amount)
        self._log(f"done {confirmation}")
        return confirmation

    @activity.defn(name="refund")
    async def refund(self, details: dict) -> str:
        # As in the tutorial, a refund is a deposit back into the source
        # account (so its confirmation starts with "D-").
        p = PaymentDetails.from_dict(details)
        self._log("started")
        confirmation = self.bank.deposit(p.source_account, p.amount)
        self._log(f"done {confirmation}")
        return confirmation


# --- workflow ---------------------------------------------------------------


@workflow.defn(name=WORKFLOW_TYPE)
class MoneyTransfer:
    @workflow.run
    async def run(self, details: dict) -> str:
        p = PaymentDetails.from_dict(details)
        retry_policy = RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=2),
            maximum_attempts=p.maximum_attempts(),
            non_retryable_error_types=["InvalidAccountError", "InsufficientFundsError"],
        )
        options: dict[str, Any] = dict(
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=retry_policy,
        )

        withdrawn = await workflow.execute_activity(
            "withdraw", p, result_type=str, **options
        )
        try:
            deposited = await workflow.execute_activity(
                "deposit", p, result_type=str, **options
            )
        except ActivityError as deposit_err:
            workflow.logger.error(f"Deposit failed: {deposit_err}")
            try:
                refunded = await workflow.execute_activity(
                    "refund", p, result_type=str, **options
                )
                workflow.logger.info(f"Refund successful. Confirmation ID: {refunded}")
            except ActivityError as refund_err:
                workflow.logger.error(f"Refund failed: {refund_err}")
                raise refund_err from deposit_err
            # The workflow fails even after a successful refund. Re-raising
            # the deposit's ActivityError (as the tutorial and holdfast do)
            # also makes a cancelled deposit end the run as Canceled.
            raise deposit_err
        return f"Transfer complete (transaction IDs: {withdrawn}, {deposited})"
