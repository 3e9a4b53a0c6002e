//! Recovery: the store is the truth; runs, queues and timers in memory are
//! rebuilt from it when the engine opens and after a crash in place.

use std::sync::atomic::Ordering;

use super::{Core, Engine, apply_effect};
use crate::engine::error::StoreError;
use crate::engine::feed::{Change, RunChange};
use crate::engine::state::describe::describe_run;
use crate::engine::state::{Effect, PendingActivityState, RunState, TimerKey};
use crate::engine::store::RunIndex;
use crate::engine::store::WriteBatch;

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

impl Engine {
    /// Rebuilds running executions, queues and timers from the store.
    pub(super) fn recover(&self) -> Result<usize, StoreError> {
        let running = self.load_running()?;
        let mut core = self.lock();
        Ok(self.rebuild(&mut core, running))
    }

    /// The running runs as stored.
    fn load_running(&self) -> Result<Vec<RunState>, StoreError> {
        let index = RunIndex::Status(crate::engine::state::WorkflowExecutionStatus::Running);
        self.inner.store.runs_newest_first(&index, None).collect()
    }

    /// Makes `running` the engine's memory: runs, queues and timers; what
    /// a worker held died with it. Returns how many runs it rebuilt.
    fn rebuild(&self, core: &mut Core, running: Vec<RunState>) -> usize {
        let now = self.now_ms();
        let count = running.len();
        let mut effects = Vec::new();
        for mut run in running.into_iter().rev() {
            // No worker of the old process polls any more.
            run.sticky_queue = None;
            if let Some(w) = &mut run.workflow_task {
                // Whoever held it died with the old process.
                w.started = None;
                if w.not_before_ms <= now {
                    effects.push(Effect::EnqueueWorkflowTask {
                        seq: run.seq,
                        queue: run.task_queue.clone(),
                        sticky: None,
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
        let store = &self.inner.store;
        // Flushes held, then the engine's lock: no commit can be staged on
        // the old memory between dropping what was not on disk and reading
        // what is (the store is read under the engine's lock here, once).
        let mut flushes = store.lock_flushes().await;
        let (runs, generation) = {
            let mut core = self.lock();
            store.discard_pending(&mut flushes);
            let running = self.load_running()?;
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
            let runs = self.rebuild(&mut core, running);
            let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
            (runs, generation)
        };
        drop(flushes);
        // Screens hear of the rebuilt state: tasks taken by dead workers are
        // scheduled again, starts that were lost are gone.
        if store.has_subscribers() {
            let runs = {
                let core = self.lock();
                core.runs
                    .values()
                    .map(|run| RunChange {
                        description: describe_run(run),
                        new_events: 0,
                    })
                    .collect()
            };
            let ticket = store.commit(WriteBatch::default(), Some(Change { commit: 0, runs }));
            store.durable(ticket).await?;
        }
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

    pub(super) fn set_recovery(&self, r: Recovery) {
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
}
