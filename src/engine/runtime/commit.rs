//! The one commit path: every durable change is a pure transition on a
//! copy of each run it touches, staged as one batch under the engine's lock
//! (no sled read there), then made durable, then its effects run; its one
//! [`Change`] goes out with the flush that made it durable.

use super::{Core, Engine, apply_effect};
use crate::engine::error::{EngineError, StoreError};
use crate::engine::feed::{Change, RunChange};
use crate::engine::history::Payload;
use crate::engine::state::describe::describe_run;
use crate::engine::state::{Effect, RunState, Transition};
use crate::engine::store::WriteBatch;

/// How long a lazily settled commit waits for another commit's flush to
/// carry it before flushing itself (so a short activity costs no extra fsync).
const LAZY_FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// A commit on its way to disk: its ticket and the effects to run once durable.
#[must_use = "a staged commit must be finished"]
pub(crate) struct Staged {
    pub(crate) ticket: u64,
    pub(crate) effects: Vec<Effect>,
    /// Whether a change waits to be announced (somebody listens).
    announces: bool,
}

impl Engine {
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
        Ok(Staged {
            ticket,
            effects,
            announces: announce,
        })
    }

    /// Waits until a staged commit is durable, then runs its effects. Its
    /// change is announced by the flush that made it durable.
    ///
    /// A caller that goes away meanwhile (a killed worker awaiting its
    /// activity's completion) must not take with it what follows from a
    /// commit that will be on disk — the next workflow task, a retry's
    /// timer: its effects are then run by a task of their own. (The
    /// scenario tests found a run waiting forever for a workflow task that
    /// was written but never queued.)
    pub(crate) async fn finish(&self, staged: Staged) -> Result<(), EngineError> {
        let ticket = staged.ticket;
        let mut pending = PendingEffects {
            engine: self.clone(),
            staged: Some(staged),
        };
        self.inner.store.durable(ticket).await?;
        if let Some(staged) = pending.staged.take()
            && !staged.effects.is_empty()
        {
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
    /// the flush; it shares the next one. If somebody listens, a flush is
    /// made shortly after anyway, so its change is announced while the
    /// work runs.
    pub(crate) fn settle_lazily(&self, core: &mut Core, staged: Staged) {
        for e in staged.effects {
            apply_effect(core, e, &self.inner.timer_wake);
        }
        if !staged.announces {
            return;
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
        let (new_run, new_tr) = crate::engine::state::start::build_run(
            seq,
            now,
            crate::engine::state::start::NewRun {
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
            if let crate::engine::history::EventAttributes::WorkflowExecutionContinuedAsNew {
                new_execution_run_id,
                ..
            } = &mut e.attributes
            {
                *new_execution_run_id = new_run.run_id.clone();
            }
        }
        (new_run, new_tr)
    }
}

/// The effects of a staged commit whose caller may go away before it is
/// durable: dropped unfinished, it hands them to a task that waits for the
/// flush and runs them.
struct PendingEffects {
    engine: Engine,
    staged: Option<Staged>,
}

impl Drop for PendingEffects {
    fn drop(&mut self) {
        let Some(staged) = self.staged.take() else {
            return;
        };
        if staged.effects.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = self.engine.clone();
        runtime.spawn(async move {
            // Lost in a crash: recovery rebuilds what follows from the store.
            if engine.inner.store.durable(staged.ticket).await.is_ok() {
                let mut core = engine.lock();
                for e in staged.effects {
                    apply_effect(&mut core, e, &engine.inner.timer_wake);
                }
            }
        });
    }
}
