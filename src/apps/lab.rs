//! The lab: the engine, the bank, the research report's model and the
//! faults, with every action a person or a scenario can take on them —
//! kill the worker, start it, switch a fault, hot-swap the fixed deposit,
//! restart the worker with the fixed code, crash the engine. The terminal
//! UI and the scenarios drive this; nothing here draws.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::apps::bank::{self, Bank, BankError, DepositCode, PaymentDetails};
use crate::apps::faults::{Fault, Faults};
use crate::apps::research::{self, GenerateReportInput, Llm, ResearchDeps};
use crate::engine::{
    Engine, EngineConfig, EngineError, EventType, Payload, Recovery, SPEED_RANGE, StoreError,
    Worker, WorkerHandle, WorkerOptions,
};

#[derive(thiserror::Error, Debug)]
pub enum LabError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("cannot keep the fault switches in the data directory: {0}")]
    Faults(String),
    #[error("{0}")]
    Invalid(String),
}

/// Everything a person or a scenario can do, applied by [`Lab::apply`]: the
/// terminal UI's keys, scenario steps, chaos and the CLI's stories name the
/// same actions. In a scenario file: `action = "set_fault"`, `fault =
/// "deposit-bug"`, `on = true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Start the tutorial's MoneyTransfer (defaults: 250 from 85-150 to
    /// 43-812, a fresh reference, the tutorial's retry policy).
    StartTransfer {
        #[serde(default)]
        workflow_id: Option<String>,
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        amount: Option<i64>,
        #[serde(default)]
        reference: Option<String>,
        /// Deposit attempts before giving up (0: retry until fixed).
        #[serde(default)]
        max_attempts: Option<u32>,
        /// Schedule it: the workflow waits this long on a durable timer first.
        #[serde(default)]
        delay_secs: Option<u64>,
    },
    /// Start the research report.
    StartReport {
        #[serde(default)]
        workflow_id: Option<String>,
        prompt: String,
        /// Wait for a person's decision on the draft.
        #[serde(default)]
        approval: bool,
        #[serde(default)]
        email_to: Option<String>,
    },
    /// Kill the worker like a crash: what it runs is dropped, the engine is
    /// told nothing, the next task of a run it had cached waits 10 s on its
    /// sticky queue.
    KillWorker,
    /// Stop the worker cleanly: running activities get a grace period, its
    /// sticky queue is released, another worker takes over at once.
    StopWorker,
    /// Start the worker with the code on disk.
    StartWorker,
    /// Switch a fault on or off.
    SetFault {
        fault: Fault,
        on: bool,
    },
    /// Swap the fixed `deposit` into the running worker.
    HotSwapFix,
    /// Stop the worker, fix the code, start it again (the tutorial's way).
    RestartWorkerWithFix,
    /// Crash the engine: what is not on disk is lost, the rest recovered.
    CrashEngine,
    /// Run the clock at another speed (1× to 60×).
    SetSpeed {
        speed: f64,
    },
    /// Skip the rest of an activity's backoff.
    RetryNow {
        workflow_id: String,
        #[serde(default)]
        activity_id: Option<String>,
    },
    Signal {
        workflow_id: String,
        name: String,
        #[serde(default)]
        input: serde_json::Value,
    },
    Query {
        workflow_id: String,
        name: String,
    },
    /// Request cancellation (the workflow code decides).
    Cancel {
        workflow_id: String,
    },
    Terminate {
        workflow_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Reset to a workflow task's close event (the first one by default).
    Reset {
        workflow_id: String,
        #[serde(default)]
        event_id: Option<u64>,
    },
}

impl Action {
    /// The action's name, as scenario files and the key table write it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::StartTransfer { .. } => "start_transfer",
            Action::StartReport { .. } => "start_report",
            Action::KillWorker => "kill_worker",
            Action::StopWorker => "stop_worker",
            Action::StartWorker => "start_worker",
            Action::SetFault { .. } => "set_fault",
            Action::HotSwapFix => "hot_swap_fix",
            Action::RestartWorkerWithFix => "restart_worker_with_fix",
            Action::CrashEngine => "crash_engine",
            Action::SetSpeed { .. } => "set_speed",
            Action::RetryNow { .. } => "retry_now",
            Action::Signal { .. } => "signal",
            Action::Query { .. } => "query",
            Action::Cancel { .. } => "cancel",
            Action::Terminate { .. } => "terminate",
            Action::Reset { .. } => "reset",
        }
    }
}

/// What happened, for a log pane or a scenario transcript.
#[derive(Clone, Debug, PartialEq)]
pub enum LabEvent {
    WorkersStarted {
        identity: String,
        deposit: DepositCode,
    },
    WorkersKilled {
        identity: String,
    },
    WorkersStopped {
        identity: String,
    },
    FaultSet {
        fault: Fault,
        on: bool,
    },
    DepositSwapped {
        deposit: DepositCode,
    },
    EngineCrashed,
    EngineRecovered {
        runs: usize,
        elapsed: Duration,
    },
    SpeedSet {
        speed: f64,
    },
    WorkflowStarted {
        workflow_id: String,
        run_id: String,
    },
    RetriedNow {
        workflow_id: String,
        activity_id: String,
    },
    Signaled {
        workflow_id: String,
        name: String,
    },
    QueryAnswered {
        workflow_id: String,
        name: String,
        /// The answer as JSON.
        answer: String,
    },
    CancelRequested {
        workflow_id: String,
    },
    Terminated {
        workflow_id: String,
    },
    Reset {
        workflow_id: String,
        run_id: String,
    },
}

/// The worker a lab runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSnapshot {
    pub identity: String,
    pub deposit: DepositCode,
}

/// One fault switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultState {
    pub fault: Fault,
    pub on: bool,
    pub description: &'static str,
}

/// What a screen needs of the lab besides the read model.
#[derive(Clone, Debug, PartialEq)]
pub struct LabSnapshot {
    pub data_dir: std::path::PathBuf,
    /// `None` while the worker is killed.
    pub worker: Option<WorkerSnapshot>,
    /// The code a worker started now would run.
    pub deposit_on_disk: DepositCode,
    pub faults: Vec<FaultState>,
    pub speed: f64,
    /// Crashes survived by the engine.
    pub engine_generation: u32,
    pub last_recovery: Option<Recovery>,
}

/// The running system. Owns the workers and the switches; the engine is
/// shared (a screen may hold handles) and crashes in place.
pub struct Lab {
    config: EngineConfig,
    engine: Engine,
    bank: Bank,
    research: ResearchDeps,
    faults: Arc<Faults>,
    workers: Option<(WorkerHandle, WorkerHandle, DepositCode)>,
    generation: u32,
    transfers_started: u32,
}

impl Lab {
    /// Opens the data directory; no worker runs until [`Lab::start_workers`].
    pub fn open(config: EngineConfig, llm: Llm) -> Result<Lab, LabError> {
        let engine = Engine::open(config.clone())?;
        Lab::on(engine, config, llm)
    }

    /// Opens a data directory that must already exist (see [`Engine::open_existing`]).
    pub fn on_existing(config: EngineConfig, llm: Llm) -> Result<Lab, LabError> {
        let engine = Engine::open_existing(config.clone())?;
        Lab::on(engine, config, llm)
    }

    /// Opens a data directory this process has just closed (see [`Engine::reopen`]).
    pub async fn reopen(config: EngineConfig, llm: Llm) -> Result<Lab, LabError> {
        let engine = Engine::reopen(config.clone()).await?;
        Lab::on(engine, config, llm)
    }

    fn on(engine: Engine, config: EngineConfig, llm: Llm) -> Result<Lab, LabError> {
        let faults = Arc::new(Faults::new());
        let tree = engine.app_tree("lab")?;
        faults
            .keep_in(tree)
            .map_err(|e| LabError::Faults(e.to_string()))?;
        let research = ResearchDeps::new(llm, config.data_dir.clone(), faults.clone());
        let bank = Bank::open(&engine)?;
        bank::register_type(&engine);
        research::register_type(&engine);
        Ok(Lab {
            config,
            engine,
            bank,
            research,
            faults,
            workers: None,
            generation: 0,
            transfers_started: 0,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn bank(&self) -> &Bank {
        &self.bank
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    pub fn research(&self) -> &ResearchDeps {
        &self.research
    }

    /// For tests: how long the offline model thinks.
    pub fn set_offline_think(&mut self, d: Duration) {
        self.research.offline_think = d;
    }

    pub fn workers_running(&self) -> bool {
        self.workers.is_some()
    }

    /// The code the next worker runs.
    pub fn deposit_code(&self) -> DepositCode {
        if self.faults.is_on(Fault::DepositBug) {
            DepositCode::Buggy
        } else {
            DepositCode::Fixed
        }
    }

    /// Starts the workers (one per task queue) with the code on disk. No-op if running.
    pub fn start_workers(&mut self) -> Option<LabEvent> {
        if self.workers.is_some() {
            return None;
        }
        self.generation += 1;
        let identity = format!("{}@holdfast-worker-{}", std::process::id(), self.generation);
        let deposit = self.deposit_code();
        let mut opts = WorkerOptions::new(bank::QUEUE, &identity);
        opts.build_id = deposit.build_id().to_string();
        let mut w = Worker::new(&self.engine, opts);
        let changed = self.faults.is_on(Fault::WorkflowChanged);
        bank::register_with(&self.engine, &mut w, &self.bank, deposit, changed);
        let bank_worker = w.start();
        let mut w = Worker::new(&self.engine, WorkerOptions::new(research::QUEUE, &identity));
        research::register(&self.engine, &mut w, &self.research);
        let research_worker = w.start();
        self.workers = Some((bank_worker, research_worker, deposit));
        Some(LabEvent::WorkersStarted { identity, deposit })
    }

    /// Kills the workers like a crash: what they were running is dropped,
    /// the engine is told nothing, and their attempts time out and retry.
    pub fn kill_workers(&mut self) -> Option<LabEvent> {
        let (b, r, _) = self.workers.take()?;
        b.kill();
        r.kill();
        Some(LabEvent::WorkersKilled {
            identity: b.identity().to_string(),
        })
    }

    /// Stops the workers cleanly (a Temporal SDK's `shutdown()`, Ctrl-C
    /// on the tutorial's worker): no new tasks, running activities get
    /// their grace period, the sticky queues are released.
    pub async fn stop_workers(&mut self) -> Option<LabEvent> {
        let (b, r, _) = self.workers.take()?;
        tokio::join!(b.shutdown(), r.shutdown());
        Some(LabEvent::WorkersStopped {
            identity: b.identity().to_string(),
        })
    }

    /// Switches a fault, on disk first. The deposit bug is code: switching
    /// it swaps that version of `deposit` into the running worker (and the
    /// next one).
    pub fn set_fault(&mut self, fault: Fault, on: bool) -> Result<Vec<LabEvent>, LabError> {
        let was = self
            .faults
            .set(fault, on)
            .map_err(|e| LabError::Faults(e.to_string()))?;
        let mut events = vec![LabEvent::FaultSet { fault, on }];
        if fault == Fault::DepositBug && was != on {
            let deposit = self.deposit_code();
            if let Some((b, _, running)) = &mut self.workers {
                bank::swap_deposit(b, &self.bank, deposit);
                b.set_build_id(deposit.build_id());
                *running = deposit;
                events.push(LabEvent::DepositSwapped { deposit });
            }
        }
        Ok(events)
    }

    /// The hot fix: the fixed `deposit` swapped into the running worker.
    pub fn hot_swap_fix(&mut self) -> Result<Vec<LabEvent>, LabError> {
        self.set_fault(Fault::DepositBug, false)
    }

    /// The tutorial's fix: stop the worker (Ctrl-C), fix the code, start it again.
    pub async fn restart_workers_with_fix(&mut self) -> Result<Vec<LabEvent>, LabError> {
        let mut events: Vec<LabEvent> = self.stop_workers().await.into_iter().collect();
        events.extend(self.set_fault(Fault::DepositBug, false)?);
        events.extend(self.start_workers());
        Ok(events)
    }

    /// Runs the clock at another speed.
    pub fn set_speed(&mut self, speed: f64) -> Result<LabEvent, LabError> {
        if !(speed.is_finite() && (SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed)) {
            return Err(LabError::Invalid(format!(
                "speed {speed} is out of range: use {}× to {}×",
                SPEED_RANGE.0, SPEED_RANGE.1
            )));
        }
        self.engine.clock().set_speed(speed);
        Ok(LabEvent::SpeedSet { speed })
    }

    /// What a screen shows of the lab.
    pub fn snapshot(&self) -> LabSnapshot {
        LabSnapshot {
            data_dir: self.config.data_dir.clone(),
            worker: self.workers.as_ref().map(|(b, _, deposit)| WorkerSnapshot {
                identity: b.identity().to_string(),
                deposit: *deposit,
            }),
            deposit_on_disk: self.deposit_code(),
            faults: Fault::ALL
                .into_iter()
                .map(|fault| FaultState {
                    fault,
                    on: self.faults.is_on(fault),
                    description: fault.description(),
                })
                .collect(),
            speed: self.engine.clock().speed(),
            engine_generation: self.engine.generation(),
            last_recovery: self.engine.last_recovery(),
        }
    }

    /// Applies one action; returns what happened.
    pub async fn apply(&mut self, action: Action) -> Result<Vec<LabEvent>, LabError> {
        const IDENTITY: &str = "holdfast-lab";
        let engine = self.engine.clone();
        Ok(match action {
            Action::StartTransfer {
                workflow_id,
                from,
                to,
                amount,
                reference,
                max_attempts,
                delay_secs,
            } => {
                self.transfers_started += 1;
                let n = self.transfers_started;
                let stamp = engine.now_ms();
                let tutorial = PaymentDetails::tutorial();
                let mut details = PaymentDetails::new(
                    from.as_deref().unwrap_or(&tutorial.source_account),
                    to.as_deref().unwrap_or(&tutorial.target_account),
                    amount.unwrap_or(tutorial.amount),
                    &reference.unwrap_or_else(|| format!("{stamp:x}-{n}")),
                );
                if let Some(m) = max_attempts {
                    details = details.with_maximum_attempts(m);
                }
                details.delay_secs = delay_secs;
                details.validate().map_err(LabError::Invalid)?;
                // An account that does not exist is not refused here: as in
                // the tutorial, the withdraw fails with InvalidAccountError,
                // which the retry policy makes final (a lesson in itself).
                let id = workflow_id.unwrap_or_else(|| format!("pay-invoice-{stamp:x}-{n}"));
                let h = bank::start_transfer(&engine, &id, &details).await?;
                vec![LabEvent::WorkflowStarted {
                    workflow_id: h.workflow_id,
                    run_id: h.run_id,
                }]
            }
            Action::StartReport {
                workflow_id,
                prompt,
                approval,
                email_to,
            } => {
                let mut input =
                    GenerateReportInput::new(prompt).with_llm_timeout(self.research.llm.timeout());
                input.approval = approval;
                input.email_to = email_to;
                input.validate().map_err(LabError::Invalid)?;
                let id = workflow_id.unwrap_or_else(|| {
                    format!("{}-{:x}", research::WORKFLOW_ID_PREFIX, engine.now_ms())
                });
                let h = research::start_report(&engine, &id, &input).await?;
                vec![LabEvent::WorkflowStarted {
                    workflow_id: h.workflow_id,
                    run_id: h.run_id,
                }]
            }
            Action::KillWorker => self.kill_workers().into_iter().collect(),
            Action::StopWorker => self.stop_workers().await.into_iter().collect(),
            Action::StartWorker => self.start_workers().into_iter().collect(),
            Action::SetFault { fault, on } => self.set_fault(fault, on)?,
            Action::HotSwapFix => self.hot_swap_fix()?,
            Action::RestartWorkerWithFix => self.restart_workers_with_fix().await?,
            Action::CrashEngine => self.crash_engine().await?,
            Action::SetSpeed { speed } => vec![self.set_speed(speed)?],
            Action::RetryNow {
                workflow_id,
                activity_id,
            } => {
                let activity_id = engine
                    .retry_activity_now(&workflow_id, None, activity_id.as_deref())
                    .await?;
                vec![LabEvent::RetriedNow {
                    workflow_id,
                    activity_id,
                }]
            }
            Action::Signal {
                workflow_id,
                name,
                input,
            } => {
                let input = Payload::from_value(&input)
                    .map_err(|e| LabError::Invalid(format!("signal input: {e}")))?;
                engine
                    .signal(&workflow_id, None, &name, input, IDENTITY)
                    .await?;
                vec![LabEvent::Signaled { workflow_id, name }]
            }
            Action::Query { workflow_id, name } => {
                let answer = engine
                    .query(&workflow_id, None, &name, Payload("null".into()))
                    .await?;
                vec![LabEvent::QueryAnswered {
                    workflow_id,
                    name,
                    answer: answer.0,
                }]
            }
            Action::Cancel { workflow_id } => {
                engine.cancel(&workflow_id, None, IDENTITY).await?;
                vec![LabEvent::CancelRequested { workflow_id }]
            }
            Action::Terminate {
                workflow_id,
                reason,
            } => {
                let reason = reason.unwrap_or_else(|| "terminated from holdfast".into());
                engine
                    .terminate(&workflow_id, None, &reason, IDENTITY)
                    .await?;
                vec![LabEvent::Terminated { workflow_id }]
            }
            Action::Reset {
                workflow_id,
                event_id,
            } => {
                let event_id = match event_id {
                    Some(e) => e,
                    None => engine
                        .history(&workflow_id, None)
                        .await?
                        .iter()
                        .find(|e| e.event_type() == EventType::WorkflowTaskCompleted)
                        .map(|e| e.event_id)
                        .ok_or_else(|| {
                            LabError::Invalid(format!(
                                "workflow {workflow_id} has no completed workflow task to reset to"
                            ))
                        })?,
                };
                let h = engine
                    .reset(&workflow_id, None, event_id, "reset from holdfast")
                    .await?;
                vec![LabEvent::Reset {
                    workflow_id,
                    run_id: h.run_id,
                }]
            }
        })
    }

    /// Crashes the engine in place: the workers die with it, what was not
    /// on disk is lost, queues and timers are rebuilt from the store, and
    /// the workers start again if they were running. Handles on the engine
    /// held elsewhere (a screen's) stay valid.
    pub async fn crash_engine(&mut self) -> Result<Vec<LabEvent>, LabError> {
        let had_workers = self.kill_workers().is_some();
        let mut events = vec![LabEvent::EngineCrashed];
        let recovery = self.engine.crash_and_recover().await?;
        events.push(LabEvent::EngineRecovered {
            runs: recovery.runs,
            elapsed: recovery.elapsed,
        });
        if had_workers {
            events.extend(self.start_workers());
        }
        Ok(events)
    }
}
