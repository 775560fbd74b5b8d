use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every Airlock API token starts with this, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "airlock_";
/// 40 base62 characters carry 238 bits of randomness.
const BODY_LEN: usize = 40;
/// 6 base62 characters of checksum (over 35 bits): a typo or truncation is caught before any
/// database lookup, and scanners can tell real tokens from look-alikes offline.
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this is not an Airlock token: it should start with `{TOKEN_PREFIX}`")]
    Prefix,
    #[error("the token has the wrong length: was it copied whole?")]
    Length,
    #[error("the token's checksum does not match: was it copied whole?")]
    Checksum,
}

/// A bearer token. Its `Debug` and `Display` never show the secret.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// A fresh random token.
    #[must_use]
    pub fn generate() -> Self {
        let mut raw = [0u8; BODY_LEN];
        #[expect(
            clippy::expect_used,
            reason = "no CSPRNG means no safe way to continue"
        )]
        getrandom::fill(&mut raw).expect("the operating system CSPRNG failed");
        // 248 = 62 * 4: rejecting bytes >= 248 keeps every character equally likely.
        let mut body = String::with_capacity(BODY_LEN);
        let mut pool = raw.to_vec();
        while body.len() < BODY_LEN {
            for &b in &pool {
                if body.len() < BODY_LEN && b < 248 {
                    body.push(char::from(BASE62[usize::from(b % 62)]));
                }
            }
            pool = vec![0u8; BODY_LEN];
            #[expect(
                clippy::expect_used,
                reason = "no CSPRNG means no safe way to continue"
            )]
            getrandom::fill(&mut pool).expect("the operating system CSPRNG failed");
        }
        let checksum = checksum(&body);
        Self(format!("{TOKEN_PREFIX}{body}{checksum}"))
    }

    /// Checks the shape and checksum of a presented token. This proves nothing about whether
    /// the token was ever issued: only a lookup of its [`TokenHash`] does.
    pub fn parse(presented: &str) -> Result<Self, TokenError> {
        let rest = presented
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Prefix)?;
        if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| BASE62.contains(&b)) {
            return Err(TokenError::Length);
        }
        let (body, sum) = rest.split_at(BODY_LEN);
        if !bool::from(checksum(body).as_bytes().ct_eq(sum.as_bytes())) {
            return Err(TokenError::Checksum);
        }
        Ok(Self(presented.to_owned()))
    }

    /// The secret itself, to hand to its owner exactly once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored instead of the token.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// A short, harmless prefix for lists (`airlock_Ab12`), as npm shows `npm_ab…`.
    #[must_use]
    pub fn display_prefix(&self) -> String {
        self.0[..TOKEN_PREFIX.len() + 4].to_owned()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let mut n = u64::from_be_bytes([
        0, 0, 0, digest[0], digest[1], digest[2], digest[3], digest[4],
    ]);
    let mut out = [0u8; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SHA-256 of a token: the only form a token is stored in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time comparison, for checking a stored hash against a computed one.
    #[must_use]
    pub fn matches(&self, other: &TokenHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(
            a.expose().len(),
            TOKEN_PREFIX.len() + BODY_LEN + CHECKSUM_LEN
        );
        assert_eq!(ApiToken::parse(a.expose()).unwrap().hash(), a.hash());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = ApiToken::generate();
        let s = token.expose();
        assert_eq!(ApiToken::parse(&s[1..]).unwrap_err(), TokenError::Prefix);
        assert_eq!(
            ApiToken::parse(&s[..s.len() - 1]).unwrap_err(),
            TokenError::Length
        );
        let mut flipped = s.to_owned().into_bytes();
        let i = TOKEN_PREFIX.len() + 3;
        flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(ApiToken::parse(&flipped).unwrap_err(), TokenError::Checksum);
        assert_eq!(ApiToken::parse("npm_abc").unwrap_err(), TokenError::Prefix);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = ApiToken::generate();
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains(&token.expose()[TOKEN_PREFIX.len()..]));
    }
}
