//! Package names: npm's rules for new packages, made strict enough that an accepted name can be
//! used as a path segment or storage key without escaping tricks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::display::shown;

/// The longest name npm accepts for a new package (validate-npm-package-name), in characters.
pub const MAX_NAME_LENGTH: usize = 214;

/// Names npm refuses outright: `node_modules` is the install directory itself and `favicon.ico`
/// would shadow the registry's own icon at `/favicon.ico`.
pub const RESERVED_NAMES: &[&str] = &["node_modules", "favicon.ico"];

/// Node.js core modules, which npm refuses as new package names because `require("http")` loads
/// the core module and never the package. This is `require("module").builtinModules` of Node 20
/// and 22 without the `_`-prefixed internals (the leading-underscore rule refuses those) and
/// without sub-paths such as `fs/promises` (the slash rule refuses those). Modules that exist only
/// with the `node:` prefix (`node:test`, `node:sqlite`) do not shadow packages and are not listed.
pub const NODE_CORE_MODULES: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// A valid npm package name, either `name` or `@scope/name`.
///
/// Only lower-case ASCII letters, digits, `-`, `.` and `_` appear in either part (plus the `@` and
/// the single `/` of a scoped name), no part starts with `.`, and `..` appears nowhere, so a
/// name can never be `.`, `..`, contain a backslash, a percent sign or a control character.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName(String);

/// Why a string is not a valid name for a new npm package.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("package name must not be empty")]
    Empty,
    /// The name starts or ends with whitespace.
    #[error("package name `{name}` must not start or end with whitespace")]
    SurroundingWhitespace {
        /// The name as given (escaped for display).
        name: String,
    },
    /// The name is longer than [`MAX_NAME_LENGTH`].
    #[error("package name `{name}` is {length} characters long; the limit is 214")]
    TooLong {
        /// The name as given (escaped for display, possibly cut).
        name: String,
        /// Its length in characters.
        length: usize,
    },
    /// The name, or a part of a scoped name, starts with `.`.
    #[error(
        "package name `{name}` must not start with `.`, and neither may the part after a scope"
    )]
    LeadingDot {
        /// The name as given (escaped for display).
        name: String,
    },
    /// The name starts with `_`.
    #[error("package name `{name}` must not start with `_`")]
    LeadingUnderscore {
        /// The name as given (escaped for display).
        name: String,
    },
    /// A name starting with `@` is not of the form `@scope/name` with both parts non-empty.
    #[error(
        "scoped package name `{name}` must have the form `@scope/name`, with both parts non-empty"
    )]
    MalformedScopedName {
        /// The name as given (escaped for display).
        name: String,
    },
    /// A scoped name contains more than one `/`.
    #[error(
        "package name `{name}` contains more than one `/`; a scoped name has exactly one, as in `@scope/name`"
    )]
    TooManySlashes {
        /// The name as given (escaped for display).
        name: String,
    },
    /// An unscoped name contains `/`.
    #[error(
        "package name `{name}` contains `/` but does not start with `@`; only scoped names such as `@scope/name` contain a slash"
    )]
    SlashInUnscopedName {
        /// The name as given (escaped for display).
        name: String,
    },
    /// The name is one of [`RESERVED_NAMES`].
    #[error("package name `{name}` is reserved; choose another name")]
    Reserved {
        /// The name.
        name: String,
    },
    /// The name is one of [`NODE_CORE_MODULES`].
    #[error(
        "package name `{name}` is the name of a Node.js core module; choose another name or publish it under a scope, as in `@scope/{name}`"
    )]
    CoreModule {
        /// The name.
        name: String,
    },
    /// The name contains an upper-case letter.
    #[error("package name `{name}` must be lower case")]
    UpperCase {
        /// The name as given (escaped for display).
        name: String,
    },
    /// The name contains one of `~'!()*`, which npm refuses in new names.
    #[error("package name `{name}` must not contain `{character}`")]
    SpecialCharacter {
        /// The name as given (escaped for display).
        name: String,
        /// The refused character.
        character: char,
    },
    /// The name contains a character that `encodeURIComponent` would escape.
    #[error(
        "package name `{name}` contains `{character}`, which is not URL-safe; use only lower-case letters, digits, `-`, `.` and `_`"
    )]
    NotUrlSafe {
        /// The name as given (escaped for display).
        name: String,
        /// The refused character (escaped for display).
        character: String,
    },
    /// The name contains `..`.
    #[error("package name `{name}` must not contain `..`")]
    DotDot {
        /// The name as given (escaped for display).
        name: String,
    },
}

impl PackageName {
    /// Checks `s` against npm's rules for new package names (validate-npm-package-name's
    /// `validForNewPackages`), made stricter where needed so that no accepted name allows path
    /// traversal:
    ///
    /// * non-empty, at most [`MAX_NAME_LENGTH`] characters, no leading or trailing whitespace;
    /// * does not start with `.` or `_`; in a scoped name the part after the scope may not start
    ///   with `.` either (npm allows `@scope/..`; we do not);
    /// * either unscoped, without `/`, or `@scope/name` with both parts non-empty and exactly one
    ///   `/`;
    /// * not one of [`RESERVED_NAMES`] or [`NODE_CORE_MODULES`] (scoped names may use them);
    /// * lower case, none of `~'!()*`, and URL-safe: both parts consist of `a-z`, `0-9`, `-`,
    ///   `.` and `_` only (what `encodeURIComponent` leaves alone once upper case and `~'!()*`
    ///   are gone);
    /// * no `..` anywhere (npm allows `a..b`; we do not).
    pub fn parse(s: &str) -> Result<PackageName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.trim() != s {
            return Err(NameError::SurroundingWhitespace { name: shown(s) });
        }
        let length = s.chars().count();
        if length > MAX_NAME_LENGTH {
            return Err(NameError::TooLong {
                name: shown(s),
                length,
            });
        }
        if s.starts_with('.') {
            return Err(NameError::LeadingDot { name: shown(s) });
        }
        if s.starts_with('_') {
            return Err(NameError::LeadingUnderscore { name: shown(s) });
        }

        let (scope, bare) = split_scope(s)?;
        if scope.is_some_and(|scope| scope.starts_with('.')) || bare.starts_with('.') {
            return Err(NameError::LeadingDot { name: shown(s) });
        }
        if scope.is_none() {
            if RESERVED_NAMES.contains(&s) {
                return Err(NameError::Reserved { name: s.to_owned() });
            }
            if NODE_CORE_MODULES.contains(&s) {
                return Err(NameError::CoreModule { name: s.to_owned() });
            }
        }
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(NameError::UpperCase { name: shown(s) });
        }
        for c in scope.into_iter().chain([bare]).flat_map(str::chars) {
            if matches!(c, '~' | '\'' | '!' | '(' | ')' | '*') {
                return Err(NameError::SpecialCharacter {
                    name: shown(s),
                    character: c,
                });
            }
            if !is_name_char(c) {
                return Err(NameError::NotUrlSafe {
                    name: shown(s),
                    character: shown(c.encode_utf8(&mut [0; 4])),
                });
            }
        }
        if s.contains("..") {
            return Err(NameError::DotDot { name: shown(s) });
        }
        Ok(PackageName(s.to_owned()))
    }

    /// The name as npm writes it in JSON, e.g. `@scope/lib`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scope without its `@` (`scope` for `@scope/lib`), or `None` for an unscoped name.
    pub fn scope(&self) -> Option<&str> {
        self.0
            .strip_prefix('@')
            .and_then(|rest| rest.split_once('/'))
            .map(|(scope, _)| scope)
    }

    /// The name without its scope: `lib` for `@scope/lib`, the whole name when unscoped.
    pub fn bare_name(&self) -> &str {
        match self.0.split_once('/') {
            Some((_, bare)) => bare,
            None => &self.0,
        }
    }

    /// The name as npm puts it in a URL path: `@scope%2flib` (lower-case `%2f`, like
    /// npm-package-arg's `escapedName`), unscoped names unchanged. No other character of a valid
    /// name needs escaping.
    pub fn escaped(&self) -> String {
        self.0.replacen('/', "%2f", 1)
    }

    /// The file name npm gives this package's tarball: `lib-1.0.0.tgz` for `@scope/lib@1.0.0`.
    pub fn tarball_filename(&self, version: &semver::Version) -> String {
        format!("{}-{version}.tgz", self.bare_name())
    }
}

/// Splits `s` into scope (without `@`) and bare name, checking the slash rules.
fn split_scope(s: &str) -> Result<(Option<&str>, &str), NameError> {
    let Some(rest) = s.strip_prefix('@') else {
        if s.contains('/') {
            return Err(NameError::SlashInUnscopedName { name: shown(s) });
        }
        return Ok((None, s));
    };
    let Some((scope, bare)) = rest.split_once('/') else {
        return Err(NameError::MalformedScopedName { name: shown(s) });
    };
    if scope.is_empty() || bare.is_empty() {
        return Err(NameError::MalformedScopedName { name: shown(s) });
    }
    if bare.contains('/') {
        return Err(NameError::TooManySlashes { name: shown(s) });
    }
    Ok((Some(scope), bare))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_')
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PackageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageName::parse(s)
    }
}

impl Serialize for PackageName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PackageName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        PackageName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whether an error is the one a table row expects.
    type Expected = fn(&NameError) -> bool;

    fn version(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn accepts_valid_names() {
        let table = [
            ("a", None, "a"),
            ("lodash", None, "lodash"),
            ("@scope/lib", Some("scope"), "lib"),
            ("a-b.c_d", None, "a-b.c_d"),
            ("@s/a.b", Some("s"), "a.b"),
            ("@babel/core", Some("babel"), "core"),
            ("@scope/_private", Some("scope"), "_private"),
            ("@scope/http", Some("scope"), "http"),
            ("@types/node_modules", Some("types"), "node_modules"),
            ("a.", None, "a."),
            ("9to5", None, "9to5"),
            ("fsevents", None, "fsevents"),
        ];
        for (input, scope, bare) in table {
            let name = PackageName::parse(input)
                .unwrap_or_else(|err| panic!("`{input}` should be valid: {err}"));
            assert_eq!(name.as_str(), input);
            assert_eq!(name.to_string(), input);
            assert_eq!(name.scope(), scope, "{input}");
            assert_eq!(name.bare_name(), bare, "{input}");
        }
        let max = "a".repeat(MAX_NAME_LENGTH);
        assert!(PackageName::parse(&max).is_ok());
    }

    #[test]
    fn refuses_invalid_names() {
        let too_long = "a".repeat(MAX_NAME_LENGTH + 1);
        let table: &[(&str, Expected)] = &[
            ("", |e| matches!(e, NameError::Empty)),
            ("Foo", |e| matches!(e, NameError::UpperCase { .. })),
            ("@Scope/lib", |e| matches!(e, NameError::UpperCase { .. })),
            ("@scope/Lib", |e| matches!(e, NameError::UpperCase { .. })),
            (".hidden", |e| matches!(e, NameError::LeadingDot { .. })),
            ("_private", |e| {
                matches!(e, NameError::LeadingUnderscore { .. })
            }),
            (" lodash", |e| {
                matches!(e, NameError::SurroundingWhitespace { .. })
            }),
            ("lodash\n", |e| {
                matches!(e, NameError::SurroundingWhitespace { .. })
            }),
            ("lo dash", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("..", |e| matches!(e, NameError::LeadingDot { .. })),
            (".", |e| matches!(e, NameError::LeadingDot { .. })),
            ("a..b", |e| matches!(e, NameError::DotDot { .. })),
            ("@scope/..", |e| matches!(e, NameError::LeadingDot { .. })),
            ("@scope/.", |e| matches!(e, NameError::LeadingDot { .. })),
            ("@../x", |e| matches!(e, NameError::LeadingDot { .. })),
            ("@scope/", |e| {
                matches!(e, NameError::MalformedScopedName { .. })
            }),
            ("@/x", |e| {
                matches!(e, NameError::MalformedScopedName { .. })
            }),
            ("@scope", |e| {
                matches!(e, NameError::MalformedScopedName { .. })
            }),
            ("@", |e| matches!(e, NameError::MalformedScopedName { .. })),
            ("a/b", |e| {
                matches!(e, NameError::SlashInUnscopedName { .. })
            }),
            ("@scope/a/b", |e| {
                matches!(e, NameError::TooManySlashes { .. })
            }),
            ("%2e%2e", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("@scope%2flib", |e| {
                matches!(e, NameError::MalformedScopedName { .. })
            }),
            ("@sc%6fpe/lib", |e| {
                matches!(e, NameError::NotUrlSafe { .. })
            }),
            ("a\\b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a\u{0}b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a\u{7f}b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("node_modules", |e| matches!(e, NameError::Reserved { .. })),
            ("favicon.ico", |e| matches!(e, NameError::Reserved { .. })),
            ("http", |e| matches!(e, NameError::CoreModule { .. })),
            ("fs", |e| matches!(e, NameError::CoreModule { .. })),
            ("child_process", |e| {
                matches!(e, NameError::CoreModule { .. })
            }),
            ("fs/promises", |e| {
                matches!(e, NameError::SlashInUnscopedName { .. })
            }),
            (&too_long, |e| {
                matches!(e, NameError::TooLong { length: 215, .. })
            }),
            ("~a", |e| {
                matches!(e, NameError::SpecialCharacter { character: '~', .. })
            }),
            ("a!", |e| matches!(e, NameError::SpecialCharacter { .. })),
            ("a'b", |e| matches!(e, NameError::SpecialCharacter { .. })),
            ("(a)", |e| matches!(e, NameError::SpecialCharacter { .. })),
            ("a*", |e| matches!(e, NameError::SpecialCharacter { .. })),
            ("@sc~pe/a", |e| {
                matches!(e, NameError::SpecialCharacter { .. })
            }),
            ("ünicode", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("caf\u{e9}", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a@b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("@@/b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a:b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a+b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a?b", |e| matches!(e, NameError::NotUrlSafe { .. })),
            ("a#b", |e| matches!(e, NameError::NotUrlSafe { .. })),
        ];
        for (input, expected) in table {
            match PackageName::parse(input) {
                Ok(name) => panic!("`{}` should be refused, got {name:?}", input.escape_debug()),
                Err(err) => assert!(
                    expected(&err),
                    "`{}` refused with the wrong error: {err:?}",
                    input.escape_debug()
                ),
            }
        }
    }

    #[test]
    fn error_messages() {
        let message = |s: &str| PackageName::parse(s).unwrap_err().to_string();
        insta::assert_snapshot!(message("Foo"), @"package name `Foo` must be lower case");
        insta::assert_snapshot!(
            message("http"),
            @"package name `http` is the name of a Node.js core module; choose another name or publish it under a scope, as in `@scope/http`"
        );
        insta::assert_snapshot!(
            message("a b"),
            @"package name `a b` contains ` `, which is not URL-safe; use only lower-case letters, digits, `-`, `.` and `_`"
        );
        insta::assert_snapshot!(
            message("a\u{1b}[2kb"),
            @r"package name `a\u{1b}[2kb` contains `\u{1b}`, which is not URL-safe; use only lower-case letters, digits, `-`, `.` and `_`"
        );
        insta::assert_snapshot!(
            message("@scope/"),
            @"scoped package name `@scope/` must have the form `@scope/name`, with both parts non-empty"
        );
        insta::assert_snapshot!(
            message("a/b"),
            @"package name `a/b` contains `/` but does not start with `@`; only scoped names such as `@scope/name` contain a slash"
        );
    }

    #[test]
    fn escaped_and_tarball_filename() {
        let scoped = PackageName::parse("@scope/lib").unwrap();
        assert_eq!(scoped.escaped(), "@scope%2flib");
        assert_eq!(scoped.tarball_filename(&version("1.0.0")), "lib-1.0.0.tgz");
        let plain = PackageName::parse("demo-pkg").unwrap();
        assert_eq!(plain.escaped(), "demo-pkg");
        assert_eq!(
            plain.tarball_filename(&version("3.0.0-beta.1")),
            "demo-pkg-3.0.0-beta.1.tgz"
        );
    }

    #[test]
    fn serde_round_trip_validates() {
        let name: PackageName = serde_json::from_str(r#""@scope/lib""#).unwrap();
        assert_eq!(name.as_str(), "@scope/lib");
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""@scope/lib""#);
        let err = serde_json::from_str::<PackageName>(r#""Foo""#).unwrap_err();
        assert!(err.to_string().contains("must be lower case"), "{err}");
        assert_eq!("lodash".parse::<PackageName>().unwrap().as_str(), "lodash");
    }

    /// Undoes npm's escaping the way a server decodes a path segment.
    fn unescape(s: &str) -> String {
        s.replace("%2f", "/").replace("%2F", "/")
    }

    proptest! {
        #[test]
        fn never_accepts_traversal_or_escapes(s in r"[a-z@/._%\\\x00-\x1f\x7f-]{0,12}") {
            if let Ok(name) = PackageName::parse(&s) {
                let name = name.as_str();
                prop_assert!(!name.contains(".."));
                prop_assert!(!name.contains('\\'));
                prop_assert!(!name.contains('%'));
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(name != "." && !name.starts_with('.'));
                prop_assert!(name.split('/').all(|part| !part.starts_with('.')));
            }
        }

        #[test]
        fn never_accepts_arbitrary_dangerous_strings(s in any::<String>()) {
            if let Ok(name) = PackageName::parse(&s) {
                let name = name.as_str();
                prop_assert!(!name.contains(".."));
                prop_assert!(!name.contains('\\'));
                prop_assert!(!name.contains('%'));
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(name.is_ascii());
            }
        }

        #[test]
        fn escaped_round_trips(s in r"(@[a-z0-9][a-z0-9._-]{0,10}/)?[a-z0-9][a-z0-9._-]{0,20}") {
            if let Ok(name) = PackageName::parse(&s) {
                let escaped = name.escaped();
                prop_assert!(!escaped.contains('/'));
                prop_assert_eq!(PackageName::parse(&unescape(&escaped)), Ok(name.clone()));
                prop_assert_eq!(
                    PackageName::parse(&unescape(&escaped.replace("%2f", "%2F"))),
                    Ok(name)
                );
            }
        }
    }
}
