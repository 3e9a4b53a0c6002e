//! The activity's side: the error it returns and the context it gets
//! (heartbeats, the engine's clock).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::clock::Clock;
use crate::engine::history::{Failure, Payload};
use crate::engine::runtime::Engine;

/// The error type of [`ApplicationError::canceled`].
pub const CANCELED_ERROR_TYPE: &str = "CanceledError";

/// An error an activity returns: Temporal's ApplicationError.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplicationError {
    pub error_type: String,
    pub message: String,
    pub non_retryable: bool,
    pub details: Option<Payload>,
    /// The next attempt waits this long instead of the policy's interval.
    pub next_retry_delay: Option<Duration>,
}

impl ApplicationError {
    /// A failure the retry policy may retry (unless its type is listed as non-retryable).
    pub fn retryable(error_type: &str, message: impl Into<String>) -> Self {
        ApplicationError {
            error_type: error_type.to_string(),
            message: message.into(),
            non_retryable: false,
            details: None,
            next_retry_delay: None,
        }
    }

    /// A failure that is never retried.
    pub fn non_retryable(error_type: &str, message: impl Into<String>) -> Self {
        ApplicationError {
            non_retryable: true,
            ..Self::retryable(error_type, message)
        }
    }

    /// What an activity returns when it stops because its cancellation was
    /// requested (its heartbeat says so): the attempt closes as
    /// ActivityTaskCanceled, with the details attached, if any.
    pub fn canceled(message: impl Into<String>) -> Self {
        Self::non_retryable(CANCELED_ERROR_TYPE, message)
    }

    /// Whether this is the activity's answer to a cancel request.
    pub fn is_cancellation(&self) -> bool {
        self.error_type == CANCELED_ERROR_TYPE
    }

    pub fn with_details(mut self, details: &impl Serialize) -> Self {
        self.details = Payload::from_value(details).ok();
        self
    }

    /// The next attempt waits `delay` (a server's `Retry-After`) instead of
    /// the retry policy's interval, as Temporal's `next_retry_delay`.
    pub fn with_next_retry_delay(mut self, delay: Duration) -> Self {
        self.next_retry_delay = Some(delay);
        self
    }

    pub fn into_failure(self) -> Failure {
        let mut f = Failure::application(self.error_type, self.message, self.non_retryable);
        if let Some(d) = self.details {
            f = f.with_details(d);
        }
        if let Some(d) = self.next_retry_delay {
            f = f.with_next_retry_delay(d);
        }
        f
    }
}

impl std::fmt::Display for ApplicationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for ApplicationError {}

/// What an activity gets: who it is, which attempt, and the engine's clock.
#[derive(Clone)]
pub struct ActivityContext {
    pub workflow_id: String,
    pub run_id: String,
    pub activity_id: String,
    pub activity_type: String,
    pub attempt: u32,
    pub worker_identity: String,
    /// How long this attempt may run before the engine times it out.
    pub start_to_close_timeout: Duration,
    pub(super) clock: Clock,
    pub(super) engine: Engine,
    pub(super) token: crate::engine::worker_api::ActivityTaskToken,
    pub(super) heartbeat_details: Option<Payload>,
}

impl ActivityContext {
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reports progress. The details survive into the next attempt and each
    /// heartbeat pushes the heartbeat deadline back. Returns an error once this
    /// attempt is no longer current (timed out, run closed).
    pub fn heartbeat(&self, details: &impl Serialize) -> Result<(), ApplicationError> {
        let p = Payload::from_value(details)
            .map_err(|e| ApplicationError::non_retryable("SerializationError", e.to_string()))?;
        self.engine
            .record_activity_heartbeat(&self.token, p)
            .map_err(|e| match e {
                crate::engine::error::EngineError::ActivityCancelRequested => {
                    ApplicationError::canceled(e.to_string())
                }
                e => ApplicationError::retryable("HeartbeatRejected", e.to_string()),
            })
    }

    /// The details the previous attempt reported by heartbeat, if any.
    pub fn heartbeat_details<T: DeserializeOwned>(&self) -> Option<T> {
        self.heartbeat_details
            .as_ref()
            .and_then(|p| p.to_value().ok())
    }

    /// Sleeps on the engine's clock (virtual in tests).
    pub async fn sleep(&self, d: Duration) {
        self.clock.sleep(d).await;
    }
}

pub(super) type ActivityFn = Arc<
    dyn Fn(ActivityContext, Payload) -> BoxFuture<'static, Result<Payload, ApplicationError>>
        + Send
        + Sync,
>;
