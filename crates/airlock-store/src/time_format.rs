use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// npm's timestamp shape: `2026-11-22T04:28:29.123Z` (UTC, milliseconds), as `Date#toISOString`.
#[must_use]
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_iso_string() {
        let t = parse_time("2020-01-02T03:04:05.006+01:00").unwrap();
        assert_eq!(format_time(t), "2020-01-02T02:04:05.006Z");
        assert_eq!(parse_time(&format_time(t)).unwrap(), t);
    }
}
