//! The SHA-512 digest that names a staged tarball.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The SHA-512 of a release's `.tgz` bytes: what was staged, what the approvers approved and,
/// checked again at promotion, what goes live. Shown and serialized as 128 lowercase hex digits,
/// the form the blob store keys tarballs by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TarballSha512([u8; 64]);

/// Why a string is not a tarball SHA-512.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The string is not 128 characters long.
    #[error("a tarball sha512 is 128 lowercase hex digits, got {length} characters")]
    Length {
        /// Its length in characters.
        length: usize,
    },
    /// The string contains something other than `0-9a-f`.
    #[error("a tarball sha512 is 128 lowercase hex digits, got `{}`", .character.escape_debug())]
    NotHex {
        /// The first character that is not a lowercase hex digit.
        character: char,
    },
}

impl TarballSha512 {
    /// The digest with these bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> TarballSha512 {
        TarballSha512(bytes)
    }

    /// Parses 128 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<TarballSha512, DigestError> {
        if let Some(character) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(DigestError::NotHex { character });
        }
        if hex.len() != 128 {
            return Err(DigestError::Length {
                length: hex.chars().count(),
            });
        }
        let mut bytes = [0u8; 64];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (nibble(pair[0]) << 4) | nibble(pair[1]);
        }
        Ok(TarballSha512(bytes))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The digest as 128 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(128);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }
}

/// The value of a character already known to be `0-9a-f`.
fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

impl fmt::Display for TarballSha512 {
    /// The hex digits; a precision cuts them (`{:.16}` for a short form in messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.to_hex())
    }
}

impl fmt::Debug for TarballSha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TarballSha512({})", self.to_hex())
    }
}

impl FromStr for TarballSha512 {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<TarballSha512, DigestError> {
        TarballSha512::from_hex(s)
    }
}

impl Serialize for TarballSha512 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TarballSha512 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TarballSha512, D::Error> {
        let hex = String::deserialize(deserializer)?;
        TarballSha512::from_hex(&hex).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let mut bytes = [0u8; 64];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::try_from(index * 4).unwrap();
        }
        let digest = TarballSha512::from_bytes(bytes);
        let hex = digest.to_hex();
        assert_eq!(hex.len(), 128);
        assert!(hex.starts_with("0004080c10"));
        assert_eq!(TarballSha512::from_hex(&hex), Ok(digest));
        assert_eq!(format!("{digest:.10}"), "0004080c10");
    }

    #[test]
    fn refuses_what_is_not_128_lowercase_hex() {
        assert_eq!(
            TarballSha512::from_hex("abc").unwrap_err().to_string(),
            "a tarball sha512 is 128 lowercase hex digits, got 3 characters"
        );
        assert_eq!(
            TarballSha512::from_hex(&"A".repeat(128)).unwrap_err(),
            DigestError::NotHex { character: 'A' }
        );
        assert_eq!(
            TarballSha512::from_hex("ab\n").unwrap_err().to_string(),
            "a tarball sha512 is 128 lowercase hex digits, got `\\n`"
        );
    }

    #[test]
    fn serializes_as_a_hex_string() {
        let digest = TarballSha512::from_bytes([0xab; 64]);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(64)));
        assert_eq!(
            serde_json::from_str::<TarballSha512>(&json).unwrap(),
            digest
        );
        assert!(serde_json::from_str::<TarballSha512>("\"00\"").is_err());
    }
}
