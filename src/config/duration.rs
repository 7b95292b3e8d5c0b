//! Durations in the configuration. They are read as strings with units (`"30s"`, `"15m"`,
//! `"1h"`, `"1h30m"`, anything [`humantime::parse_duration`] accepts), and a number or a
//! malformed string is refused with the forms to write.
//!
//! They are written back (`check-config`) in one form, which reads back to the same value:
//! - whole hours as hours: `"1h"`, `"24h"`;
//! - else whole minutes from 5 minutes up as minutes: `"5m"`, `"15m"`, `"90m"`;
//! - else whole seconds as seconds: `"0s"`, `"2s"`, `"60s"`, `"90s"`, `"120s"`, `"301s"`;
//! - else milliseconds (`"1500ms"`), or nanoseconds for what milliseconds cannot hold.
//!
//! So a short duration keeps the seconds an operator writes (`"60s"`, not `"1m"`), and a long
//! one the hours (`"24h"`, not `"1day"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, Serializer, de};

/// The forms named when a duration is refused.
const FORMS: &str = r#""30s", "15m", "1h" or "1h30m""#;

/// The written form of `value` (see the module).
pub fn format(value: Duration) -> String {
    let (seconds, nanos) = (value.as_secs(), value.subsec_nanos());
    match (seconds, nanos) {
        (s, 0) if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s >= 300 && s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        (_, n) if n % 1_000_000 == 0 => format!("{}ms", value.as_millis()),
        _ => format!("{}ns", value.as_nanos()),
    }
}

pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "a duration, a string with a unit like {FORMS}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        if text.trim().is_empty() {
            return Err(E::custom(format!("an empty string is not a duration; write one like {FORMS}")));
        }
        humantime::parse_duration(text.trim())
            .map_err(|_| E::custom(format!("`{text}` is not a duration; write a number with a unit, like {FORMS}")))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{number} is a number, not a duration; write \"{number}s\" (a string with a unit, like {FORMS})"
        )))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
        match u64::try_from(number) {
            Ok(number) => self.visit_u64(number),
            Err(_) => Err(E::custom(format!("{number} is a negative number, not a duration; write one like {FORMS}"))),
        }
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{number} is a number, not a duration; write a string with a whole number and a unit, like \"90s\" or \"1500ms\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::duration;

    #[test]
    fn durations_are_written_in_one_form_that_reads_back() {
        for (seconds, written) in [
            (0, "0s"),
            (2, "2s"),
            (60, "60s"),
            (90, "90s"),
            (120, "120s"),
            (299, "299s"),
            (300, "5m"),
            (301, "301s"),
            (900, "15m"),
            (3600, "1h"),
            (5400, "90m"),
            (86_400, "24h"),
        ] {
            let value = Duration::from_secs(seconds);
            assert_eq!(duration::format(value), written);
            assert_eq!(humantime::parse_duration(written).unwrap(), value, "{written}");
        }
        for value in [Duration::from_millis(1500), Duration::from_nanos(1_000_000_001), Duration::from_micros(3)] {
            assert_eq!(humantime::parse_duration(&duration::format(value)).unwrap(), value, "{value:?}");
        }
        assert_eq!(duration::format(Duration::from_millis(1500)), "1500ms");
    }
}
