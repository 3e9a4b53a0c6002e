//! The engine's runtime: in-memory state of running executions, task
//! queues and timers, all derived from the store, and the one commit path
//! every durable change takes: a pure transition on a copy of each run it
//! touches → one atomic batch (events, states, indexes) → the durable flush
//! → effects, with exactly one [`Change`] on the feed once durable.
//!
//! - [`commit`]: the one commit path (`stage`, `finish`, `settle_lazily`);
//! - [`recovery`]: rebuilding memory from the store, at open and after a crash;
//! - [`timers`]: the timer loop and what each timer does when it fires;
//! - [`queues`]: task queues, queries and pollers in memory.

mod commit;
mod queues;
mod recovery;
mod timers;

pub(crate) use queues::{Pollers, TaskQueue};
pub use queues::{QueryTask, TaskQueueKind};
pub use recovery::Recovery;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::{Notify, oneshot};

use super::clock::Clock;
use super::error::StoreError;
use super::history::Payload;
use super::limits::HistoryLimits;
use super::state::{Effect, RunState, TimerKey};
use super::store::Store;

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

/// Checks a workflow type's input before anything is written.
pub type InputValidator = Arc<dyn Fn(&Payload) -> Result<(), String> + Send + Sync>;

pub(crate) struct Core {
    /// Running executions by run seq.
    pub(crate) runs: HashMap<u64, RunState>,
    /// Running executions by workflow id.
    pub(crate) running_ids: HashMap<String, u64>,
    pub(crate) workflow_queues: HashMap<String, TaskQueue<u64>>,
    pub(crate) activity_queues: HashMap<String, TaskQueue<(u64, u64, u32)>>,
    pub(crate) query_queues: HashMap<String, TaskQueue<QueryTask>>,
    /// Workers ready to answer queries, per task queue.
    pub(crate) query_pollers: HashMap<String, usize>,
    /// The newest commit ticket of each running run: a workflow task's
    /// history is read only once that commit is durable (and so in sled).
    pub(crate) run_tickets: HashMap<u64, u64>,
    pub(crate) timers: BTreeSet<(u64, TimerKey)>,
    pub(crate) waiters: HashMap<u64, Vec<oneshot::Sender<()>>>,
    pub(crate) pollers: Pollers,
    /// The build each worker identity declared.
    pub(crate) build_ids: HashMap<String, String>,
    /// Sticky queues whose worker stopped cleanly (Temporal's ShutdownWorker).
    pub(crate) released_sticky: std::collections::HashSet<String>,
}

impl Core {
    /// Whether the worker behind a sticky queue may still take a task
    /// scheduled at `at_ms`: not stopped, and polling now or lately.
    pub(crate) fn sticky_available(&self, queue: &str, at_ms: u64) -> bool {
        if self.released_sticky.contains(queue) {
            return false;
        }
        let window = crate::engine::state::STICKY_POLLER_WINDOW.as_millis() as u64;
        self.pollers.get(queue).is_some_and(|ps| {
            ps.values()
                .any(|p| p.outstanding > 0 || at_ms.saturating_sub(p.last_access_ms) < window)
        })
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) clock: Clock,
    pub(crate) core: Mutex<Core>,
    pub(crate) timer_wake: Arc<Notify>,
    pub(crate) catalog: RwLock<BTreeMap<String, InputValidator>>,
    pub(crate) next_request: AtomicU64,
    pub(crate) limits: HistoryLimits,
    pub(crate) generation: std::sync::atomic::AtomicU32,
    recovery: Mutex<Option<Recovery>>,
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
        Engine::on_store_timed(store, config, opening)
    }

    fn on_store_timed(
        store: Arc<Store>,
        config: EngineConfig,
        opening: std::time::Instant,
    ) -> Result<Engine, StoreError> {
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
                released_sticky: Default::default(),
            }),
            timer_wake: Arc::new(Notify::new()),
            catalog: RwLock::new(BTreeMap::new()),
            next_request: AtomicU64::new(1),
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
        tokio::spawn(timers::timer_loop(Arc::downgrade(&engine.inner)));
        Ok(engine)
    }

    /// Opens a data directory that must already hold a holdfast store: a
    /// command that only reads (or acts on existing runs) never creates
    /// one, so a mistyped `--data-dir` is an error, not an empty store that
    /// looks like lost data.
    pub fn open_existing(config: EngineConfig) -> Result<Engine, StoreError> {
        let dir = &config.data_dir;
        // A file where the directory should be is `Store::open`'s to name.
        let no_store = !(dir.join("conf").is_file() && dir.join("db").is_file());
        if no_store && !dir.is_file() {
            return Err(StoreError::NoData {
                path: dir.display().to_string(),
            });
        }
        match Engine::open(config.clone()) {
            // A read-only mount or archive: read a private copy of it.
            Err(StoreError::ReadOnly { .. }) => {
                let opening = std::time::Instant::now();
                Engine::on_store_timed(Store::open_copy_of(dir)?, config, opening)
            }
            other => other,
        }
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

    /// Commits that wrote to the store since the engine opened.
    pub fn commit_count(&self) -> u64 {
        self.inner.store.write_count()
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
        Effect::EnqueueWorkflowTask { seq, queue, sticky } => {
            let queue = match sticky {
                Some(s) if core.sticky_available(&s.queue, s.scheduled_ms) => {
                    tracing::debug!(seq, sticky = %s.queue, "workflow task to its sticky queue");
                    let at_ms = s.scheduled_ms
                        + crate::engine::state::STICKY_SCHEDULE_TO_START.as_millis() as u64;
                    apply_effect(
                        core,
                        Effect::Timer {
                            at_ms,
                            key: TimerKey::StickyScheduleToStart {
                                seq,
                                scheduled: s.scheduled_event_id,
                            },
                        },
                        wake,
                    );
                    s.queue
                }
                // Its worker is gone: the normal queue at once.
                _ => {
                    tracing::debug!(seq, %queue, "workflow task to the normal queue");
                    queue
                }
            };
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
