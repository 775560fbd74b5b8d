//! Tarball digests: npm's `dist.integrity` (a sha512 Subresource Integrity string) and
//! `dist.shasum` (sha1 hex).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::Sha1;
use sha2::{Digest as _, Sha512};
use thiserror::Error;

use crate::display::shown;

/// Standard base64 that accepts the digest with or without its `==` padding.
const SRI_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The digests of a tarball's bytes, computed by us; the values a packument serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarballDigests {
    /// SHA-512 of the `.tgz` bytes.
    pub sha512: [u8; 64],
    /// SHA-1 of the `.tgz` bytes.
    pub sha1: [u8; 20],
}

impl TarballDigests {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        TarballDigests {
            sha512: Sha512::digest(bytes).into(),
            sha1: Sha1::digest(bytes).into(),
        }
    }

    /// The `dist.integrity` value: `sha512-` followed by the standard base64 of the digest.
    pub fn integrity(&self) -> String {
        format!("sha512-{}", STANDARD.encode(self.sha512))
    }

    /// The `dist.shasum` value: the SHA-1 digest in lower-case hex.
    pub fn shasum(&self) -> String {
        hex::encode(self.sha1)
    }

    /// The SHA-512 digest in lower-case hex, as in-toto subjects (`digest.sha512`) carry it.
    pub fn sha512_hex(&self) -> String {
        hex::encode(self.sha512)
    }
}

/// Why a declared digest does not vouch for the uploaded tarball.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IntegrityError {
    /// The integrity string has no `sha512-` entry.
    #[error(
        "integrity `{declared}` has no `sha512-` hash; publish with npm 5 or later, which computes one"
    )]
    NoSha512 {
        /// The declared integrity (escaped for display).
        declared: String,
    },
    /// A `sha512-` entry is not the base64 of a 64-byte digest.
    #[error("integrity entry `{entry}` is not the base64 of a 64-byte sha512 digest")]
    MalformedSha512 {
        /// The malformed entry (escaped for display).
        entry: String,
    },
    /// A `sha512-` entry does not match the tarball.
    #[error(
        "integrity `{declared}` does not match the uploaded tarball, whose integrity is `{actual}`; the tarball changed after its integrity was computed, so pack and publish again"
    )]
    Mismatch {
        /// The declared integrity (escaped for display).
        declared: String,
        /// The tarball's actual integrity.
        actual: String,
    },
    /// The shasum is not 40 hex digits.
    #[error("shasum `{declared}` is not a 40-character hex sha1 digest")]
    MalformedShasum {
        /// The declared shasum (escaped for display).
        declared: String,
    },
    /// The shasum does not match the tarball.
    #[error(
        "shasum `{declared}` does not match the uploaded tarball, whose shasum is `{actual}`; the tarball changed after its shasum was computed, so pack and publish again"
    )]
    ShasumMismatch {
        /// The declared shasum (escaped for display).
        declared: String,
        /// The tarball's actual shasum.
        actual: String,
    },
}

/// Checks a declared Subresource Integrity string against the tarball's digests.
///
/// `declared` may hold several whitespace-separated `algorithm-base64` entries, each optionally
/// followed by `?options`, which are ignored. At least one entry must be `sha512` and every
/// `sha512` entry must match; entries of other algorithms (`sha1`, `sha256`, `md5`, ...) are
/// ignored, as npm ignores them when a stronger one is present.
pub fn check_integrity(declared: &str, digests: &TarballDigests) -> Result<(), IntegrityError> {
    let mut found = false;
    for entry in declared.split_ascii_whitespace() {
        let hash = entry.split_once('?').map_or(entry, |(hash, _options)| hash);
        let Some((algorithm, digest)) = hash.split_once('-') else {
            continue;
        };
        if !algorithm.eq_ignore_ascii_case("sha512") {
            continue;
        }
        found = true;
        let decoded = SRI_BASE64
            .decode(digest)
            .ok()
            .filter(|bytes| bytes.len() == 64)
            .ok_or_else(|| IntegrityError::MalformedSha512 {
                entry: shown(entry),
            })?;
        if decoded != digests.sha512 {
            return Err(IntegrityError::Mismatch {
                declared: shown(declared),
                actual: digests.integrity(),
            });
        }
    }
    if found {
        Ok(())
    } else {
        Err(IntegrityError::NoSha512 {
            declared: shown(declared),
        })
    }
}

/// Checks a declared sha1 hex digest (`dist.shasum`) against the tarball's digests; hex case
/// does not matter.
pub fn check_shasum(declared: &str, digests: &TarballDigests) -> Result<(), IntegrityError> {
    let mut decoded = [0u8; 20];
    hex::decode_to_slice(declared, &mut decoded).map_err(|_| IntegrityError::MalformedShasum {
        declared: shown(declared),
    })?;
    if decoded == digests.sha1 {
        Ok(())
    } else {
        Err(IntegrityError::ShasumMismatch {
            declared: shown(declared),
            actual: digests.shasum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the one a table row expects.
    type Expected = fn(&IntegrityError) -> bool;

    const DATA: &[u8] = b"hello world";
    /// `printf 'hello world' | openssl dgst -sha512 -binary | base64`
    const HELLO_SHA512: &str = "sha512-MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==";
    /// `printf 'hello world' | sha1sum`
    const HELLO_SHA1: &str = "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed";

    #[test]
    fn computes_npm_values() {
        let digests = TarballDigests::of(DATA);
        assert_eq!(digests.integrity(), HELLO_SHA512);
        assert_eq!(digests.shasum(), HELLO_SHA1);
        assert_eq!(
            digests.sha512_hex(),
            "309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f"
        );
    }

    #[test]
    fn accepts_matching_integrity() {
        let digests = TarballDigests::of(DATA);
        let unpadded = HELLO_SHA512.trim_end_matches('=');
        for declared in [
            HELLO_SHA512.to_owned(),
            unpadded.to_owned(),
            format!("  {HELLO_SHA512}  "),
            format!("{HELLO_SHA512}?foo=bar"),
            format!("sha1-Kq5sNclPz7QV2+lfQIuc6R7oRu0= {HELLO_SHA512}"),
            format!("sha256-AAAA {HELLO_SHA512}\tmd5-XrY7u+Ae7tCTyyK7j1rNww=="),
            format!("{HELLO_SHA512} {HELLO_SHA512}?x"),
            format!("SHA512-{}", &HELLO_SHA512[7..]),
            format!("bogus {HELLO_SHA512}"),
        ] {
            check_integrity(&declared, &digests).unwrap_or_else(|err| panic!("{declared}: {err}"));
        }
    }

    #[test]
    fn refuses_bad_integrity() {
        let digests = TarballDigests::of(DATA);
        let other = TarballDigests::of(b"other").integrity();
        let mismatch = format!("{HELLO_SHA512} {other}");
        let table: &[(&str, Expected)] = &[
            ("", |e| matches!(e, IntegrityError::NoSha512 { .. })),
            ("sha1-Kq5sNclPz7QV2+lfQIuc6R7oRu0=", |e| {
                matches!(e, IntegrityError::NoSha512 { .. })
            }),
            ("sha512-", |e| {
                matches!(e, IntegrityError::MalformedSha512 { .. })
            }),
            ("sha512-not*base64", |e| {
                matches!(e, IntegrityError::MalformedSha512 { .. })
            }),
            ("sha512-AAAA", |e| {
                matches!(e, IntegrityError::MalformedSha512 { .. })
            }),
            (&other, |e| matches!(e, IntegrityError::Mismatch { .. })),
            (&mismatch, |e| matches!(e, IntegrityError::Mismatch { .. })),
        ];
        for (declared, expected) in table {
            let err = check_integrity(declared, &digests).unwrap_err();
            assert!(expected(&err), "`{declared}` refused with {err:?}");
        }
    }

    #[test]
    fn mismatch_names_both_values() {
        let digests = TarballDigests::of(DATA);
        let zeros = format!("sha512-{}", STANDARD.encode([0u8; 64]));
        let err = check_integrity(&zeros, &digests).unwrap_err();
        insta::assert_snapshot!(
            err,
            @"integrity `sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==` does not match the uploaded tarball, whose integrity is `sha512-MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==`; the tarball changed after its integrity was computed, so pack and publish again"
        );
    }

    #[test]
    fn shasum_is_case_insensitive() {
        let digests = TarballDigests::of(DATA);
        check_shasum(HELLO_SHA1, &digests).unwrap();
        check_shasum(&HELLO_SHA1.to_uppercase(), &digests).unwrap();
        assert!(matches!(
            check_shasum(&TarballDigests::of(b"x").shasum(), &digests),
            Err(IntegrityError::ShasumMismatch { .. })
        ));
        for bad in [
            "",
            "abc",
            "zz",
            &format!("{HELLO_SHA1}00"),
            &format!(" {HELLO_SHA1}"),
        ] {
            assert!(
                matches!(
                    check_shasum(bad, &digests),
                    Err(IntegrityError::MalformedShasum { .. })
                ),
                "{bad}"
            );
        }
        insta::assert_snapshot!(
            check_shasum("0000000000000000000000000000000000000000", &digests).unwrap_err(),
            @"shasum `0000000000000000000000000000000000000000` does not match the uploaded tarball, whose shasum is `2aae6c35c94fcfb415dbe95f408b9ce91ee846ed`; the tarball changed after its shasum was computed, so pack and publish again"
        );
    }
}
