//! The sd_notify protocol: READY once the intake and the listener are up, WATCHDOG from the
//! main loop's liveness, STOPPING on drain. Without `NOTIFY_SOCKET` every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, "Could not notify systemd.");
    }
}

/// The daemon takes work.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("taking jobs from the intake queue")]);
}

/// The daemon is draining.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining running jobs")]);
}

/// The main loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to feed the watchdog (half of `WatchdogSec`), when systemd asked for it.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}
