//! Rendering times, durations, counts and caller-supplied strings inside messages.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// `at` as RFC 3339 (`2026-05-01T12:00:00Z`), the form our JSON uses, so a message and the state
/// it talks about show the same text.
pub(crate) fn moment(at: &OffsetDateTime) -> String {
    // RFC 3339 cannot express years outside 0..=9999; fall back to `time`'s own rendering.
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// `duration` in words: `7 days`, `1 hour 30 minutes`, `0 seconds`, `-2 hours`, `1.5 seconds`.
pub(crate) fn span(duration: Duration) -> String {
    if duration.is_negative() {
        return format!("-{}", span(duration.abs()));
    }
    if duration.subsec_nanoseconds() != 0 {
        let fraction = format!("{:09}", duration.subsec_nanoseconds());
        return format!(
            "{}.{} seconds",
            duration.whole_seconds(),
            fraction.trim_end_matches('0')
        );
    }
    let mut seconds = duration.whole_seconds();
    let mut out = String::new();
    for (unit, size) in [
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
        ("second", 1),
    ] {
        let count = seconds / size;
        seconds %= size;
        if count == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let plural = if count == 1 { "" } else { "s" };
        let _ = write!(out, "{count} {unit}{plural}");
    }
    if out.is_empty() {
        out.push_str("0 seconds");
    }
    out
}

/// `count` as an English word for the small numbers a quorum uses, digits beyond that.
pub(crate) fn count_word(count: usize) -> String {
    const WORDS: [&str; 13] = [
        "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    WORDS
        .get(count)
        .map_or_else(|| count.to_string(), |word| (*word).to_owned())
}

/// A caller-supplied string (an actor id) made safe to show between backticks: control
/// characters and backticks are escaped so they cannot move the cursor or end the quote.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '`' {
            out.push_str("\\`");
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn moments_are_rfc3339() {
        assert_eq!(
            moment(&datetime!(2026-05-01 12:00 UTC)),
            "2026-05-01T12:00:00Z"
        );
    }

    #[test]
    fn spans_read_as_words() {
        assert_eq!(span(Duration::ZERO), "0 seconds");
        assert_eq!(span(Duration::days(7)), "7 days");
        assert_eq!(span(Duration::minutes(90)), "1 hour 30 minutes");
        assert_eq!(span(Duration::days(1) + Duration::SECOND), "1 day 1 second");
        assert_eq!(span(-Duration::hours(2)), "-2 hours");
        assert_eq!(span(Duration::milliseconds(1_500)), "1.5 seconds");
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(count_word(2), "two");
        assert_eq!(count_word(11), "eleven");
        assert_eq!(count_word(40), "40");
    }

    #[test]
    fn shown_escapes_controls_and_backticks() {
        assert_eq!(shown("alice"), "alice");
        assert_eq!(shown("a`b\n"), "a\\`b\\n");
    }
}
