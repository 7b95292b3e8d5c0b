//! An adaptive token bucket for sts:AssumeRoot: the STS request quota is shared by the whole
//! account, so the process spaces its calls, and halves its pace when STS throttles it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces calls evenly at a configured rate, slowing down on throttling (AIMD).
#[derive(Debug)]
pub struct RateLimiter {
    configured: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Calls per second allowed now (at most `configured`).
    rate: f64,
    /// The earliest instant the next call may start.
    next_slot: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_second` calls per second.
    pub fn new(per_second: f64) -> Self {
        Self { configured: per_second, state: Mutex::new(State { rate: per_second, next_slot: Instant::now() }) }
    }

    /// Waits for this caller's slot. Slots are reserved in call order, so waiting is fair.
    pub async fn acquire(&self) {
        let slot = {
            let mut state = self.state.lock().expect("rate limiter lock");
            let slot = state.next_slot.max(Instant::now());
            state.next_slot = slot + Duration::from_secs_f64(1.0 / state.rate);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// STS throttled a call: halve the pace (down to a tenth of the configured rate).
    pub fn throttled(&self) {
        let mut state = self.state.lock().expect("rate limiter lock");
        state.rate = (state.rate / 2.0).max(self.configured / 10.0);
        state.next_slot = state.next_slot.max(Instant::now()) + Duration::from_secs_f64(1.0 / state.rate);
    }

    /// A call went through: recover a twentieth of the configured rate.
    pub fn succeeded(&self) {
        let mut state = self.state.lock().expect("rate limiter lock");
        state.rate = (state.rate + self.configured / 20.0).min(self.configured);
    }

    /// The pace in force now.
    pub fn current_rate(&self) -> f64 {
        self.state.lock().expect("rate limiter lock").rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_at_the_configured_rate() {
        let limiter = RateLimiter::new(20.0);
        let start = Instant::now();
        for _ in 0..101 {
            limiter.acquire().await;
        }
        // 100 intervals of 50 ms after the first, immediate call.
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_success_recovers_it() {
        let limiter = RateLimiter::new(20.0);
        limiter.throttled();
        assert_eq!(limiter.current_rate(), 10.0);
        for _ in 0..10 {
            limiter.throttled();
        }
        assert_eq!(limiter.current_rate(), 2.0);
        for _ in 0..100 {
            limiter.succeeded();
        }
        assert_eq!(limiter.current_rate(), 20.0);
    }
}
