//! The engine's runtime: in-memory state of running executions, task
//! queues and timers, all derived from the store, and the one commit path
//! every durable change takes: a pure transition on a copy of each run it
//! touches → one atomic batch (events, states, indexes) → the durable flush
//! → effects, with exactly one [`Change`] on the feed once durable.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use tokio::sync::{Notify, oneshot};

use super::clock::Clock;
use super::error::{EngineError, StoreError};
use super::failure::Failure;
use super::feed::{Change, RunChange};
use super::history::{Payload, TimeoutType};
use super::read_model::describe_run;
use super::state::{Effect, PendingActivityState, RunState, TimerKey, Transition};
use super::store::{RunIndex, Store, WriteBatch};

/// Temporal's history limits: past `warn` a warning is logged; past
/// `error` the run is terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    pub count_warn: u64,
    pub count_error: u64,
    pub size_warn_bytes: u64,
    pub size_error_bytes: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            count_warn: 10_240,
            count_error: 51_200,
            size_warn_bytes: 10 * 1024 * 1024,
            size_error_bytes: 50 * 1024 * 1024,
        }
    }
}

/// How the engine is opened.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub clock: Clock,
    pub history_limits: HistoryLimits,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            clock: Clock::system(),
            history_limits: HistoryLimits::default(),
        }
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// How long a lazily settled commit waits for another commit's flush to
/// carry it before flushing itself (so a short activity costs no extra fsync).
const LAZY_FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// A commit on its way to disk: its ticket and the effects to run once durable.
#[must_use = "a staged commit must be finished"]
pub(crate) struct Staged {
    pub(crate) ticket: u64,
    pub(crate) effects: Vec<Effect>,
}

/// Checks a workflow type's input before anything is written.
pub type InputValidator = Arc<dyn Fn(&Payload) -> Result<(), String> + Send + Sync>;

pub(crate) struct TaskQueue<T> {
    pub(crate) items: VecDeque<T>,
    pub(crate) notify: Arc<Notify>,
}

impl<T> Default for TaskQueue<T> {
    fn default() -> Self {
        TaskQueue {
            items: VecDeque::new(),
            notify: Arc::new(Notify::new()),
        }
    }
}

pub(crate) struct Core {
    /// Running executions by run seq.
    pub(crate) runs: HashMap<u64, RunState>,
    /// Running executions by workflow id.
    pub(crate) running_ids: HashMap<String, u64>,
    pub(crate) workflow_queues: HashMap<String, TaskQueue<u64>>,
    pub(crate) activity_queues: HashMap<String, TaskQueue<(u64, u64, u32)>>,
    pub(crate) query_queues: HashMap<String, TaskQueue<super::tasks::QueryTask>>,
    /// Workers ready to answer queries, per task queue.
    pub(crate) query_pollers: HashMap<String, usize>,
    /// The newest commit ticket of each running run: a workflow task's
    /// history is read only once that commit is durable (and so in sled).
    pub(crate) run_tickets: HashMap<u64, u64>,
    pub(crate) timers: BTreeSet<(u64, TimerKey)>,
    pub(crate) waiters: HashMap<u64, Vec<oneshot::Sender<()>>>,
    pub(crate) pollers: super::task_queues::Pollers,
    /// The build each worker identity declared.
    pub(crate) build_ids: HashMap<String, String>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) clock: Clock,
    pub(crate) core: Mutex<Core>,
    pub(crate) timer_wake: Arc<Notify>,
    pub(crate) catalog: RwLock<BTreeMap<String, InputValidator>>,
    pub(crate) next_request: AtomicU64,
    pub(crate) transitions: AtomicU64,
    pub(crate) limits: HistoryLimits,
    pub(crate) generation: std::sync::atomic::AtomicU32,
    recovery: Mutex<Option<Recovery>>,
}

/// What a recovery found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Crashes survived so far by this engine.
    pub generation: u32,
    /// Running runs rebuilt from the store.
    pub runs: usize,
    /// How long rebuilding took, in real time.
    pub elapsed: std::time::Duration,
    /// How long the store itself (sled) took to open, before that; zero
    /// for a crash in place, which keeps the store open.
    pub store_open: std::time::Duration,
}

/// The durable-execution engine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.store.path())
            .finish()
    }
}

impl Engine {
    /// Opens the data directory, rebuilds queues and timers from the running
    /// executions, and starts the timer loop. Call inside a tokio runtime.
    pub fn open(config: EngineConfig) -> Result<Engine, StoreError> {
        let opening = std::time::Instant::now();
        let store = Store::open(&config.data_dir)?;
        let store_open = opening.elapsed();
        if let Some(stored) = store.engine_time_ms()? {
            config.clock.not_before(stored);
        }
        let inner = Arc::new(Inner {
            store,
            clock: config.clock,
            core: Mutex::new(Core {
                runs: HashMap::new(),
                running_ids: HashMap::new(),
                workflow_queues: HashMap::new(),
                activity_queues: HashMap::new(),
                query_queues: HashMap::new(),
                query_pollers: HashMap::new(),
                run_tickets: HashMap::new(),
                timers: BTreeSet::new(),
                waiters: HashMap::new(),
                pollers: Default::default(),
                build_ids: HashMap::new(),
            }),
            timer_wake: Arc::new(Notify::new()),
            catalog: RwLock::new(BTreeMap::new()),
            next_request: AtomicU64::new(1),
            transitions: AtomicU64::new(0),
            limits: config.history_limits,
            generation: std::sync::atomic::AtomicU32::new(0),
            recovery: Mutex::new(None),
        });
        let engine = Engine { inner };
        let recovering = std::time::Instant::now();
        let runs = engine.recover()?;
        engine.set_recovery(Recovery {
            generation: 0,
            runs,
            elapsed: recovering.elapsed(),
            store_open,
        });
        tokio::spawn(timer_loop(Arc::downgrade(&engine.inner)));
        Ok(engine)
    }

    /// Opens a data directory this process has just closed. sled lets go
    /// of its file lock from a background thread a moment after the last
    /// handle drops, so a lock is waited for (up to 2 s of real time, on
    /// the blocking pool so a virtual clock stands still); any other error
    /// is returned at once.
    pub async fn reopen(config: EngineConfig) -> Result<Engine, StoreError> {
        for _ in 0..400 {
            match Engine::open(config.clone()) {
                Err(StoreError::Locked { .. }) => {
                    let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
                    let _ = tokio::task::spawn_blocking(pause).await;
                }
                other => return other,
            }
        }
        Engine::open(config)
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.inner.store.path()
    }

    /// How many flushes to disk the engine has made (group commit makes
    /// this far smaller than the number of commits).
    pub fn flush_count(&self) -> u64 {
        self.inner.store.flush_count()
    }

    /// An application's own tree in the engine's database (see [`Store::app_tree`]).
    pub fn app_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.inner.store.app_tree(name)
    }

    /// Whether this is the last handle on the engine (workers, pollers and
    /// clients hold others). Dropping the last one closes the store.
    pub fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// Committed transitions since open.
    pub fn transition_count(&self) -> u64 {
        self.inner.transitions.load(Ordering::Relaxed)
    }

    /// Makes a workflow type known, with a check of its input. Starts of
    /// unknown types are refused once any type is known.
    pub fn register_workflow_type(&self, name: &str, validator: InputValidator) {
        if let Ok(mut c) = self.inner.catalog.write() {
            c.insert(name.to_string(), validator);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A poisoned lock means a panic while holding it; the state inside is
        // still the last consistent one (transitions work on copies).
        self.inner
            .core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rebuilds running executions, queues and timers from the store.
    fn recover(&self) -> Result<usize, StoreError> {
        let running = self.load_running()?;
        let mut core = self.lock();
        Ok(self.rebuild(&mut core, running))
    }

    /// The running runs as stored.
    fn load_running(&self) -> Result<Vec<RunState>, StoreError> {
        let index = RunIndex::Status(super::state::WorkflowExecutionStatus::Running);
        self.inner.store.runs_newest_first(&index, None).collect()
    }

    /// Makes `running` the engine's memory: runs, queues and timers; what
    /// a worker held died with it. Returns how many runs it rebuilt.
    fn rebuild(&self, core: &mut Core, running: Vec<RunState>) -> usize {
        let now = self.now_ms();
        let count = running.len();
        let mut effects = Vec::new();
        for mut run in running.into_iter().rev() {
            if let Some(w) = &mut run.workflow_task {
                // Whoever held it died with the old process.
                w.started = None;
                if w.not_before_ms <= now {
                    effects.push(Effect::EnqueueWorkflowTask {
                        seq: run.seq,
                        queue: run.task_queue.clone(),
                    });
                } else {
                    effects.push(Effect::Timer {
                        at_ms: w.not_before_ms,
                        key: TimerKey::WorkflowTaskRetry {
                            seq: run.seq,
                            attempt: w.attempt,
                        },
                    });
                }
            }
            if let Some(at_ms) = run.expiration_ms {
                effects.push(Effect::Timer {
                    at_ms,
                    key: TimerKey::WorkflowExpiration { seq: run.seq },
                });
            }
            for t in &run.timers {
                effects.push(Effect::Timer {
                    at_ms: t.fire_at_ms,
                    key: TimerKey::UserTimer {
                        seq: run.seq,
                        started: t.started_event_id,
                    },
                });
            }
            for a in &run.activities {
                let (seq, scheduled, attempt) = (run.seq, a.scheduled_event_id, a.attempt);
                if let Some(exp) = a.expiration_ms {
                    effects.push(Effect::Timer {
                        at_ms: exp,
                        key: TimerKey::ActivityScheduleToClose { seq, scheduled },
                    });
                }
                match a.state {
                    PendingActivityState::Started | PendingActivityState::CancelRequested => {
                        effects.extend(a.running_attempt_timers(seq, now));
                    }
                    PendingActivityState::Scheduled => {
                        effects.push(Effect::Timer {
                            at_ms: a.scheduled_time_ms,
                            key: TimerKey::ActivityRetry {
                                seq,
                                scheduled,
                                attempt,
                            },
                        });
                    }
                }
            }
            core.running_ids.insert(run.workflow_id.clone(), run.seq);
            core.runs.insert(run.seq, run);
        }
        for e in effects {
            apply_effect(core, e, &self.inner.timer_wake);
        }
        count
    }

    /// Crashes the engine in place, as if its process were killed and
    /// started again: commits not yet on disk are lost (whoever waited on
    /// them is told so), memory — runs, queues, timers, tasks held by
    /// workers — is dropped and rebuilt from the store, and the engine goes
    /// on with the same handles. Workers of the old process should be
    /// killed first, as a crash would have. The store is read under the
    /// engine's lock here, once, so nothing can act on the old memory.
    pub async fn crash_and_recover(&self) -> Result<Recovery, StoreError> {
        let started = std::time::Instant::now();
        let runs = self
            .inner
            .store
            .crash(|| {
                let running = self.load_running()?;
                let mut core = self.lock();
                core.runs.clear();
                core.running_ids.clear();
                core.run_tickets.clear();
                core.timers.clear();
                for q in core.workflow_queues.values_mut() {
                    q.items.clear();
                }
                for q in core.activity_queues.values_mut() {
                    q.items.clear();
                }
                Ok::<_, StoreError>(self.rebuild(&mut core, running))
            })
            .await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.timer_wake.notify_one();
        let recovery = Recovery {
            generation,
            runs,
            elapsed: started.elapsed(),
            store_open: std::time::Duration::ZERO,
        };
        self.set_recovery(recovery);
        Ok(recovery)
    }

    fn set_recovery(&self, r: Recovery) {
        *self
            .inner
            .recovery
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(r);
    }

    /// The last recovery: at open, or after a crash in place.
    pub fn last_recovery(&self) -> Option<Recovery> {
        *self
            .inner
            .recovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// How many times the engine crashed and recovered in place.
    pub fn generation(&self) -> u32 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Runs one transition on a running execution: the closure mutates a
    /// copy of the run's state and records events and effects; the result
    /// goes through [`Engine::stage`] and [`Engine::finish`]. A
    /// continue-as-new starts the next run in the same commit.
    pub(crate) async fn transact<R>(
        &self,
        seq: u64,
        f: impl FnOnce(&mut RunState, &mut Transition, u64) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let (r, staged) = {
            let mut core = self.lock();
            let Some(current) = core.runs.get(&seq) else {
                return Err(EngineError::TaskNotFound(format!(
                    "run {seq} is not running"
                )));
            };
            let mut run = current.clone();
            let mut tr = Transition::default();
            let now = self.now_ms();
            let r = f(&mut run, &mut tr, now)?;
            let next = tr
                .continue_as_new
                .take()
                .map(|input| self.continued_run(&run, &mut tr, now, input));
            let mut updates = vec![(run, tr)];
            updates.extend(next);
            (r, self.stage(&mut core, updates, now)?)
        };
        self.finish(staged).await?;
        Ok(r)
    }

    /// The one commit path. Under the engine's lock, with no read of sled:
    /// enforces the history limits on each run's transition, writes every
    /// run's new events, state and index entries as one batch, makes the
    /// new states the engine's memory, and queues exactly one [`Change`]
    /// describing every run touched, announced once the batch is durable.
    /// A run with no state in memory is a new one.
    pub(crate) fn stage(
        &self,
        core: &mut Core,
        updates: Vec<(RunState, Transition)>,
        now: u64,
    ) -> Result<Staged, EngineError> {
        self.stage_as(core, updates, now, true)
    }

    /// A change to what `describe` shows that is not stored because
    /// recovery undoes it anyway (a workflow task taken by a worker: after a
    /// crash it is scheduled again). It takes its place in commit order and
    /// is announced like any other.
    pub(crate) fn stage_transient(
        &self,
        core: &mut Core,
        run: RunState,
        effects: Vec<Effect>,
        now: u64,
    ) -> Result<Staged, EngineError> {
        let tr = Transition {
            effects,
            ..Transition::default()
        };
        self.stage_as(core, vec![(run, tr)], now, false)
    }

    fn stage_as(
        &self,
        core: &mut Core,
        updates: Vec<(RunState, Transition)>,
        now: u64,
        persist: bool,
    ) -> Result<Staged, EngineError> {
        let announce = self.inner.store.has_subscribers();
        let mut batch = WriteBatch::default();
        let mut effects = Vec::new();
        let mut runs = Vec::with_capacity(updates.len());
        let mut states = Vec::with_capacity(updates.len());
        for (mut run, mut tr) in updates {
            if persist {
                self.enforce_history_limits(&mut run, &mut tr, now);
                for e in &tr.events {
                    batch.put_event(run.seq, e)?;
                }
                run.state_transition_count += 1;
                batch.put_run(core.runs.get(&run.seq), &run)?;
                self.inner.transitions.fetch_add(1, Ordering::Relaxed);
            }
            if announce {
                runs.push(RunChange {
                    description: describe_run(&run),
                    new_events: tr.events.len() as u64,
                });
            }
            effects.extend(tr.effects);
            states.push(run);
        }
        if persist {
            batch.put_clock(now);
        }
        let change = announce.then_some(Change { commit: 0, runs });
        let ticket = self.inner.store.commit(batch, change);
        for run in states {
            let seq = run.seq;
            if run.is_running() {
                core.running_ids.insert(run.workflow_id.clone(), seq);
                if persist {
                    core.run_tickets.insert(seq, ticket);
                }
                core.runs.insert(seq, run);
            } else {
                if core.running_ids.get(&run.workflow_id) == Some(&seq) {
                    core.running_ids.remove(&run.workflow_id);
                }
                core.runs.remove(&seq);
                core.run_tickets.remove(&seq);
            }
        }
        Ok(Staged { ticket, effects })
    }

    /// Waits until a staged commit is durable, then runs its effects. Its
    /// change is announced by the flush that made it durable.
    pub(crate) async fn finish(&self, staged: Staged) -> Result<(), EngineError> {
        self.inner.store.durable(staged.ticket).await?;
        if !staged.effects.is_empty() {
            let mut core = self.lock();
            for e in staged.effects {
                apply_effect(&mut core, e, &self.inner.timer_wake);
            }
        }
        Ok(())
    }

    /// Settles a commit that a crash may take back without harm — a task's
    /// or an attempt's start, a heartbeat: lost, the work simply runs
    /// again. Its effects (deadline timers) run now, and nobody waits for
    /// the flush; it shares the next one, or one made shortly after, which
    /// announces its change.
    pub(crate) fn settle_lazily(&self, core: &mut Core, staged: Staged) {
        for e in staged.effects {
            apply_effect(core, e, &self.inner.timer_wake);
        }
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LAZY_FLUSH_DELAY).await;
            match store.durable(staged.ticket).await {
                Ok(()) => {}
                // A crash took it back: the work runs again, as intended.
                Err(e @ StoreError::LostInCrash { .. }) => tracing::debug!(error = %e),
                Err(e) => {
                    tracing::warn!(error = %e, "a start or heartbeat could not be made durable")
                }
            }
        });
    }

    /// Warns past the warn limits and terminates past the error limits, with
    /// Temporal's reasons.
    fn enforce_history_limits(&self, run: &mut RunState, tr: &mut Transition, now: u64) {
        if !run.is_running() || tr.events.is_empty() {
            return;
        }
        let l = self.inner.limits;
        let (count, size) = (run.history_length(), run.history_size_bytes);
        let before = count - tr.events.len() as u64;
        if count > l.count_error {
            run.terminate(
                tr,
                now,
                "Workflow history count exceeds limit.",
                "history-service",
            );
        } else if size > l.size_error_bytes {
            run.terminate(
                tr,
                now,
                "Workflow history size exceeds limit.",
                "history-service",
            );
        } else if before <= l.count_warn && count > l.count_warn {
            tracing::warn!(workflow_id = %run.workflow_id, count, "history event count passed the warn limit ({}); the run is terminated past {}", l.count_warn, l.count_error);
        } else if size > l.size_warn_bytes
            && size - tr.events.len() as u64 * 64 <= l.size_warn_bytes
        {
            tracing::warn!(workflow_id = %run.workflow_id, size, "history size passed the warn limit ({} bytes)", l.size_warn_bytes);
        }
    }

    /// The run that continues `run` as new, started in the same commit.
    /// Chained runs start at least 1 s apart (Temporal's
    /// `workflowIdReuseMinimalInterval`), as a first-workflow-task backoff.
    fn continued_run(
        &self,
        run: &RunState,
        tr: &mut Transition,
        now: u64,
        input: Payload,
    ) -> (RunState, Transition) {
        let seq = self.inner.store.next_run_seq();
        // The previous run's execution began after its own backoff.
        let prev_execution = run.start_time_ms + run.first_workflow_task_backoff.as_millis() as u64;
        let backoff_ms = (prev_execution + 1000).saturating_sub(now);
        let (new_run, new_tr) = super::client::build_run(
            seq,
            now,
            super::client::NewRun {
                workflow_id: run.workflow_id.clone(),
                workflow_type: run.workflow_type.clone(),
                task_queue: run.task_queue.clone(),
                input,
                identity: String::new(),
                task_timeout: run.workflow_task_timeout,
                execution_timeout: None,
                run_timeout: None,
                continued_execution_run_id: Some(run.run_id.clone()),
                first_execution_run_id: Some(run.first_execution_run_id.clone()),
                first_workflow_task_backoff: std::time::Duration::from_millis(backoff_ms),
            },
        );
        for e in tr.events.iter_mut() {
            if let super::history::EventAttributes::WorkflowExecutionContinuedAsNew {
                new_execution_run_id,
                ..
            } = &mut e.attributes
            {
                *new_execution_run_id = new_run.run_id.clone();
            }
        }
        (new_run, new_tr)
    }

    /// Fires every timer due now. Public so tests and the headless runner can
    /// drive time themselves; the timer loop calls it too.
    pub async fn tick(&self) -> usize {
        let mut fired = 0;
        loop {
            let now = self.now_ms();
            let key = {
                let mut core = self.lock();
                match core.timers.first() {
                    Some((at, _)) if *at <= now => core.timers.pop_first().map(|(_, k)| k),
                    _ => None,
                }
            };
            let Some(key) = key else { break };
            fired += 1;
            if let Err(e) = self.fire(key).await {
                tracing::debug!(error = %e, "timer had nothing to do");
            }
        }
        fired
    }

    async fn fire(&self, key: TimerKey) -> Result<(), EngineError> {
        match key {
            TimerKey::ActivityRetry {
                seq,
                scheduled,
                attempt,
            } => {
                let mut core = self.lock();
                let now = self.now_ms();
                let Some(run) = core.runs.get(&seq) else {
                    return Ok(());
                };
                let Some(a) = run
                    .activity_index(scheduled)
                    .map(|i| &run.activities[i])
                    .filter(|a| a.attempt == attempt && a.state == PendingActivityState::Scheduled)
                else {
                    return Ok(());
                };
                let queue = a.task_queue.clone();
                let s2s = a.timeouts.schedule_to_start;
                apply_effect(
                    &mut core,
                    Effect::EnqueueActivity {
                        seq,
                        scheduled,
                        attempt,
                        queue,
                    },
                    &self.inner.timer_wake,
                );
                if !s2s.is_zero() {
                    apply_effect(
                        &mut core,
                        Effect::Timer {
                            at_ms: now + s2s.as_millis() as u64,
                            key: TimerKey::ActivityScheduleToStart {
                                seq,
                                scheduled,
                                attempt,
                            },
                        },
                        &self.inner.timer_wake,
                    );
                }
                Ok(())
            }
            TimerKey::ActivityStartToClose {
                seq,
                scheduled,
                attempt,
            } => {
                self.activity_timeout(
                    seq,
                    scheduled,
                    Some((attempt, PendingActivityState::Started)),
                    TimeoutType::StartToClose,
                )
                .await
            }
            TimerKey::ActivityScheduleToStart {
                seq,
                scheduled,
                attempt,
            } => {
                self.activity_timeout(
                    seq,
                    scheduled,
                    Some((attempt, PendingActivityState::Scheduled)),
                    TimeoutType::ScheduleToStart,
                )
                .await
            }
            TimerKey::ActivityHeartbeat {
                seq,
                scheduled,
                attempt,
            } => {
                self.transact(seq, |run, tr, now| {
                    let idx = run
                        .activity_index(scheduled)
                        .filter(|&i| {
                            run.activities[i].attempt == attempt
                                && run.activities[i].state == PendingActivityState::Started
                        })
                        .ok_or_else(|| EngineError::TaskNotFound("attempt already over".into()))?;
                    match run.heartbeat_deadline(idx) {
                        Some(deadline) if deadline > now => {
                            tr.effects.push(Effect::Timer {
                                at_ms: deadline,
                                key: TimerKey::ActivityHeartbeat {
                                    seq,
                                    scheduled,
                                    attempt,
                                },
                            });
                        }
                        _ => {
                            let details = run.activities[idx].heartbeat_details.clone();
                            run.fail_activity_attempt(
                                tr,
                                now,
                                idx,
                                Failure::heartbeat_timeout(details),
                                None,
                            );
                        }
                    }
                    Ok(())
                })
                .await
            }
            TimerKey::ActivityScheduleToClose { seq, scheduled } => {
                self.activity_timeout(seq, scheduled, None, TimeoutType::ScheduleToClose)
                    .await
            }
            TimerKey::WorkflowTaskTimeout { seq, request_id } => {
                self.transact(seq, |run, tr, now| {
                    let holds = run
                        .workflow_task
                        .as_ref()
                        .and_then(|w| w.started.as_ref())
                        .is_some_and(|s| s.request_id == request_id);
                    if !holds {
                        return Err(EngineError::TaskNotFound(
                            "workflow task already closed".into(),
                        ));
                    }
                    run.time_out_workflow_task(tr, now);
                    Ok(())
                })
                .await
            }
            TimerKey::UserTimer { seq, started } => {
                self.transact(seq, |run, tr, now| {
                    if run.fire_timer(tr, now, started) {
                        Ok(())
                    } else {
                        Err(EngineError::TaskNotFound(
                            "timer already fired or canceled".into(),
                        ))
                    }
                })
                .await
            }
            TimerKey::WorkflowExpiration { seq } => {
                self.transact(seq, |run, tr, now| {
                    run.time_out(tr, now);
                    Ok(())
                })
                .await
            }
            TimerKey::WorkflowTaskRetry { seq, attempt } => {
                let mut core = self.lock();
                let Some(run) = core.runs.get(&seq) else {
                    return Ok(());
                };
                let ok = run
                    .workflow_task
                    .as_ref()
                    .is_some_and(|w| w.attempt == attempt && w.started.is_none());
                if ok {
                    let queue = run.task_queue.clone();
                    apply_effect(
                        &mut core,
                        Effect::EnqueueWorkflowTask { seq, queue },
                        &self.inner.timer_wake,
                    );
                }
                Ok(())
            }
        }
    }

    async fn activity_timeout(
        &self,
        seq: u64,
        scheduled: u64,
        expect: Option<(u32, PendingActivityState)>,
        timeout_type: TimeoutType,
    ) -> Result<(), EngineError> {
        self.transact(seq, |run, tr, now| {
            let idx = run
                .activity_index(scheduled)
                .ok_or_else(|| EngineError::TaskNotFound("activity already closed".into()))?;
            if let Some((attempt, state)) = expect {
                let a = &run.activities[idx];
                if a.attempt != attempt || a.state != state {
                    return Err(EngineError::TaskNotFound("attempt already over".into()));
                }
            }
            run.fail_activity_attempt(tr, now, idx, Failure::activity_timeout(timeout_type), None);
            Ok(())
        })
        .await
    }

    /// The earliest armed timer, if any.
    pub fn next_timer_ms(&self) -> Option<u64> {
        self.lock().timers.first().map(|(at, _)| *at)
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.inner.next_request.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.timer_wake.notify_one();
    }
}

/// Applies an effect to the in-memory state; wakes the timer loop when a
/// timer becomes the earliest.
pub(crate) fn apply_effect(core: &mut Core, e: Effect, wake: &Notify) {
    match e {
        Effect::EnqueueWorkflowTask { seq, queue } => {
            let q = core.workflow_queues.entry(queue).or_default();
            q.items.push_back(seq);
            q.notify.notify_one();
        }
        Effect::EnqueueActivity {
            seq,
            scheduled,
            attempt,
            queue,
        } => {
            let q = core.activity_queues.entry(queue).or_default();
            q.items.push_back((seq, scheduled, attempt));
            q.notify.notify_one();
        }
        Effect::Timer { at_ms, key } => {
            let earliest = core.timers.first().is_none_or(|(first, _)| at_ms < *first);
            core.timers.insert((at_ms, key));
            if earliest {
                wake.notify_one();
            }
        }
        Effect::Closed { seq } => {
            for w in core.waiters.remove(&seq).unwrap_or_default() {
                let _ = w.send(());
            }
        }
    }
}

/// Sleeps until the next timer (or until woken by a new one), then ticks.
/// Holds only a weak reference, so it ends when the engine is dropped.
async fn timer_loop(weak: Weak<Inner>) {
    loop {
        let (next, wake, clock) = {
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            (
                engine.next_timer_ms(),
                engine.inner.timer_wake.clone(),
                engine.inner.clock.clone(),
            )
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = clock.sleep_until_ms(at) => {}
                    _ = wake.notified() => {}
                }
            }
            // Dropping the engine wakes this too (see `Drop for Inner`).
            None => wake.notified().await,
        }
        let Some(inner) = weak.upgrade() else { return };
        Engine { inner }.tick().await;
    }
}
