//! The storage floor, for `holdfast bench`: the commits an engine made,
//! rebuilt from what it stored and written straight to a fresh store with
//! the same batches and the same flush cadence, through the store's own API.
//! The engine can go no faster than this on the same disk.

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::history::EventType;
use super::runtime::Engine;
use super::state::RunState;
use super::store::{RunIndex, Store, WriteBatch};

/// What the floor measured.
#[derive(Clone, Copy, Debug)]
pub struct StorageFloor {
    /// Commits rebuilt and written.
    pub commits: usize,
    /// History events in them.
    pub events: u64,
    pub elapsed: Duration,
}

/// One rebuilt commit: a run's events and its state after them.
struct Group<'a> {
    run: &'a RunState,
    events: Vec<&'a super::history::HistoryEvent>,
    first: bool,
}

impl Engine {
    /// Rebuilds this engine's commits from its store (every run, every
    /// event: call it once all work is durable) and writes them to a fresh
    /// store in `floor_dir`, flushing every `commits_per_flush` commits.
    pub fn storage_floor(
        &self,
        floor_dir: &Path,
        commits_per_flush: usize,
    ) -> Result<StorageFloor, StoreError> {
        let store = &self.inner.store;
        store.flush_blocking()?;
        let mut runs = Vec::new();
        let mut histories = Vec::new();
        for run in store.runs_newest_first(&RunIndex::All, None) {
            let run = run?;
            histories.push(store.history(run.seq)?);
            runs.push(run);
        }
        let mut groups = Vec::new();
        let mut events = 0u64;
        for (run, history) in runs.iter().zip(&histories) {
            events += history.len() as u64;
            let mut group = Vec::new();
            let mut first = true;
            for e in history {
                let t = e.event_type();
                let starts_commit = matches!(
                    t,
                    EventType::WorkflowTaskStarted | EventType::ActivityTaskStarted
                );
                if starts_commit && !group.is_empty() {
                    let events = std::mem::take(&mut group);
                    groups.push(Group { run, events, first });
                    first = false;
                }
                if t == EventType::ActivityTaskStarted {
                    // The attempt's start wrote the run state alone.
                    groups.push(Group {
                        run,
                        events: Vec::new(),
                        first: false,
                    });
                }
                group.push(e);
            }
            groups.push(Group {
                run,
                events: group,
                first,
            });
        }
        let floor = Store::open(floor_dir)?;
        let every = commits_per_flush.max(1);
        let t = Instant::now();
        for (i, g) in groups.iter().enumerate() {
            let mut b = WriteBatch::default();
            for e in &g.events {
                b.put_event(g.run.seq, e)?;
            }
            b.put_run((!g.first).then_some(g.run), g.run)?;
            floor.commit(b, None);
            if (i + 1) % every == 0 {
                floor.flush_blocking()?;
            }
        }
        floor.flush_blocking()?;
        Ok(StorageFloor {
            commits: groups.len(),
            events,
            elapsed: t.elapsed(),
        })
    }
}
