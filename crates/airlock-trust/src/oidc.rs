//! OpenID Connect ID tokens from CI providers: signature and registered-claim checks.
//!
//! No network here: the caller fetches the issuer's JWKS (and decides which issuers it trusts)
//! and hands it in. Only asymmetric algorithms are accepted, and the key must be of the family
//! the token's header names, so an HMAC token "signed" with a public key (key confusion) or an
//! unsigned `alg: none` token never verifies.

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Asymmetric algorithms an ID token may be signed with.
const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why an ID token was not accepted. Messages say what was wrong; none repeats the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("the ID token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error(
        "the ID token is signed with `{0}`; only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are accepted"
    )]
    UnsupportedAlgorithm(String),
    #[error("the ID token names no key id (`kid`) in its header")]
    MissingKeyId,
    #[error("the issuer publishes no key with id `{0}`")]
    UnknownKey(String),
    #[error("the issuer's key `{kid}` is not a key for `{alg}`")]
    KeyAlgorithmMismatch { kid: String, alg: String },
    #[error("the ID token's signature does not verify against the issuer's key `{0}`")]
    BadSignature(String),
    #[error("the ID token was issued by `{actual}`, expected `{expected}`")]
    WrongIssuer { expected: String, actual: String },
    #[error("the ID token's audience is {actual}; this registry needs `{expected}`")]
    WrongAudience { expected: String, actual: String },
    #[error("the ID token expired {0} seconds ago: request a fresh one")]
    Expired(i64),
    #[error("the ID token is not valid yet (nbf is {0} seconds ahead)")]
    NotYetValid(i64),
    #[error("the ID token was issued {0} seconds in the future")]
    IssuedInFuture(i64),
    #[error("the ID token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the issuer's key set is not valid JWKS JSON: {0}")]
    BadKeySet(String),
}

/// An issuer's JSON Web Key Set, parsed. Keys of types we cannot use are left out rather than
/// failing the whole set.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    pub fn parse(json: &[u8]) -> Result<Jwks, OidcError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<Value>,
        }
        let raw: Raw =
            serde_json::from_slice(json).map_err(|e| OidcError::BadKeySet(e.to_string()))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .collect();
        Ok(Jwks { keys })
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.find(kid).is_some()
    }

    fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What can be read from a token before its signature is checked: enough to pick the issuer
/// and key set. Nothing here may be trusted.
#[derive(Clone, Debug)]
pub struct UnverifiedIdToken {
    pub issuer: String,
    pub key_id: String,
}

impl UnverifiedIdToken {
    pub fn peek(token: &str) -> Result<UnverifiedIdToken, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("variant") {
                OidcError::UnsupportedAlgorithm(header_alg(token).unwrap_or(text))
            } else {
                OidcError::Malformed(text)
            }
        })?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let key_id = header.kid.ok_or(OidcError::MissingKeyId)?;
        let claims = payload(token)?;
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(OidcError::MissingClaim("iss"))?
            .to_owned();
        Ok(UnverifiedIdToken { issuer, key_id })
    }
}

/// What the registry expects of a token.
#[derive(Clone, Debug)]
pub struct IdTokenExpectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Allowed clock difference, in seconds, for `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

/// An ID token whose signature, issuer, audience and validity window were checked. Only
/// [`verify_id_token`] makes one.
#[derive(Clone, Debug)]
pub struct VerifiedIdToken {
    issuer: String,
    expires_at: i64,
    jti: Option<String>,
    claims: Map<String, Value>,
}

impl VerifiedIdToken {
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `exp`, unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The token's unique id, which makes it single-use.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// A string claim.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A claim that may be a JSON string or a number (GitHub sends ids as strings).
    pub fn claim_text(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// Verifies `token` against the issuer's keys and the registry's expectations.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expect: &IdTokenExpectations<'_>,
) -> Result<VerifiedIdToken, OidcError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        OidcError::UnsupportedAlgorithm(header_alg(token).unwrap_or_else(|| e.to_string()))
    })?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg) {
        return Err(OidcError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(OidcError::MissingKeyId)?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| OidcError::UnknownKey(kid.clone()))?;
    let mismatch = || OidcError::KeyAlgorithmMismatch {
        kid: kid.clone(),
        alg: format!("{:?}", header.alg),
    };
    if let Some(declared) = jwk.common.key_algorithm
        && !same_algorithm(declared, header.alg)
    {
        return Err(mismatch());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| mismatch())?;
    if key.family() != header.alg.family() {
        return Err(mismatch());
    }

    // The library checks the signature only; every claim is checked below against our clock.
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|_| OidcError::BadSignature(kid.clone()))?;
    check_claims(data.claims, expect)
}

fn check_claims(
    claims: Map<String, Value>,
    expect: &IdTokenExpectations<'_>,
) -> Result<VerifiedIdToken, OidcError> {
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(OidcError::MissingClaim("iss"))?;
    if issuer != expect.issuer {
        return Err(OidcError::WrongIssuer {
            expected: expect.issuer.to_owned(),
            actual: issuer.to_owned(),
        });
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(OidcError::MissingClaim("aud")),
    };
    if !audiences.contains(&expect.audience) {
        return Err(OidcError::WrongAudience {
            expected: expect.audience.to_owned(),
            actual: audiences
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let number = |name: &'static str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or(OidcError::MissingClaim("exp"))?;
    if expect.now > exp + expect.leeway {
        return Err(OidcError::Expired(expect.now - exp));
    }
    if let Some(nbf) = number("nbf")
        && nbf > expect.now + expect.leeway
    {
        return Err(OidcError::NotYetValid(nbf - expect.now));
    }
    let iat = number("iat").ok_or(OidcError::MissingClaim("iat"))?;
    if iat > expect.now + expect.leeway {
        return Err(OidcError::IssuedInFuture(iat - expect.now));
    }
    let jti = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
    Ok(VerifiedIdToken {
        issuer: issuer.to_owned(),
        expires_at: exp,
        jti,
        claims,
    })
}

fn same_algorithm(declared: KeyAlgorithm, used: Algorithm) -> bool {
    format!("{declared:?}") == format!("{used:?}")
}

/// The payload, decoded without any check (only to find the issuer).
fn payload(token: &str) -> Result<Map<String, Value>, OidcError> {
    use base64::Engine;
    let part = token
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::Malformed("it has no payload segment".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| OidcError::Malformed("the payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Malformed("the payload is not a JSON object".into()))
}

/// The raw `alg` of a header the library refused to parse (e.g. `none`), for the message.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let part = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    // A P-256 test key pair (generated with openssl for these tests only).
    /// PKCS#8 DER (base64) of the private key.
    const EC_PRIVATE_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcN7sZraAOuiFjZkGxG1uNQ/+cWIuZo/HZOBBQvXV7lOhRANCAARK+TqFMb37BVige5yeP4k/kQW6YQW/g9Q0VLaAf1aV3SSHcSlgOUxjCruq1E2wHQ7SZZYLJk9NriMdvNvDZmFg";
    const EC_X: &str = "Svk6hTG9-wVYoHucnj-JP5EFumEFv4PUNFS2gH9Wld0";
    const EC_Y: &str = "JIdxKWA5TGMKu6rUTbAdDtJllgsmT02uIx2828NmYWA";

    const NOW: i64 = 1_800_000_000;

    fn jwks() -> Jwks {
        Jwks::parse(
            json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": EC_X, "y": EC_Y},
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://issuer.test", "aud": "npm:registry.test", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300, "jti": "j-1", "repository": "alice/demo"})
    }

    fn sign(claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(EC_PRIVATE_PKCS8)
            .unwrap();
        let key = EncodingKey::from_ec_der(&der);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn expect() -> IdTokenExpectations<'static> {
        IdTokenExpectations {
            issuer: "https://issuer.test",
            audience: "npm:registry.test",
            now: NOW,
            leeway: 30,
        }
    }

    fn b64(v: &Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_good_token_verifies_and_exposes_its_claims() {
        let token = sign(&claims(), "k1");
        let peeked = UnverifiedIdToken::peek(&token).unwrap();
        assert_eq!(peeked.issuer, "https://issuer.test");
        assert_eq!(peeked.key_id, "k1");
        let verified = verify_id_token(&token, &jwks(), &expect()).unwrap();
        assert_eq!(verified.claim("repository"), Some("alice/demo"));
        assert_eq!(verified.jti(), Some("j-1"));
        assert_eq!(verified.expires_at(), NOW + 300);
        assert!(jwks().contains("k1") && !jwks().contains("k9"));
    }

    #[test]
    fn registered_claims_are_enforced() {
        let mut c = claims();
        c["exp"] = json!(NOW - 31);
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::Expired(31));

        let mut c = claims();
        c["aud"] = json!(["npm:other.test", "sigstore"]);
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert!(matches!(e, OidcError::WrongAudience { .. }), "{e}");
        assert!(e.to_string().contains("`npm:other.test`"), "{e}");

        let mut c = claims();
        c["iss"] = json!("https://evil.test");
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert!(matches!(e, OidcError::WrongIssuer { .. }));

        let mut c = claims();
        c["nbf"] = json!(NOW + 120);
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::NotYetValid(120));

        let mut c = claims();
        c["iat"] = json!(NOW + 120);
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::IssuedInFuture(120));

        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        let e = verify_id_token(&sign(&c, "k1"), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::MissingClaim("exp"));
    }

    #[test]
    fn unknown_keys_and_tampering_are_refused() {
        let e = verify_id_token(&sign(&claims(), "k2"), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::UnknownKey("k2".into()));

        let token = sign(&claims(), "k1");
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged["repository"] = json!("mallory/demo");
        let forged_payload = b64(&forged);
        parts[1] = &forged_payload;
        let e = verify_id_token(&parts.join("."), &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::BadSignature("k1".into()));
    }

    #[test]
    fn symmetric_and_unsigned_tokens_are_refused() {
        // HS256 keyed with the public key's bytes: the classic key-confusion forgery.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(EC_X.as_bytes()),
        )
        .unwrap();
        let e = verify_id_token(&token, &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::UnsupportedAlgorithm("HS256".into()));
        assert!(UnverifiedIdToken::peek(&token).is_err());

        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&claims())
        );
        let e = verify_id_token(&none, &jwks(), &expect()).unwrap_err();
        assert_eq!(e, OidcError::UnsupportedAlgorithm("none".into()));
    }

    #[test]
    fn a_key_declared_for_another_algorithm_is_not_used() {
        let set = Jwks::parse(
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES384", "x": EC_X, "y": EC_Y}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let e = verify_id_token(&sign(&claims(), "k1"), &set, &expect()).unwrap_err();
        assert!(matches!(e, OidcError::KeyAlgorithmMismatch { .. }));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            UnverifiedIdToken::peek("not a jwt"),
            Err(OidcError::Malformed(_) | OidcError::UnsupportedAlgorithm(_))
        ));
        assert!(Jwks::parse(b"{}").is_err());
    }
}
