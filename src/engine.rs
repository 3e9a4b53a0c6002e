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
mod feed;
mod floor;
mod history;
mod limits;
mod read_model;
mod runtime;
mod state;
mod store;
mod task_queues;
mod worker;
mod worker_api;

pub use api::{ReadModel, WorkflowClient};
pub use archive::Archive;
pub use client::{
    RunHandle, StartWorkflowOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowOutcome,
};
pub use clock::{Clock, SPEED_RANGE, VIRTUAL_EPOCH_MS};
pub use error::{EngineError, StoreError};
pub use feed::{Change, RunChange};
pub use floor::StorageFloor;
pub use history::{
    EventAttributes, EventType, Failure, FailureInfo, HistoryEvent, Payload, RetryPolicy,
    RetryPolicyError, RetryState, TimeoutType, WorkflowTaskFailedCause,
};
pub use limits::{BLOB_SIZE_LIMIT, HistoryLimits, MAX_ID_LENGTH};
pub use read_model::{
    ListFilter, ListPage, PageToken, PendingActivityInfo, PendingWorkflowTaskInfo,
    WorkflowDescription, WorkflowExecutionInfo,
};
pub use runtime::{Engine, EngineConfig, InputValidator, Recovery};
pub use state::{
    ActivityCancellationType, ActivityOptions, AttemptOutcome, AttemptRecord, Command,
    MAX_ATTEMPT_RECORDS, PendingActivityState, WorkflowExecutionStatus,
};
pub use task_queues::{PollerInfo, TaskQueueDescription, TaskQueueKind};
pub use worker::workflow::{
    ActivityError, ActivityFuture, NONDETERMINISM_CODE, QueryHandler, SignalChannel, TimerFuture,
    WaitCondition, WfContext, WorkflowError, WorkflowInfo, activity_options,
};
pub use worker::{
    ActivityContext, ApplicationError, CANCELED_ERROR_TYPE, Worker, WorkerHandle, WorkerOptions,
    WorkerStats,
};
pub use worker_api::{
    ActivityTask, ActivityTaskToken, QueryPollerGuard, QueryTask, WorkflowTask, WorkflowTaskToken,
};
