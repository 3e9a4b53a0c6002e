//! Retry policy, with Temporal's defaults and formula (no jitter).
//!
//! Invariants:
//! - every activity has a policy: unset fields take the defaults
//!   (1 s, ×2, 100 × initial, unlimited attempts);
//! - the interval before attempt `a + 1` is `initial · coefficient^(a-1)`,
//!   capped at the maximum interval;
//! - non-retryable error types match the failure type exactly;
//! - a next attempt that would start after the expiration (the
//!   schedule-to-close deadline) is not scheduled: the activity fails with
//!   `RetryState::Timeout`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Failure, FailureInfo};
use super::{RetryState, TimeoutType};

/// Temporal's `RetryPolicy`. `Default` gives the server defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval: Duration,
    pub backoff_coefficient: f64,
    /// `Duration::ZERO` means "100 × initial" until normalized.
    pub maximum_interval: Duration,
    /// 0 means unlimited.
    pub maximum_attempts: u32,
    pub non_retryable_error_types: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(100),
            maximum_attempts: 0,
            non_retryable_error_types: Vec::new(),
        }
    }
}

/// Why a retry policy was refused (Temporal's InvalidArgument wording).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("BackoffCoefficient cannot be less than 1")]
    BackoffCoefficient,
    #[error("MaximumInterval cannot be less than InitialInterval")]
    MaximumInterval,
    #[error("InitialInterval cannot be zero")]
    InitialInterval,
}

impl RetryPolicy {
    /// Fills unset fields with the server defaults, as Temporal's `EnsureDefaults` does.
    pub fn normalized(mut self) -> Self {
        if self.initial_interval.is_zero() {
            self.initial_interval = Duration::from_secs(1);
        }
        if self.backoff_coefficient == 0.0 {
            self.backoff_coefficient = 2.0;
        }
        if self.maximum_interval.is_zero() {
            self.maximum_interval = self.initial_interval * 100;
        }
        self
    }

    /// Validates a normalized policy. `maximum_attempts == 1` disables retry and skips the checks.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.maximum_attempts == 1 {
            return Ok(());
        }
        if self.initial_interval.is_zero() {
            return Err(RetryPolicyError::InitialInterval);
        }
        if self.backoff_coefficient.is_nan() || self.backoff_coefficient < 1.0 {
            return Err(RetryPolicyError::BackoffCoefficient);
        }
        if self.maximum_interval < self.initial_interval {
            return Err(RetryPolicyError::MaximumInterval);
        }
        Ok(())
    }

    /// The backoff before the attempt after `attempt` (which just failed), before deadlines.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1000) as i32;
        let secs = self.initial_interval.as_secs_f64() * self.backoff_coefficient.powi(exp);
        let max = self.maximum_interval.as_secs_f64();
        if !secs.is_finite() || secs > max || secs <= 0.0 {
            self.maximum_interval
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Whether a failure may be retried under this policy (Temporal's `IsRetryableFailure`).
    pub fn is_retryable(&self, failure: &Failure) -> bool {
        match &failure.info {
            FailureInfo::Timeout { timeout_type, .. } => match timeout_type {
                TimeoutType::ScheduleToStart | TimeoutType::ScheduleToClose => false,
                t => !self
                    .non_retryable_error_types
                    .iter()
                    .any(|n| n == &format!("TemporalTimeout:{}", t.words())),
            },
            FailureInfo::Terminated | FailureInfo::Canceled { .. } | FailureInfo::Reset { .. } => {
                false
            }
            FailureInfo::Application {
                error_type,
                non_retryable,
                ..
            } => {
                !*non_retryable
                    && !self
                        .non_retryable_error_types
                        .iter()
                        .any(|n| n == error_type)
            }
            FailureInfo::Activity { .. } => true,
        }
    }

    /// Temporal's `should_retry`: given the attempt that just failed, the
    /// failure, the current time and the retry expiration (the schedule-to-close
    /// deadline, if any), either the interval to wait before the next attempt
    /// or the retry state the activity closes with.
    pub fn should_retry(
        &self,
        attempt: u32,
        failure: &Failure,
        now_ms: u64,
        expiration_ms: Option<u64>,
    ) -> Result<Duration, RetryState> {
        if !self.is_retryable(failure) {
            return Err(match failure.timeout_type() {
                Some(TimeoutType::ScheduleToStart | TimeoutType::ScheduleToClose) => {
                    RetryState::Timeout
                }
                _ => RetryState::NonRetryableFailure,
            });
        }
        if self.maximum_attempts > 0 && attempt >= self.maximum_attempts {
            return Err(RetryState::MaximumAttemptsReached);
        }
        let interval = match &failure.info {
            FailureInfo::Application {
                next_retry_delay: Some(d),
                ..
            } => *d,
            _ => self.backoff(attempt),
        };
        if let Some(exp) = expiration_ms
            && now_ms.saturating_add(interval.as_millis() as u64) > exp
        {
            return Err(RetryState::Timeout);
        }
        Ok(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Failure {
        Failure::application("E", "boom", false)
    }

    /// The default backoffs are 1, 2, 4, 8 s, so attempts start at +0, +1, +3, +7 s.
    #[test]
    fn default_backoff_doubles_from_one_second() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=4).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8]);
    }

    /// A maximum interval caps the backoff (the tutorial's 2 s).
    #[test]
    fn maximum_interval_caps_backoff() {
        let p = RetryPolicy {
            maximum_interval: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=4).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 2, 2]);
    }

    /// Unset maximum interval is 100 × initial.
    #[test]
    fn normalized_fills_defaults() {
        let p = RetryPolicy {
            initial_interval: Duration::from_secs(2),
            maximum_interval: Duration::ZERO,
            backoff_coefficient: 0.0,
            ..RetryPolicy::default()
        }
        .normalized();
        assert_eq!(p.maximum_interval, Duration::from_secs(200));
        assert_eq!(p.backoff_coefficient, 2.0);
    }

    #[test]
    fn maximum_attempts_stop_retries() {
        let p = RetryPolicy {
            maximum_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.should_retry(2, &fail(), 0, None).is_ok());
        assert_eq!(
            p.should_retry(3, &fail(), 0, None),
            Err(RetryState::MaximumAttemptsReached)
        );
    }

    /// Non-retryable types match exactly, case-sensitively.
    #[test]
    fn non_retryable_types_match_exactly() {
        let p = RetryPolicy {
            non_retryable_error_types: vec!["InvalidAccountError".into()],
            ..RetryPolicy::default()
        };
        let exact = Failure::application("InvalidAccountError", "x", false);
        let other = Failure::application("invalidaccounterror", "x", false);
        assert_eq!(
            p.should_retry(1, &exact, 0, None),
            Err(RetryState::NonRetryableFailure)
        );
        assert!(p.should_retry(1, &other, 0, None).is_ok());
        let flagged = Failure::application("Anything", "x", true);
        assert_eq!(
            p.should_retry(1, &flagged, 0, None),
            Err(RetryState::NonRetryableFailure)
        );
    }

    /// No next attempt past the schedule-to-close deadline: RetryState::Timeout.
    #[test]
    fn no_retry_past_expiration() {
        let p = RetryPolicy::default();
        // attempt 3 failed at t=3 s; next backoff 4 s would start at 7 s > 5 s deadline
        assert_eq!(
            p.should_retry(3, &fail(), 3_000, Some(5_000)),
            Err(RetryState::Timeout)
        );
        assert_eq!(
            p.should_retry(2, &fail(), 1_000, Some(5_000)),
            Ok(Duration::from_secs(2))
        );
    }

    /// Start-to-close timeouts retry; schedule-to-start and schedule-to-close never do.
    #[test]
    fn timeout_retryability() {
        let p = RetryPolicy::default();
        let stc = Failure::activity_timeout(TimeoutType::StartToClose);
        let s2s = Failure::activity_timeout(TimeoutType::ScheduleToStart);
        assert!(p.should_retry(1, &stc, 0, None).is_ok());
        assert_eq!(p.should_retry(1, &s2s, 0, None), Err(RetryState::Timeout));
        let p2 = RetryPolicy {
            non_retryable_error_types: vec!["TemporalTimeout:StartToClose".into()],
            ..RetryPolicy::default()
        };
        assert!(p2.should_retry(1, &stc, 0, None).is_err());
    }
}
