//! Failures, shaped like Temporal's `Failure` proto: a message, a source, an
//! optional cause and one kind of info.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Payload, RetryState, TimeoutType};

/// A failure as recorded in history and handed to workflow code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    /// `"Server"` for failures the engine makes (timeouts); empty for application failures.
    pub source: String,
    pub cause: Option<Box<Failure>>,
    pub info: FailureInfo,
}

/// Which kind of failure this is, with its details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FailureInfo {
    /// An error raised by application code (activity or workflow).
    Application {
        /// The error type string, matched exactly against `non_retryable_error_types`.
        error_type: String,
        non_retryable: bool,
        details: Option<Payload>,
        /// Overrides the retry policy's interval before the next attempt
        /// (Temporal's `ApplicationError(next_retry_delay=…)`: a server that
        /// said `Retry-After`).
        #[serde(default)]
        next_retry_delay: Option<std::time::Duration>,
    },
    /// A timeout enforced by the engine.
    Timeout {
        timeout_type: TimeoutType,
        last_heartbeat_details: Option<Payload>,
    },
    /// The wrapper an activity failure gets when it reaches workflow code.
    Activity {
        scheduled_event_id: u64,
        started_event_id: u64,
        identity: String,
        activity_type: String,
        activity_id: String,
        retry_state: RetryState,
    },
    /// The run or activity was terminated.
    Terminated,
    /// The run or activity was canceled, with what it reported as it stopped.
    Canceled { details: Option<Payload> },
    /// The workflow task where a reset branched off (`resetWorkflowFailureInfo`).
    Reset {
        base_run_id: String,
        new_run_id: String,
    },
}

impl Failure {
    /// An application failure with a type string.
    pub fn application(
        error_type: impl Into<String>,
        message: impl Into<String>,
        non_retryable: bool,
    ) -> Self {
        Failure {
            message: message.into(),
            source: String::new(),
            cause: None,
            info: FailureInfo::Application {
                error_type: error_type.into(),
                non_retryable,
                details: None,
                next_retry_delay: None,
            },
        }
    }

    /// A timeout failure as the server writes it (`activity StartToClose timeout`).
    pub fn activity_timeout(timeout_type: TimeoutType) -> Self {
        Failure {
            message: format!("activity {} timeout", timeout_type.words()),
            source: "Server".to_string(),
            cause: None,
            info: FailureInfo::Timeout {
                timeout_type,
                last_heartbeat_details: None,
            },
        }
    }

    /// A cancellation (Temporal's `canceledFailureInfo`).
    pub fn canceled(details: Option<Payload>) -> Self {
        Failure {
            message: "Activity cancelled".into(),
            source: String::new(),
            cause: None,
            info: FailureInfo::Canceled { details },
        }
    }

    /// Whether this failure or one of its causes is a cancellation.
    pub fn is_cancellation(&self) -> bool {
        let mut f = Some(self);
        while let Some(x) = f {
            if matches!(x.info, FailureInfo::Canceled { .. }) {
                return true;
            }
            f = x.cause.as_deref();
        }
        false
    }

    /// A heartbeat timeout carrying the last details the activity reported.
    pub fn heartbeat_timeout(last_heartbeat_details: Option<Payload>) -> Self {
        Failure {
            info: FailureInfo::Timeout {
                timeout_type: TimeoutType::Heartbeat,
                last_heartbeat_details,
            },
            ..Failure::activity_timeout(TimeoutType::Heartbeat)
        }
    }

    /// With details attached (application failures only; others are returned unchanged).
    pub fn with_details(mut self, details: Payload) -> Self {
        if let FailureInfo::Application { details: d, .. } = &mut self.info {
            *d = Some(details);
        }
        self
    }

    /// The next attempt waits `delay` instead of the policy's interval.
    pub fn with_next_retry_delay(mut self, delay: std::time::Duration) -> Self {
        if let FailureInfo::Application {
            next_retry_delay, ..
        } = &mut self.info
        {
            *next_retry_delay = Some(delay);
        }
        self
    }

    /// With a cause.
    pub fn with_cause(mut self, cause: Option<Failure>) -> Self {
        self.cause = cause.map(Box::new);
        self
    }

    /// The application error type, if this is an application failure.
    pub fn error_type(&self) -> Option<&str> {
        match &self.info {
            FailureInfo::Application { error_type, .. } => Some(error_type),
            _ => None,
        }
    }

    /// The timeout type, if this is a timeout failure.
    pub fn timeout_type(&self) -> Option<TimeoutType> {
        match &self.info {
            FailureInfo::Timeout { timeout_type, .. } => Some(*timeout_type),
            _ => None,
        }
    }

    /// The innermost cause (the failure itself when it has none).
    pub fn root_cause(&self) -> &Failure {
        let mut f = self;
        while let Some(c) = &f.cause {
            f = c;
        }
        f
    }

    /// Message and causes joined, for one-line display: `Activity task failed: ValueError: ...`.
    pub fn chain(&self) -> FailureChain<'_> {
        FailureChain(self)
    }
}

/// Displays a failure and its causes on one line.
pub struct FailureChain<'a>(&'a Failure);

impl fmt::Display for FailureChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cur = Some(self.0);
        let mut first = true;
        while let Some(fail) = cur {
            if !first {
                f.write_str(" <- ")?;
            }
            first = false;
            match fail.error_type() {
                Some(t) if !t.is_empty() => write!(f, "{t}: {}", fail.message)?,
                _ => f.write_str(&fail.message)?,
            }
            cur = fail.cause.as_deref();
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chain().fmt(f)
    }
}
