//! The lab: the engine, the bank, the research report's model and the
//! faults, with every action a person or a scenario can take on them —
//! kill the worker, start it, switch a fault, hot-swap the fixed deposit,
//! restart the worker with the fixed code, crash the engine. The terminal
//! UI and the scenarios drive this; nothing here draws.

use std::sync::Arc;
use std::time::Duration;

use crate::apps::bank::{self, Bank, BankError, DepositCode};
use crate::apps::faults::{Fault, Faults};
use crate::apps::research::{self, Llm, ResearchDeps};
use crate::engine::{Engine, EngineConfig, StoreError, Worker, WorkerHandle, WorkerOptions};

#[derive(thiserror::Error, Debug)]
pub enum LabError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("the engine is still in use elsewhere and cannot be restarted")]
    EngineBusy,
}

/// What happened, for a log pane or a scenario transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabEvent {
    WorkersStarted {
        identity: String,
        deposit: DepositCode,
    },
    WorkersKilled {
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
    EngineRecovered,
}

/// The running system. Owns the only long-lived handle on the engine, so
/// that it can crash it and open it again.
pub struct Lab {
    config: EngineConfig,
    engine: Engine,
    bank: Bank,
    research: ResearchDeps,
    faults: Arc<Faults>,
    workers: Option<(WorkerHandle, WorkerHandle)>,
    generation: u32,
}

impl Lab {
    /// Opens the data directory; no worker runs until [`Lab::start_workers`].
    pub fn open(config: EngineConfig, llm: Llm) -> Result<Lab, LabError> {
        let engine = Engine::open(config.clone())?;
        let faults = Arc::new(Faults::new());
        let research = ResearchDeps::new(llm, config.data_dir.clone(), faults.clone());
        Lab::on_engine(config, engine, research, faults, 0)
    }

    fn on_engine(
        config: EngineConfig,
        engine: Engine,
        research: ResearchDeps,
        faults: Arc<Faults>,
        generation: u32,
    ) -> Result<Lab, LabError> {
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
            generation,
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

    /// Starts the workers (one per task queue) with the current code. No-op if running.
    pub fn start_workers(&mut self) -> Option<LabEvent> {
        if self.workers.is_some() {
            return None;
        }
        self.generation += 1;
        let identity = format!("{}@holdfast-worker-{}", std::process::id(), self.generation);
        let deposit = self.deposit_code();
        let mut w = Worker::new(&self.engine, WorkerOptions::new(bank::QUEUE, &identity));
        bank::register(&self.engine, &mut w, &self.bank, deposit);
        let bank_worker = w.start();
        let mut w = Worker::new(&self.engine, WorkerOptions::new(research::QUEUE, &identity));
        research::register(&self.engine, &mut w, &self.research);
        let research_worker = w.start();
        self.workers = Some((bank_worker, research_worker));
        Some(LabEvent::WorkersStarted { identity, deposit })
    }

    /// Kills the workers like a crash: what they were running is dropped,
    /// the engine is told nothing, and their attempts time out and retry.
    pub fn kill_workers(&mut self) -> Option<LabEvent> {
        let (b, r) = self.workers.take()?;
        b.kill();
        r.kill();
        Some(LabEvent::WorkersKilled {
            identity: b.identity().to_string(),
        })
    }

    /// Switches a fault. The deposit bug is code: switching it swaps that
    /// version of `deposit` into the running worker (and the next one).
    pub fn set_fault(&mut self, fault: Fault, on: bool) -> Vec<LabEvent> {
        let was = self.faults.set(fault, on);
        let mut events = vec![LabEvent::FaultSet { fault, on }];
        if fault == Fault::DepositBug
            && was != on
            && let Some((b, _)) = &self.workers
        {
            let deposit = self.deposit_code();
            bank::swap_deposit(b, &self.bank, deposit);
            events.push(LabEvent::DepositSwapped { deposit });
        }
        events
    }

    /// The hot fix: the fixed `deposit` swapped into the running worker.
    pub fn hot_swap_fix(&mut self) -> Vec<LabEvent> {
        self.set_fault(Fault::DepositBug, false)
    }

    /// The tutorial's fix: stop the worker, fix the code, start it again.
    pub fn restart_workers_with_fix(&mut self) -> Vec<LabEvent> {
        let mut events: Vec<LabEvent> = self.kill_workers().into_iter().collect();
        self.faults.set(Fault::DepositBug, false);
        events.push(LabEvent::FaultSet {
            fault: Fault::DepositBug,
            on: false,
        });
        events.extend(self.start_workers());
        events
    }

    /// Crashes the engine: workers die, the engine is dropped mid-flight
    /// and opened again from disk (recovery rebuilds queues and timers),
    /// and workers start again if they were running. Takes the lab and
    /// gives back the reopened one; if the store cannot be opened again
    /// that is the error, and there is no lab.
    pub async fn crash_engine(mut self) -> Result<(Lab, Vec<LabEvent>), LabError> {
        let had_workers = self.kill_workers().is_some();
        // Let the killed workers' tasks let go of their handles.
        for _ in 0..400 {
            if self.engine.is_last_handle() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.engine.is_last_handle() {
            return Err(LabError::EngineBusy);
        }
        let Lab {
            config,
            engine,
            bank,
            research,
            faults,
            generation,
            ..
        } = self;
        drop(bank);
        drop(engine);
        let mut events = vec![LabEvent::EngineCrashed];
        let engine = Engine::reopen(config.clone()).await?;
        let mut lab = Lab::on_engine(config, engine, research, faults, generation)?;
        events.push(LabEvent::EngineRecovered);
        if had_workers {
            events.extend(lab.start_workers());
        }
        Ok((lab, events))
    }
}
