//! One clock for the whole engine: every deadline (backoff, timeouts, timers)
//! is measured on it, and every event's time is read from it.
//!
//! Engine time runs at a speed (1× to 60×) that can change while it runs,
//! so a 8 s backoff is watchable in 0.8 s at 10×. It is persisted by the
//! engine and never goes backwards: an engine reopened after a run at 10×
//! starts at the newest time that run stored (see [`Clock::not_before`]),
//! so nothing waits for the wall clock to catch up. At 1× on a fresh store
//! it reads the wall clock; after running faster it is ahead of the wall
//! clock by what the speed-up saved, and history shows engine time.
//!
//! - [`Clock::system`]: engine time at 1× from the wall clock.
//! - [`Clock::scaled`]: the same at another speed.
//! - [`Clock::virtual_time`]: on tokio's paused clock. It moves only when
//!   told ([`Clock::advance`]) or, when every task is idle, jumps straight to
//!   the next deadline. Tests and headless scenarios run on it in
//!   milliseconds, deterministically. It needs a runtime with time paused
//!   (`#[tokio::test(start_paused = true)]`, or `Builder::start_paused`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;

/// 2026-01-01T00:00:00Z: where virtual time starts, so virtual runs print the same times.
pub const VIRTUAL_EPOCH_MS: u64 = 1_767_225_600_000;

/// The slowest and fastest speeds a clock runs at.
pub const SPEED_RANGE: (f64, f64) = (1.0, 60.0);

#[derive(Clone)]
pub struct Clock(Arc<Inner>);

struct Inner {
    is_virtual: bool,
    segment: Mutex<Segment>,
    /// Wakes sleepers when the speed or the time jumps.
    changed: Notify,
}

/// Engine time since `origin`: `origin_ms + elapsed × speed`.
#[derive(Clone, Copy)]
struct Segment {
    origin: Instant,
    origin_ms: u64,
    speed: f64,
}

impl Segment {
    fn now_ms(&self) -> u64 {
        self.origin_ms + (self.origin.elapsed().as_secs_f64() * self.speed * 1000.0) as u64
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_virtual {
            "Virtual"
        } else {
            "Engine"
        };
        write!(f, "Clock::{kind}({}x)", self.speed())
    }
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn clamp_speed(speed: f64) -> f64 {
    if speed.is_finite() {
        speed.clamp(SPEED_RANGE.0, SPEED_RANGE.1)
    } else {
        1.0
    }
}

impl Clock {
    fn new(is_virtual: bool, origin_ms: u64, speed: f64) -> Self {
        Clock(Arc::new(Inner {
            is_virtual,
            segment: Mutex::new(Segment {
                origin: Instant::now(),
                origin_ms,
                speed: clamp_speed(speed),
            }),
            changed: Notify::new(),
        }))
    }

    fn segment(&self) -> MutexGuard<'_, Segment> {
        self.0.segment.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Engine time at 1×, from the wall clock.
    pub fn system() -> Self {
        Clock::new(false, system_now_ms(), 1.0)
    }

    /// Engine time from the wall clock at `speed` (clamped to [`SPEED_RANGE`]).
    pub fn scaled(speed: f64) -> Self {
        Clock::new(false, system_now_ms(), speed)
    }

    /// Virtual time on tokio's paused clock, starting at [`VIRTUAL_EPOCH_MS`].
    /// Call inside a runtime whose time is paused.
    pub fn virtual_time() -> Self {
        Clock::new(true, VIRTUAL_EPOCH_MS, 1.0)
    }

    pub fn is_virtual(&self) -> bool {
        self.0.is_virtual
    }

    /// Milliseconds since the Unix epoch on this clock.
    pub fn now_ms(&self) -> u64 {
        self.segment().now_ms()
    }

    /// How many times faster than real time the clock runs.
    pub fn speed(&self) -> f64 {
        self.segment().speed
    }

    /// Changes the speed from now on (clamped to [`SPEED_RANGE`]); time
    /// goes on from where it is, and sleepers wake to measure again.
    pub fn set_speed(&self, speed: f64) {
        {
            let mut s = self.segment();
            let now = s.now_ms();
            *s = Segment {
                origin: Instant::now(),
                origin_ms: now,
                speed: clamp_speed(speed),
            };
        }
        self.0.changed.notify_waiters();
    }

    /// Moves the clock forward to at least `ms` (a time already stored by
    /// this engine), so time never goes backwards across a restart.
    pub fn not_before(&self, ms: u64) {
        {
            let mut s = self.segment();
            let now = s.now_ms();
            if now >= ms {
                return;
            }
            s.origin_ms += ms - now;
        }
        self.0.changed.notify_waiters();
    }

    /// Sleeps until this clock reads at least `deadline_ms`.
    pub async fn sleep_until_ms(&self, deadline_ms: u64) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (now, speed) = {
                let s = self.segment();
                (s.now_ms(), s.speed)
            };
            if now >= deadline_ms {
                return;
            }
            let left = Duration::from_millis(deadline_ms - now).div_f64(speed);
            tokio::select! {
                _ = tokio::time::sleep(left.max(Duration::from_micros(200))) => {}
                _ = changed => {}
            }
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

    /// A speed change mid-sleep takes effect at once: a sleeper for 8 s at
    /// 1× wakes after 1 s + 7 s / 10 of tokio time once the clock goes 10×.
    #[tokio::test(start_paused = true)]
    async fn speed_changes_while_sleeping() {
        let c = Clock::scaled(1.0);
        let t = tokio::time::Instant::now();
        let start = c.now_ms();
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep(Duration::from_secs(8)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.set_speed(10.0);
        sleeper.await.unwrap();
        let real = t.elapsed();
        assert!(
            real >= Duration::from_millis(1690) && real <= Duration::from_millis(1720),
            "slept {real:?}"
        );
        assert!(c.now_ms() >= start + 8000);
    }

    /// Time never goes backwards: `not_before` only moves forward.
    #[tokio::test(start_paused = true)]
    async fn not_before_only_moves_forward() {
        let c = Clock::virtual_time();
        c.not_before(VIRTUAL_EPOCH_MS + 60_000);
        assert_eq!(c.now_ms(), VIRTUAL_EPOCH_MS + 60_000);
        c.not_before(VIRTUAL_EPOCH_MS);
        assert_eq!(c.now_ms(), VIRTUAL_EPOCH_MS + 60_000);
        assert_eq!(Clock::scaled(1000.0).speed(), SPEED_RANGE.1);
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
