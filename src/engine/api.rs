//! The engine's face for front ends: what the terminal UI, the scenarios
//! and the CLI may use, and what a second backend (a real Temporal cluster
//! through the official SDK) would implement. Temporal-shaped on purpose:
//! each method is one of Temporal's `WorkflowService` calls, except
//! [`ReadModel::subscribe`] and [`ReadModel::wait_until`], which a backend
//! without a change feed provides by polling.

use std::future::Future;

use tokio::sync::broadcast;

use super::client::{RunHandle, StartWorkflowOptions, WorkflowOutcome};
use super::error::EngineError;
use super::feed::Change;
use super::history::{HistoryEvent, Payload};
use super::read_model::{ListFilter, ListPage, PageToken, WorkflowDescription};
use super::runtime::Engine;
use super::task_queues::TaskQueueDescription;

/// What a screen reads. Everything returned is durable.
pub trait ReadModel: Send + Sync {
    /// Runs, newest first, filtered (`ListWorkflowExecutions`).
    fn list(
        &self,
        filter: &ListFilter,
        page_size: usize,
        page_token: Option<&PageToken>,
    ) -> impl Future<Output = Result<ListPage, EngineError>> + Send;

    /// A run with its pending activities (their attempts too) and pending
    /// workflow task (`DescribeWorkflowExecution`); the id's newest run when
    /// `run_id` is None.
    fn describe(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> impl Future<Output = Result<WorkflowDescription, EngineError>> + Send;

    /// Up to `max` history events after event `after` (`GetWorkflowExecutionHistory`).
    fn history_after(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<HistoryEvent>, EngineError>> + Send;

    /// Pollers and backlog of a task queue (`DescribeTaskQueue`).
    fn describe_task_queue(
        &self,
        task_queue: &str,
    ) -> impl Future<Output = Result<TaskQueueDescription, EngineError>> + Send;

    /// Every commit from now on, in order, each describing the runs it touched.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// Waits until the newest run of `workflow_id` satisfies `done`.
    fn wait_until<F>(
        &self,
        workflow_id: &str,
        done: F,
    ) -> impl Future<Output = Result<WorkflowDescription, EngineError>> + Send
    where
        F: Fn(&WorkflowDescription) -> bool + Send + Sync;
}

/// What a person or a scenario does to workflows.
pub trait WorkflowClient: Send + Sync {
    /// `StartWorkflowExecution`: durable before it returns.
    fn start_workflow(
        &self,
        options: StartWorkflowOptions,
    ) -> impl Future<Output = Result<RunHandle, EngineError>> + Send;

    /// `SignalWorkflowExecution`.
    fn signal(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        signal_name: &str,
        input: Payload,
        identity: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `QueryWorkflow`: answered by a worker, nothing written.
    fn query(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        query_type: &str,
        args: Payload,
    ) -> impl Future<Output = Result<Payload, EngineError>> + Send;

    /// `RequestCancelWorkflowExecution`: the workflow code decides.
    fn cancel(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        identity: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `TerminateWorkflowExecution`: at once, nothing more runs.
    fn terminate(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
        identity: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `ResetWorkflowExecution` to a workflow task's close event.
    fn reset(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        event_id: u64,
        reason: &str,
    ) -> impl Future<Output = Result<RunHandle, EngineError>> + Send;

    /// Waits for the run to close (following continue-as-new).
    fn result(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> impl Future<Output = Result<WorkflowOutcome, EngineError>> + Send;
}

impl ReadModel for Engine {
    async fn list(
        &self,
        filter: &ListFilter,
        page_size: usize,
        page_token: Option<&PageToken>,
    ) -> Result<ListPage, EngineError> {
        Engine::list(self, filter, page_size, page_token).await
    }

    async fn describe(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowDescription, EngineError> {
        Engine::describe(self, workflow_id, run_id).await
    }

    async fn history_after(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        Engine::history_after(self, workflow_id, run_id, after, max).await
    }

    async fn describe_task_queue(
        &self,
        task_queue: &str,
    ) -> Result<TaskQueueDescription, EngineError> {
        Ok(Engine::describe_task_queue(self, task_queue))
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        Engine::subscribe(self)
    }

    async fn wait_until<F>(
        &self,
        workflow_id: &str,
        done: F,
    ) -> Result<WorkflowDescription, EngineError>
    where
        F: Fn(&WorkflowDescription) -> bool + Send + Sync,
    {
        Engine::wait_until(self, workflow_id, done).await
    }
}

impl WorkflowClient for Engine {
    async fn start_workflow(
        &self,
        options: StartWorkflowOptions,
    ) -> Result<RunHandle, EngineError> {
        Engine::start_workflow(self, options).await
    }

    async fn signal(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        signal_name: &str,
        input: Payload,
        identity: &str,
    ) -> Result<(), EngineError> {
        Engine::signal(self, workflow_id, run_id, signal_name, input, identity).await
    }

    async fn query(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        query_type: &str,
        args: Payload,
    ) -> Result<Payload, EngineError> {
        Engine::query(self, workflow_id, run_id, query_type, args).await
    }

    async fn cancel(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        identity: &str,
    ) -> Result<(), EngineError> {
        Engine::cancel(self, workflow_id, run_id, identity).await
    }

    async fn terminate(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
        identity: &str,
    ) -> Result<(), EngineError> {
        Engine::terminate(self, workflow_id, run_id, reason, identity).await
    }

    async fn reset(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
        event_id: u64,
        reason: &str,
    ) -> Result<RunHandle, EngineError> {
        Engine::reset(self, workflow_id, run_id, event_id, reason).await
    }

    async fn result(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowOutcome, EngineError> {
        Engine::result(self, workflow_id, run_id).await
    }
}
