//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 6 digits, 30-second
//! steps, which is what every authenticator app and npm's `enable-2fa` flow expect.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step (RFC 6238's default; authenticator apps assume it).
pub const TOTP_STEP_SECS: u64 = 30;
/// Accept the previous and next step too: clocks drift and people type slowly.
const ACCEPTED_DRIFT_STEPS: u64 = 1;
const DIGITS: u32 = 6;
/// 160-bit secrets, as RFC 4226 recommends for HMAC-SHA1.
const SECRET_LEN: usize = 20;

/// A TOTP shared secret. `Debug` never shows it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh random secret.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        #[expect(
            clippy::expect_used,
            reason = "no CSPRNG means no safe way to continue"
        )]
        getrandom::fill(&mut bytes).expect("the operating system CSPRNG failed");
        Self(bytes)
    }

    /// Base32 without padding, the form authenticator apps take.
    #[must_use]
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    pub fn from_base32(s: &str) -> Option<Self> {
        data_encoding::BASE32_NOPAD
            .decode(s.trim_end_matches('=').to_ascii_uppercase().as_bytes())
            .ok()
            .map(Self)
    }

    /// The `otpauth://` URI npm turns into a QR code (it shows the `secret` parameter too).
    #[must_use]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| url_escape(s);
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={TOTP_STEP_SECS}",
            enc(issuer),
            enc(account),
            self.to_base32(),
            enc(issuer)
        )
    }

    /// The code for one step.
    #[must_use]
    pub fn code_at_step(&self, step: u64) -> String {
        #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("any key length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!(
            "{:0width$}",
            binary % 10u32.pow(DIGITS),
            width = DIGITS as usize
        )
    }

    /// The step a code matches at `unix_secs`, if any. The caller must then make sure the step
    /// is newer than the last one accepted for this user, so a code works once.
    #[must_use]
    pub fn matching_step(&self, code: &str, unix_secs: u64) -> Option<u64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_secs / TOTP_STEP_SECS;
        let first = now.saturating_sub(ACCEPTED_DRIFT_STEPS);
        // Check every candidate, so timing does not tell which step matched.
        let mut found = None;
        for step in first..=now + ACCEPTED_DRIFT_STEPS {
            let candidate = self.code_at_step(step);
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                candidate.as_bytes(),
                code.as_bytes(),
            )) {
                found = found.or(Some(step));
            }
        }
        found
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit values; we compare their last 6 digits).
    #[test]
    fn rfc_6238_vectors() {
        let secret = TotpSecret(b"12345678901234567890".to_vec());
        for (time, expected8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(
                secret.code_at_step(time / TOTP_STEP_SECS),
                expected8[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn drift_window_and_garbage() {
        let secret = TotpSecret::generate();
        let t = 1_800_000_000;
        let step = t / TOTP_STEP_SECS;
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step), t),
            Some(step)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step - 1), t),
            Some(step - 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step + 1), t),
            Some(step + 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step - 3), t),
            None
        );
        assert_eq!(secret.matching_step("12345", t), None);
        assert_eq!(secret.matching_step("abcdef", t), None);
    }

    #[test]
    fn base32_round_trip_and_uri() {
        let secret = TotpSecret::generate();
        let back = TotpSecret::from_base32(&secret.to_base32()).unwrap();
        assert_eq!(back.code_at_step(42), secret.code_at_step(42));
        let uri = secret.otpauth_uri("Airlock", "alice");
        assert!(uri.starts_with("otpauth://totp/Airlock:alice?secret="));
        assert!(!format!("{secret:?}").contains(&secret.to_base32()));
    }
}
