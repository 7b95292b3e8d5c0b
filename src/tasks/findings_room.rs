//! The room a discovery's lists have in its result. A result's findings are cut to a marker
//! past [`MAX_FINDINGS_BYTES`] (results travel as SQS messages), and a discovery over an account
//! with many locked resources can hold far more than that in previous policies alone. So the
//! discovery spends the room entry by entry: an unlock is made only when its entry, with the
//! previous policy whole, is sure to be listed (a changed policy's earlier text is never lost),
//! and what cannot be listed any more is counted instead.

use serde_json::Value;

use crate::outcome::MAX_FINDINGS_BYTES;

/// Left beside the lists for the discovery's counts and the result's own fields.
const HEADROOM: usize = 4 * 1024;

/// What an entry may grow by after its room is reserved: its outcome, error code and reason
/// (the reason cut by [`crate::outcome::cut_reason`], as a result's own is).
const OUTCOME_ALLOWANCE: usize = 1536;

/// The bytes a discovery's `locked` and `errors` lists may still take.
pub(super) struct FindingsRoom {
    left: usize,
}

impl FindingsRoom {
    pub fn new() -> Self {
        Self { left: MAX_FINDINGS_BYTES - HEADROOM }
    }

    /// Reserves room for `entry` as it is now plus its outcome; `None` (nothing reserved) when
    /// it does not fit. A reservation is [`settle`](Self::settle)d once the entry is complete.
    pub fn reserve(&mut self, entry: &Value) -> Option<Reservation> {
        let bytes = cost(entry) + OUTCOME_ALLOWANCE;
        (bytes <= self.left).then(|| {
            self.left -= bytes;
            Reservation { bytes }
        })
    }

    /// Gives back what a reserved entry, now complete, did not use.
    pub fn settle(&mut self, reservation: Reservation, entry: &Value) {
        self.left += reservation.bytes.saturating_sub(cost(entry));
    }

    /// Takes room for `entry` if it fits: true when it may be listed.
    pub fn take(&mut self, entry: &Value) -> bool {
        let needed = cost(entry);
        let fits = needed <= self.left;
        if fits {
            self.left -= needed;
        }
        fits
    }
}

/// Room held for an entry while its resource is changed.
#[must_use]
pub(super) struct Reservation {
    bytes: usize,
}

/// The bytes `entry` adds to a JSON list (its text and a comma).
fn cost(entry: &Value) -> usize {
    serde_json::to_vec(entry).map_or(usize::MAX / 2, |text| text.len() + 1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::outcome::cut_reason;

    #[test]
    fn entries_are_taken_until_the_room_is_spent_and_a_reservation_gives_back_what_it_did_not_use() {
        let mut room = FindingsRoom::new();
        let big = json!({"previous_policy": "p".repeat(35 * 1024)});
        let reservations: Vec<Reservation> = (0..3).map(|_| room.reserve(&big).expect("fits")).collect();
        assert!(room.reserve(&big).is_none(), "a fourth would pass the limit");
        let small = json!({"bucket": "b"});
        let before = room.left;
        assert!(room.take(&small));
        assert_eq!(before - room.left, cost(&small));
        let completed = json!({"previous_policy": "p".repeat(35 * 1024), "outcome": "succeeded"});
        let first = reservations.into_iter().next().unwrap();
        room.settle(first, &completed);
        assert_eq!(room.left, before - cost(&small) + OUTCOME_ALLOWANCE - (cost(&completed) - cost(&big)));
    }

    #[test]
    fn a_long_reason_is_cut_so_the_allowance_holds() {
        let reason = cut_reason(&"x".repeat(5000));
        assert!(json!({"outcome": "failed", "error_code": "SlowDown", "reason": reason}).to_string().len() < OUTCOME_ALLOWANCE);
    }
}
