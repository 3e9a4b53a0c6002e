//! One clock for the whole engine: every deadline (backoff, timeouts, timers)
//! is measured on it.
//!
//! - [`Clock::system`]: wall time.
//! - [`Clock::scaled`]: wall time running N× faster, so a 8 s backoff is
//!   watchable in 0.8 s at 10×.
//! - [`Clock::virtual_time`]: tokio's paused clock. It moves only when told
//!   ([`Clock::advance`]) or, when every task is idle, jumps straight to the
//!   next deadline. Tests and headless scenarios run on it in milliseconds,
//!   deterministically. It needs a current-thread runtime with time paused
//!   (`#[tokio::test(start_paused = true)]`, or `Builder::start_paused`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z: where virtual time starts, so virtual runs print the same times.
pub const VIRTUAL_EPOCH_MS: u64 = 1_767_225_600_000;

#[derive(Clone)]
pub struct Clock(Arc<Kind>);

enum Kind {
    System,
    Scaled {
        factor: f64,
        origin_real: tokio::time::Instant,
        origin_ms: u64,
    },
    Virtual {
        origin: tokio::time::Instant,
        origin_ms: u64,
    },
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Kind::System => f.write_str("Clock::System"),
            Kind::Scaled { factor, .. } => write!(f, "Clock::Scaled({factor}x)"),
            Kind::Virtual { .. } => f.write_str("Clock::Virtual"),
        }
    }
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock {
    /// Wall-clock time.
    pub fn system() -> Self {
        Clock(Arc::new(Kind::System))
    }

    /// Wall-clock time running `factor` times faster (`factor` ≥ 1 speeds up).
    pub fn scaled(factor: f64) -> Self {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        Clock(Arc::new(Kind::Scaled {
            factor,
            origin_real: tokio::time::Instant::now(),
            origin_ms: system_now_ms(),
        }))
    }

    /// Virtual time on tokio's paused clock, starting at [`VIRTUAL_EPOCH_MS`].
    /// Call inside a runtime whose time is paused.
    pub fn virtual_time() -> Self {
        Clock(Arc::new(Kind::Virtual {
            origin: tokio::time::Instant::now(),
            origin_ms: VIRTUAL_EPOCH_MS,
        }))
    }

    pub fn is_virtual(&self) -> bool {
        matches!(&*self.0, Kind::Virtual { .. })
    }

    /// Milliseconds since the Unix epoch on this clock.
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Kind::System => system_now_ms(),
            Kind::Scaled {
                factor,
                origin_real,
                origin_ms,
            } => origin_ms + (origin_real.elapsed().as_secs_f64() * factor * 1000.0) as u64,
            Kind::Virtual { origin, origin_ms } => {
                origin_ms
                    + tokio::time::Instant::now()
                        .duration_since(*origin)
                        .as_millis() as u64
            }
        }
    }

    /// Sleeps until this clock reads at least `deadline_ms`.
    pub async fn sleep_until_ms(&self, deadline_ms: u64) {
        loop {
            let now = self.now_ms();
            if now >= deadline_ms {
                return;
            }
            let left = Duration::from_millis(deadline_ms - now);
            let real = match &*self.0 {
                Kind::Scaled { factor, .. } => left.div_f64(*factor),
                _ => left,
            };
            tokio::time::sleep(real.max(Duration::from_micros(200))).await;
        }
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        let deadline = self.now_ms() + d.as_millis() as u64;
        self.sleep_until_ms(deadline).await;
    }

    /// Moves virtual time forward by `d` (firing whatever falls due). No-op on other clocks.
    pub async fn advance(&self, d: Duration) {
        if self.is_virtual() {
            tokio::time::advance(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual time moves only when told (or when everything is idle), by exactly as much.
    #[tokio::test(start_paused = true)]
    async fn virtual_clock_advances_on_demand() {
        let c = Clock::virtual_time();
        assert_eq!(c.now_ms(), VIRTUAL_EPOCH_MS);
        c.advance(Duration::from_millis(1500)).await;
        assert_eq!(c.now_ms(), VIRTUAL_EPOCH_MS + 1500);
        c.sleep(Duration::from_secs(8)).await;
        assert_eq!(c.now_ms(), VIRTUAL_EPOCH_MS + 9500);
    }

    /// A scaled clock sleeps `d / factor` of tokio time.
    #[tokio::test(start_paused = true)]
    async fn scaled_clock_sleeps_faster() {
        let c = Clock::scaled(10.0);
        let t = tokio::time::Instant::now();
        c.sleep(Duration::from_secs(8)).await;
        let real = t.elapsed();
        assert!(
            real <= Duration::from_millis(810),
            "slept {real:?} of tokio time for 8 s at 10x"
        );
    }
}
