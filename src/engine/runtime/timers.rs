//! Timers: one loop sleeps until the earliest deadline on the engine's
//! clock and calls [`Engine::tick`], which fires what is due — retries,
//! timeouts, user timers, expirations. Tests and the headless runner may
//! call `tick` themselves.

use std::sync::Weak;

use super::{Engine, Inner, apply_effect};
use crate::engine::error::EngineError;
use crate::engine::history::{Failure, TimeoutType};
use crate::engine::state::{Effect, PendingActivityState, TimerKey};

impl Engine {
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
            TimerKey::StickyScheduleToStart { seq, scheduled } => {
                self.transact(seq, |run, tr, now| {
                    run.time_out_sticky_task(tr, now, scheduled);
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
                        Effect::EnqueueWorkflowTask {
                            seq,
                            queue,
                            sticky: None,
                        },
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
}

/// Sleeps until the next timer (or until woken by a new one), then ticks.
/// Holds only a weak reference, so it ends when the engine is dropped.
pub(super) async fn timer_loop(weak: Weak<Inner>) {
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
