//! The durable-execution engine: history, store, replay, workers, retries,
//! timers and the clock. It knows nothing of terminals, apps or scenarios.
//!
//! - [`Engine`]: open a data directory; the client API
//!   ([`Engine::start_workflow`], [`Engine::result`], [`Engine::terminate`]),
//!   the read model ([`Engine::list`], [`Engine::describe`],
//!   [`Engine::history`]) and the change feed ([`Engine::subscribe`]).
//! - [`Worker`]: register workflows and activities, start, kill, swap.

mod api;
mod archive;
mod client;
mod clock;
mod error;
mod failure;
mod feed;
mod floor;
mod history;
mod read_model;
mod retry;
mod runtime;
mod state;
mod store;
mod task_queues;
mod tasks;
mod worker;
mod workflow;

pub use api::{ReadModel, WorkflowClient};
pub use archive::Archive;
pub use client::{
    BLOB_SIZE_LIMIT, MAX_ID_LENGTH, RunHandle, StartWorkflowOptions, WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy, WorkflowOutcome,
};
pub use clock::{Clock, SPEED_RANGE, VIRTUAL_EPOCH_MS};
pub use error::{EngineError, StoreError};
pub use failure::{Failure, FailureInfo};
pub use feed::{Change, RunChange};
pub use floor::StorageFloor;
pub use history::{
    EventAttributes, EventType, HistoryEvent, Payload, RetryState, TimeoutType,
    WorkflowTaskFailedCause,
};
pub use read_model::{
    ListFilter, ListPage, PageToken, PendingActivityInfo, PendingWorkflowTaskInfo,
    WorkflowDescription, WorkflowExecutionInfo,
};
pub use retry::{RetryPolicy, RetryPolicyError};
pub use runtime::{Engine, EngineConfig, HistoryLimits, InputValidator, Recovery};
pub use state::{
    ActivityOptions, AttemptOutcome, AttemptRecord, Command, MAX_ATTEMPT_RECORDS,
    PendingActivityState, WorkflowExecutionStatus,
};
pub use task_queues::{PollerInfo, TaskQueueDescription, TaskQueueKind};
pub use tasks::{
    ActivityTask, ActivityTaskToken, QueryPollerGuard, QueryTask, WorkflowTask, WorkflowTaskToken,
};
pub use worker::{
    ActivityContext, ApplicationError, Worker, WorkerHandle, WorkerOptions, WorkerStats,
};
pub use workflow::{
    ActivityError, ActivityFuture, NONDETERMINISM_CODE, QueryHandler, SignalChannel, TimerFuture,
    WaitCondition, WfContext, WorkflowError, WorkflowInfo, activity_options,
};
