//! Versions: strict semver 2.0, in the normalised form the npm CLI publishes.

use thiserror::Error;

use crate::display::shown;

/// The longest version string npm's `semver` accepts (its `MAX_LENGTH`).
pub const MAX_VERSION_LENGTH: usize = 256;

/// The largest major, minor or patch number npm's `semver` accepts (JavaScript's
/// `Number.MAX_SAFE_INTEGER`); a larger one would make the version unreadable to npm clients.
pub const MAX_VERSION_COMPONENT: u64 = (1 << 53) - 1;

/// Why a string is not a version npm could have published.
#[derive(Debug, Error)]
#[error("`{version}` is not a valid semver version: {}", .kind.hint())]
pub struct VersionError {
    version: String,
    kind: VersionErrorKind,
    #[source]
    source: Option<semver::Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionErrorKind {
    TooLong,
    LeadingPrefix(char),
    Syntax,
    BuildMetadata,
    ComponentTooLarge,
}

impl VersionErrorKind {
    fn hint(self) -> String {
        match self {
            VersionErrorKind::TooLong => {
                format!("it is longer than {MAX_VERSION_LENGTH} characters")
            }
            VersionErrorKind::LeadingPrefix(c) => format!("remove the leading `{c}`"),
            VersionErrorKind::Syntax => {
                "use MAJOR.MINOR.PATCH with an optional `-prerelease`, such as `1.2.3` or `2.0.0-beta.1`"
                    .to_owned()
            }
            VersionErrorKind::BuildMetadata => {
                "remove the `+build` metadata, which npm drops when it publishes".to_owned()
            }
            VersionErrorKind::ComponentTooLarge => {
                format!("major, minor and patch must not exceed {MAX_VERSION_COMPONENT}")
            }
        }
    }
}

impl VersionError {
    fn new(version: &str, kind: VersionErrorKind) -> Self {
        VersionError {
            version: shown(version),
            kind,
            source: None,
        }
    }

    /// The refused version string (escaped for display, possibly cut).
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Parses a version as the npm CLI publishes it: strict semver 2.0 after npm's normalisation, so
/// no leading `v` or `=`, no surrounding whitespace, no leading zeros, at most
/// [`MAX_VERSION_LENGTH`] characters and major, minor and patch no larger than
/// [`MAX_VERSION_COMPONENT`].
///
/// Build metadata (`1.0.0+build`) is refused: npm strips it before publishing (`semver.clean`),
/// and accepting it would let `1.0.0+a` and `1.0.0+b` exist side by side although npm treats
/// them as the same version.
pub fn parse_version(s: &str) -> Result<semver::Version, VersionError> {
    if s.len() > MAX_VERSION_LENGTH {
        return Err(VersionError::new(s, VersionErrorKind::TooLong));
    }
    if let Some(c) = s.chars().next().filter(|c| matches!(c, 'v' | 'V' | '=')) {
        return Err(VersionError::new(s, VersionErrorKind::LeadingPrefix(c)));
    }
    let version = semver::Version::parse(s).map_err(|source| VersionError {
        source: Some(source),
        ..VersionError::new(s, VersionErrorKind::Syntax)
    })?;
    if !version.build.is_empty() {
        return Err(VersionError::new(s, VersionErrorKind::BuildMetadata));
    }
    if [version.major, version.minor, version.patch]
        .iter()
        .any(|&n| n > MAX_VERSION_COMPONENT)
    {
        return Err(VersionError::new(s, VersionErrorKind::ComponentTooLarge));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn accepts_strict_semver() {
        for s in [
            "0.0.0",
            "1.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x.7.z.92",
            "1.0.0-x-y-z.--",
            "3.0.0-beta.1",
            "9007199254740991.0.0",
        ] {
            let version = parse_version(s).unwrap_or_else(|err| panic!("{s}: {err}"));
            assert_eq!(version.to_string(), s);
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LENGTH));
        for s in [
            "",
            "1",
            "1.2",
            "x.y",
            "1.2.3.4",
            "v1.2.3",
            "V1.2.3",
            "=1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-01",
            "1.2.3-",
            "1.2.3-beta..1",
            "1.2.3+build",
            "1.2.3-rc.1+build.5",
            "1.2.3-ü",
            "^1.2.3",
            "1.x",
            "latest",
            "9007199254740992.0.0",
            "1.9007199254740992.0",
            "18446744073709551616.0.0",
            long.as_str(),
        ] {
            assert!(parse_version(s).is_err(), "`{s}` should be refused");
        }
    }

    #[test]
    fn error_messages() {
        let message = |s: &str| parse_version(s).unwrap_err().to_string();
        insta::assert_snapshot!(
            message("x.y"),
            @"`x.y` is not a valid semver version: use MAJOR.MINOR.PATCH with an optional `-prerelease`, such as `1.2.3` or `2.0.0-beta.1`"
        );
        insta::assert_snapshot!(
            message("v1.0.0"),
            @"`v1.0.0` is not a valid semver version: remove the leading `v`"
        );
        insta::assert_snapshot!(
            message("1.0.0+build.1"),
            @"`1.0.0+build.1` is not a valid semver version: remove the `+build` metadata, which npm drops when it publishes"
        );
    }

    #[test]
    fn syntax_errors_keep_their_cause() {
        let err = parse_version("1.2").unwrap_err();
        assert_eq!(err.version(), "1.2");
        assert!(err.source().is_some());
        assert!(parse_version("v1.2.3").unwrap_err().source().is_none());
    }
}
