//! Temporal's limits, in one small module so that no layer imports a
//! higher one for a constant.

/// Temporal's blob size error limit: a payload larger than this is refused.
pub const BLOB_SIZE_LIMIT: usize = 2 * 1024 * 1024;
/// Temporal's limit on ids, names and identities.
pub const MAX_ID_LENGTH: usize = 1000;

/// Temporal's history limits: past `warn` a warning is logged; past
/// `error` the run is terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    pub count_warn: u64,
    pub count_error: u64,
    pub size_warn_bytes: u64,
    pub size_error_bytes: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            count_warn: 10_240,
            count_error: 51_200,
            size_warn_bytes: 10 * 1024 * 1024,
            size_error_bytes: 50 * 1024 * 1024,
        }
    }
}
