//! Dist-tags such as `latest`, `next` or `beta`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::display::shown;

/// The longest dist-tag we accept, in characters. npm sets no limit; 128 leaves room for tags
/// derived from branch names (`pr-1234-some-long-feature-branch`) while keeping `dist-tags`
/// maps and the `/-/package/{name}/dist-tags/{tag}` URLs small.
pub const MAX_TAG_LENGTH: usize = 128;

/// A dist-tag name: what `npm install pkg@<tag>` resolves through the packument's `dist-tags`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistTag(String);

/// Why a string cannot be a dist-tag.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TagError {
    /// The tag is the empty string.
    #[error("dist-tag must not be empty")]
    Empty,
    /// The tag is longer than [`MAX_TAG_LENGTH`].
    #[error("dist-tag `{tag}` is {length} characters long; the limit is 128")]
    TooLong {
        /// The tag as given (escaped for display, possibly cut).
        tag: String,
        /// Its length in characters.
        length: usize,
    },
    /// The tag reads as a semver range, so `npm install pkg@<tag>` would treat it as one.
    #[error(
        "dist-tag `{tag}` must not look like a semver version or range, because `npm install pkg@{tag}` would read it as one; use a name such as `next` or `beta`"
    )]
    SemverRange {
        /// The tag as given (escaped for display).
        tag: String,
    },
    /// The tag contains a character that `encodeURIComponent` would escape.
    #[error(
        "dist-tag `{tag}` contains `{character}`, which is not URL-safe; use only letters, digits and `-._!~*'()`"
    )]
    NotUrlSafe {
        /// The tag as given (escaped for display).
        tag: String,
        /// The refused character (escaped for display).
        character: String,
    },
    /// The tag starts with `.`.
    #[error("dist-tag `{tag}` must not start with `.`")]
    LeadingDot {
        /// The tag as given (escaped for display).
        tag: String,
    },
}

impl DistTag {
    /// Checks `s` against npm's rules for dist-tags, plus a length bound and a ban on a leading
    /// `.` (so `.` and `..` can never appear as a path segment):
    ///
    /// * non-empty and at most [`MAX_TAG_LENGTH`] characters;
    /// * not something npm's `semver.validRange` accepts (`1`, `1.2.3`, `x`, `*`, `^1`, `>=2`,
    ///   `~1.2`, `v1`, ...), which `npm dist-tag add` refuses because `npm install pkg@1` would
    ///   read it as a range instead of a tag;
    /// * only characters `encodeURIComponent` leaves alone: ASCII letters, digits and `-._!~*'()`.
    pub fn parse(s: &str) -> Result<DistTag, TagError> {
        if s.is_empty() {
            return Err(TagError::Empty);
        }
        let length = s.chars().count();
        if length > MAX_TAG_LENGTH {
            return Err(TagError::TooLong {
                tag: shown(s),
                length,
            });
        }
        if looks_like_semver_range(s) {
            return Err(TagError::SemverRange { tag: shown(s) });
        }
        if let Some(c) = s.chars().find(|&c| !is_tag_char(c)) {
            return Err(TagError::NotUrlSafe {
                tag: shown(s),
                character: shown(c.encode_utf8(&mut [0; 4])),
            });
        }
        if s.starts_with('.') {
            return Err(TagError::LeadingDot { tag: shown(s) });
        }
        Ok(DistTag(s.to_owned()))
    }

    /// `latest`, the tag npm installs by default and publishes to without `--tag`.
    pub fn latest() -> DistTag {
        DistTag("latest".to_owned())
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters `encodeURIComponent` does not escape.
fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')')
}

/// Whether npm's `semver.validRange(s)` would (or plausibly could) accept `s`.
///
/// This errs towards "yes": refusing an odd tag such as `~` costs nothing, while accepting a tag
/// like `1.2` would make `npm install pkg@1.2` ambiguous. The grammar follows node-semver: ranges
/// joined by `||`, each a list of whitespace-separated comparators or a hyphen range `a - b`; a
/// comparator is an optional operator (`<`, `<=`, `>`, `>=`, `=`, `~`, `~>`, `^`), any number of
/// `v` and `=` characters, then a partial version: one to three parts of digits, `x`, `X` or `*`,
/// and with three parts an optional `-prerelease` and `+build`.
pub(crate) fn looks_like_semver_range(s: &str) -> bool {
    s.split("||").all(|set| {
        let mut tokens = set.split_ascii_whitespace();
        while let Some(token) = tokens.next() {
            if token == "-" {
                continue;
            }
            let (has_operator, rest) = strip_operator(token);
            let partial = rest.trim_start_matches(['v', '=']);
            let partial = if partial.is_empty() && has_operator {
                // An operator on its own, like `>= 1.2`, applies to the next token; an operator
                // with nothing after it at all we treat as a range too.
                match tokens.next() {
                    Some(next) => next.trim_start_matches(['v', '=']),
                    None => return true,
                }
            } else {
                partial
            };
            if !is_partial_version(partial) {
                return false;
            }
        }
        // An empty set (`""`, or `1 ||`) means `*` to node-semver.
        true
    })
}

fn strip_operator(token: &str) -> (bool, &str) {
    for operator in ["<=", ">=", "~>", "<", ">", "=", "~", "^"] {
        if let Some(rest) = token.strip_prefix(operator) {
            return (true, rest);
        }
    }
    (false, token)
}

fn is_partial_version(s: &str) -> bool {
    let (rest, build) = match s.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (s, None),
    };
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let is_x_part = |p: &&str| {
        matches!(*p, "x" | "X" | "*") || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if parts.len() > 3 || !parts.iter().all(is_x_part) {
        return false;
    }
    let is_identifiers = |s: &str| {
        s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    match (prerelease, build) {
        (None, None) => true,
        _ if parts.len() != 3 => false,
        (prerelease, build) => {
            prerelease.is_none_or(is_identifiers) && build.is_none_or(is_identifiers)
        }
    }
}

impl fmt::Display for DistTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DistTag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for DistTag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DistTag::parse(s)
    }
}

impl Serialize for DistTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DistTag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        DistTag::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the one a table row expects.
    type Expected = fn(&TagError) -> bool;

    #[test]
    fn semver_range_table() {
        let ranges = [
            "",
            "1",
            "1.2",
            "1.2.3",
            "01",
            "x",
            "X",
            "*",
            "x.x.x",
            "1.x",
            "1.2.x",
            "1.2.*",
            "1.X",
            "v1",
            "v1.2.3",
            "vv1",
            "=1.2.3",
            "=v1",
            "^1",
            "^1.2.3",
            "~1.2",
            "~>1.2",
            ">=2",
            ">2",
            "<2.0.0",
            "<=2",
            ">= 2",
            ">1 <3",
            "1 - 2",
            "1.2.3 - 2.3.4",
            "1 || 2",
            "1 ||",
            "1.2.3-beta.1",
            "1.2.3-rc-1",
            "1.2.3+build.5",
            "1.2.3-beta+build",
            "~",
            "^",
            "=",
            " 1 ",
        ];
        for s in ranges {
            assert!(looks_like_semver_range(s), "`{s}` should read as a range");
        }
        let not_ranges = [
            "latest",
            "next",
            "beta",
            "canary",
            "rc",
            "v",
            "vnext",
            "v1-latest",
            "x1",
            "1a",
            "1.2.3.4",
            "1.2-beta",
            "1-2",
            "x-y",
            "1.2.3-",
            "1.2.3-beta..1",
            "1.2.3+",
            "stable-1",
            "release-2024",
            "next-15",
            "1.0-lts",
            "^latest",
            ">=next",
            "1 || next",
        ];
        for s in not_ranges {
            assert!(
                !looks_like_semver_range(s),
                "`{s}` should not read as a range"
            );
        }
    }

    #[test]
    fn accepts_ordinary_tags() {
        for s in [
            "latest",
            "next",
            "beta",
            "canary",
            "v1-latest",
            "next-15",
            "release-2024.01",
            "LTS",
            "pr_42",
            "it's(ok)!",
            "a*b~c",
        ] {
            let tag = DistTag::parse(s).unwrap_or_else(|err| panic!("{s}: {err}"));
            assert_eq!(tag.as_str(), s);
            assert_eq!(tag.to_string(), s);
        }
        assert_eq!(DistTag::latest(), DistTag::parse("latest").unwrap());
        assert!(DistTag::parse(&"a".repeat(MAX_TAG_LENGTH)).is_ok());
    }

    #[test]
    fn refuses_bad_tags() {
        let long = "a".repeat(MAX_TAG_LENGTH + 1);
        let table: &[(&str, Expected)] = &[
            ("", |e| matches!(e, TagError::Empty)),
            (&long, |e| {
                matches!(e, TagError::TooLong { length: 129, .. })
            }),
            ("1", |e| matches!(e, TagError::SemverRange { .. })),
            ("x", |e| matches!(e, TagError::SemverRange { .. })),
            ("^1", |e| matches!(e, TagError::SemverRange { .. })),
            ("1.2.3", |e| matches!(e, TagError::SemverRange { .. })),
            (">=2", |e| matches!(e, TagError::SemverRange { .. })),
            ("*", |e| matches!(e, TagError::SemverRange { .. })),
            ("v2", |e| matches!(e, TagError::SemverRange { .. })),
            ("a b", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("a/b", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("a%2fb", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("a\\b", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("a\nb", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("bêta", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("^latest", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("a+b", |e| matches!(e, TagError::NotUrlSafe { .. })),
            ("..", |e| matches!(e, TagError::LeadingDot { .. })),
            (".", |e| matches!(e, TagError::LeadingDot { .. })),
            (".hidden", |e| matches!(e, TagError::LeadingDot { .. })),
        ];
        for (input, expected) in table {
            match DistTag::parse(input) {
                Ok(tag) => panic!("`{}` should be refused, got {tag:?}", input.escape_debug()),
                Err(err) => assert!(expected(&err), "`{input}` refused with {err:?}"),
            }
        }
    }

    #[test]
    fn error_messages() {
        let message = |s: &str| DistTag::parse(s).unwrap_err().to_string();
        insta::assert_snapshot!(
            message("1.2"),
            @"dist-tag `1.2` must not look like a semver version or range, because `npm install pkg@1.2` would read it as one; use a name such as `next` or `beta`"
        );
        insta::assert_snapshot!(
            message("a/b"),
            @"dist-tag `a/b` contains `/`, which is not URL-safe; use only letters, digits and `-._!~*'()`"
        );
    }

    #[test]
    fn serde_validates() {
        let tag: DistTag = serde_json::from_str(r#""next""#).unwrap();
        assert_eq!(serde_json::to_string(&tag).unwrap(), r#""next""#);
        assert!(serde_json::from_str::<DistTag>(r#""1.0.0""#).is_err());
    }
}
