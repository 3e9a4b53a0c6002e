//! A data directory read without running it: no recovery, no timers, no
//! workers, nothing written by holdfast. For checkers (the crash tests read
//! what a killed process left) and for reading a store no engine serves.

use std::path::Path;

use super::error::{EngineError, StoreError};
use super::history::{EventType, HistoryEvent};
use super::state::RunState;
use super::state::describe::{WorkflowDescription, describe_run};
use super::store::Store;

/// A stopped data directory, opened for reading.
pub struct Archive {
    store: std::sync::Arc<Store>,
}

impl Archive {
    pub fn open(path: &Path) -> Result<Archive, StoreError> {
        Ok(Archive {
            store: Store::open(path)?,
        })
    }

    fn run(&self, workflow_id: &str) -> Result<RunState, EngineError> {
        let not_found = || EngineError::WorkflowNotFound {
            workflow_id: workflow_id.to_string(),
        };
        let seq = self.store.run_seq_of(workflow_id)?.ok_or_else(not_found)?;
        self.store.run(seq)?.ok_or_else(not_found)
    }

    /// Every run of every workflow, newest first.
    pub fn all_runs(&self) -> Result<Vec<WorkflowDescription>, EngineError> {
        let mut out = Vec::new();
        for run in self
            .store
            .runs_newest_first(&super::store::RunIndex::All, None)
        {
            out.push(describe_run(&run?));
        }
        Ok(out)
    }

    /// The newest run of a workflow id.
    pub fn describe(&self, workflow_id: &str) -> Result<WorkflowDescription, EngineError> {
        Ok(describe_run(&self.run(workflow_id)?))
    }

    /// The history of a run (of the id's newest run when `run_id` is None),
    /// checked to be numbered 1..n without gaps.
    pub fn history(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let seq = match run_id {
            None => self.run(workflow_id)?.seq,
            Some(r) => {
                let not_found = || EngineError::RunNotFound {
                    workflow_id: workflow_id.to_string(),
                    run_id: r.to_string(),
                };
                let seq = super::read_model::parse_run_id(r).ok_or_else(not_found)?;
                match self.store.run(seq)? {
                    Some(run) if run.workflow_id == workflow_id && run.run_id == r => seq,
                    _ => return Err(not_found()),
                }
            }
        };
        Ok(self.store.history(seq)?)
    }

    /// Events the newest run accepted while a workflow task was running:
    /// durable in the run's state, appended to history after that task (as
    /// Temporal buffers them).
    pub fn buffered_events(&self, workflow_id: &str) -> Result<Vec<EventType>, EngineError> {
        Ok(self
            .run(workflow_id)?
            .buffered
            .iter()
            .map(|(_, e)| e.event_type())
            .collect())
    }

    /// An application's own tree (see [`super::Engine::app_tree`]).
    pub fn app_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.store.app_tree(name)
    }
}
