//! The durable-execution engine: history, store, replay, workers, retries,
//! timers and the clock. It knows nothing of terminals, apps or scenarios.
//!
//! - [`Engine`]: open a data directory; the client API
//!   ([`Engine::start_workflow`], [`Engine::result`], [`Engine::terminate`]),
//!   the read model ([`Engine::list`], [`Engine::describe`],
//!   [`Engine::history`]) and the change feed ([`Engine::subscribe`]).
//! - [`Worker`]: register workflows and activities, start, kill, swap.

mod client;
mod clock;
mod core;
mod error;
mod failure;
mod feed;
mod history;
mod retry;
mod state;
mod store;
mod tasks;
mod worker;
mod workflow;

pub use client::{
    BLOB_SIZE_LIMIT, ListFilter, ListPage, MAX_ID_LENGTH, PendingActivityInfo,
    PendingWorkflowTaskInfo, RunHandle, StartWorkflowOptions, WorkflowDescription,
    WorkflowExecutionInfo, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowOutcome,
};
pub use clock::{Clock, VIRTUAL_EPOCH_MS};
pub use core::{Engine, EngineConfig, HistoryLimits, InputValidator};
pub use error::{EngineError, StoreError};
pub use failure::{Failure, FailureInfo};
pub use feed::Change;
pub use history::{
    EventAttributes, EventType, HistoryEvent, Payload, RetryState, TimeoutType,
    WorkflowTaskFailedCause,
};
pub use retry::{RetryPolicy, RetryPolicyError};
pub use state::{ActivityOptions, Command, PendingActivityState, WorkflowExecutionStatus};
pub use store::{FORMAT_VERSION, Store, WriteBatch, decode, encode};
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
