//! Registry signing keys: ECDSA P-256 keys whose signatures over `name@version:integrity` npm
//! checks in `npm audit signatures` (protocol §6), and the keyring that keeps retired keys
//! listed, with their expiry, so signatures made before a rotation stay verifiable.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};
use data_encoding::{BASE64, BASE64_NOPAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// npm's name for the key type and the signature scheme, in `/-/npm/v1/keys`.
pub const KEY_TYPE: &str = "ecdsa-sha2-nistp256";

/// The OpenSSH name of the curve, part of the key blob the keyid is a fingerprint of.
const SSH_CURVE: &str = "nistp256";

/// Every P-256 `SubjectPublicKeyInfo` in DER starts with these 26 bytes (SEQUENCE, the
/// id-ecPublicKey and prime256v1 OIDs, BIT STRING header), then the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Marks the keyring file's layout, so a later one can be told apart.
const KEYRING_FORMAT: &str = "airlock-registry-keyring-v1";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("could not generate a signing key")]
    Generate(#[source] aws_lc_rs::error::Unspecified),
    #[error("could not sign with the registry key")]
    Sign(#[source] aws_lc_rs::error::Unspecified),
    #[error("not an ECDSA P-256 public key (DER SubjectPublicKeyInfo)")]
    InvalidPublicKey,
    #[error("the private key of `{0}` is not a valid ECDSA P-256 PKCS#8 key")]
    InvalidPrivateKey(String),
    #[error("the signature is not base64")]
    SignatureEncoding,
    #[error("the signature does not verify with key `{0}`")]
    BadSignature(String),
    #[error("the keyring file is not valid JSON of the expected shape")]
    KeyringSyntax(#[source] serde_json::Error),
    #[error("the keyring file is not valid: {0}")]
    InvalidKeyring(String),
}

/// The message a registry signature covers, exactly as pacote rebuilds it:
/// `${name}@${version}:${dist.integrity}`.
#[must_use]
pub fn signature_message(name: &str, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

/// A key's id as npm lists it: `SHA256:` and the unpadded base64 SHA-256 of the key's OpenSSH
/// public key blob, i.e. what `ssh-keygen -l` prints. That is how npmjs derives its keyids
/// (checked against its published keys in the tests); npm itself only compares them as strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    fn of_point(point: &[u8]) -> Self {
        let mut blob = Vec::with_capacity(64 + point.len());
        for part in [KEY_TYPE.as_bytes(), SSH_CURVE.as_bytes(), point] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            blob.extend_from_slice(&len.to_be_bytes());
            blob.extend_from_slice(part);
        }
        Self(format!(
            "SHA256:{}",
            BASE64_NOPAD.encode(&Sha256::digest(&blob))
        ))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A P-256 public key: its DER `SubjectPublicKeyInfo` (what `/-/npm/v1/keys` serves in base64)
/// and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    keyid: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.keyid.0).finish()
    }
}

impl PublicKey {
    /// Accepts only an uncompressed P-256 key in DER `SubjectPublicKeyInfo` form, the only
    /// shape npm's `-----BEGIN PUBLIC KEY-----` wrapping turns into a usable key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SigningError> {
        let point = der
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .filter(|point| point.len() == 65 && point[0] == 0x04)
            .ok_or(SigningError::InvalidPublicKey)?;
        // Checks the point is on the curve.
        ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .map_err(|_| SigningError::InvalidPublicKey)?;
        Ok(Self {
            keyid: KeyId::of_point(point),
            spki_der: der.to_vec(),
        })
    }

    pub fn from_spki_base64(encoded: &str) -> Result<Self, SigningError> {
        let der = BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| SigningError::InvalidPublicKey)?;
        Self::from_spki_der(&der)
    }

    #[must_use]
    pub fn keyid(&self) -> &KeyId {
        &self.keyid
    }

    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The DER `SubjectPublicKeyInfo` in standard padded base64: the `key` of `/-/npm/v1/keys`.
    #[must_use]
    pub fn spki_base64(&self) -> String {
        BASE64.encode(&self.spki_der)
    }

    /// Checks a base64 DER ECDSA-SHA256 signature over `message`, as pacote does.
    pub fn verify(&self, message: &[u8], signature_base64: &str) -> Result<(), SigningError> {
        let signature = BASE64
            .decode(signature_base64.as_bytes())
            .map_err(|_| SigningError::SignatureEncoding)?;
        ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.spki_der)
            .map_err(|_| SigningError::InvalidPublicKey)?
            .verify_sig(message, &signature)
            .map_err(|_| SigningError::BadSignature(self.keyid.0.clone()))
    }
}

/// A private signing key. `Debug` shows only its id.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SigningKey")
            .field(&self.public.keyid.0)
            .finish()
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, SigningError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(SigningError::Generate)?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<Self, SigningError> {
        let spki: PublicKeyX509Der<'static> = pair
            .public_key()
            .as_der()
            .map_err(|_| SigningError::InvalidPublicKey)?;
        let public = PublicKey::from_spki_der(spki.as_ref())?;
        Ok(Self { pair, public })
    }

    fn from_pkcs8(der: &[u8], keyid: &str) -> Result<Self, SigningError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| SigningError::InvalidPrivateKey(keyid.to_owned()))?;
        Self::from_pair(pair)
    }

    fn pkcs8_base64(&self) -> Result<String, SigningError> {
        let document = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| SigningError::InvalidPrivateKey(self.public.keyid.0.clone()))?;
        Ok(BASE64.encode(document.as_ref()))
    }

    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    #[must_use]
    pub fn keyid(&self) -> &KeyId {
        &self.public.keyid
    }

    /// ECDSA P-256 over SHA-256 of `message`; the signature in DER, base64-encoded (the `sig`
    /// of a `dist.signatures` entry). The nonce is random, so two signatures of one message
    /// differ; both verify.
    pub fn sign(&self, message: &[u8]) -> Result<String, SigningError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(SigningError::Sign)?;
        Ok(BASE64.encode(signature.as_ref()))
    }
}

/// One listed key: the public half, when it was made, and when it stopped signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    pub public: PublicKey,
    pub created: OffsetDateTime,
    /// `None` for the current key. npm refuses a signature by this key on a version whose
    /// `time` is not before it.
    pub expires: Option<OffsetDateTime>,
}

/// The registry's keys: one current signing key and the retired ones, which stay listed (public
/// half only) so that signatures made while they were current keep verifying.
#[derive(Debug)]
pub struct Keyring {
    current: SigningKey,
    current_created: OffsetDateTime,
    /// Newest first.
    retired: Vec<ListedKey>,
}

/// npm compares `Date`s, which have millisecond precision; every instant here is cut to the
/// millisecond so what is written, listed and compared agree.
fn to_millis(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .unwrap_or(t)
}

impl Keyring {
    /// A keyring with one fresh key.
    pub fn generate(now: OffsetDateTime) -> Result<Self, SigningError> {
        Ok(Self {
            current: SigningKey::generate()?,
            current_created: to_millis(now),
            retired: Vec::new(),
        })
    }

    /// Makes a fresh key current. The old one stays listed with `expires = now`: npm keeps
    /// accepting its signatures on versions that went live before now, and no other.
    pub fn rotate(&mut self, now: OffsetDateTime) -> Result<(), SigningError> {
        let now = to_millis(now);
        let old = std::mem::replace(&mut self.current, SigningKey::generate()?);
        self.retired.insert(
            0,
            ListedKey {
                public: old.public.clone(),
                created: self.current_created,
                expires: Some(now),
            },
        );
        self.current_created = now;
        Ok(())
    }

    /// The key new signatures are made with.
    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.current
    }

    /// Every listed key, the current one first, then the retired ones, newest first.
    #[must_use]
    pub fn keys(&self) -> Vec<ListedKey> {
        let mut keys = Vec::with_capacity(1 + self.retired.len());
        keys.push(ListedKey {
            public: self.current.public.clone(),
            created: self.current_created,
            expires: None,
        });
        keys.extend(self.retired.iter().cloned());
        keys
    }

    /// Whether npm accepts a signature by `keyid` on a version that went live at `live_at`:
    /// the key is listed, and it has no expiry or expired strictly after that moment (pacote's
    /// rule, compared at millisecond precision like the rendered `time`).
    #[must_use]
    pub fn accepts(&self, keyid: &str, live_at: OffsetDateTime) -> bool {
        if self.current.public.keyid.0 == keyid {
            return true;
        }
        self.retired
            .iter()
            .find(|k| k.public.keyid.0 == keyid)
            .is_some_and(|k| k.expires.is_none_or(|e| to_millis(live_at) < e))
    }

    /// The keyring file: JSON with the current key's PKCS#8 private key. Retired keys keep only
    /// their public half: nothing needs them to sign again.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, SigningError> {
        let mut keys = vec![FileKey {
            keyid: self.current.public.keyid.0.clone(),
            public_key: self.current.public.spki_base64(),
            private_key: Some(self.current.pkcs8_base64()?),
            created: self.current_created,
            expires: None,
        }];
        keys.extend(self.retired.iter().map(|k| FileKey {
            keyid: k.public.keyid.0.clone(),
            public_key: k.public.spki_base64(),
            private_key: None,
            created: k.created,
            expires: k.expires,
        }));
        let file = KeyringFileContents {
            format: KEYRING_FORMAT.to_owned(),
            keys,
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(SigningError::KeyringSyntax)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Reads a keyring file, checking every key: the one current key (no expiry, with its
    /// private half), retired keys (an expiry, no private half), keyids that match their keys.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        let file: KeyringFileContents =
            serde_json::from_slice(bytes).map_err(SigningError::KeyringSyntax)?;
        if file.format != KEYRING_FORMAT {
            return Err(SigningError::InvalidKeyring(format!(
                "unknown format `{}` (expected `{KEYRING_FORMAT}`)",
                file.format
            )));
        }
        let mut current = None;
        let mut retired = Vec::new();
        for key in file.keys {
            let public = PublicKey::from_spki_base64(&key.public_key)?;
            if public.keyid.0 != key.keyid {
                return Err(SigningError::InvalidKeyring(format!(
                    "key `{}` is listed under another keyid ({})",
                    public.keyid, key.keyid
                )));
            }
            match (key.private_key, key.expires) {
                (Some(private), None) => {
                    let der = BASE64
                        .decode(private.as_bytes())
                        .map_err(|_| SigningError::InvalidPrivateKey(key.keyid.clone()))?;
                    let signing = SigningKey::from_pkcs8(&der, &key.keyid)?;
                    if signing.public != public {
                        return Err(SigningError::InvalidKeyring(format!(
                            "the private key of `{}` does not belong to its public key",
                            key.keyid
                        )));
                    }
                    if current.replace((signing, key.created)).is_some() {
                        return Err(SigningError::InvalidKeyring(
                            "more than one key has no expiry".into(),
                        ));
                    }
                }
                (None, Some(expires)) => retired.push(ListedKey {
                    public,
                    created: key.created,
                    expires: Some(expires),
                }),
                (Some(_), Some(_)) => {
                    return Err(SigningError::InvalidKeyring(format!(
                        "retired key `{}` still has its private key",
                        key.keyid
                    )));
                }
                (None, None) => {
                    return Err(SigningError::InvalidKeyring(format!(
                        "key `{}` has neither a private key nor an expiry",
                        key.keyid
                    )));
                }
            }
        }
        let (current, current_created) = current.ok_or_else(|| {
            SigningError::InvalidKeyring("no current key (one without an expiry)".into())
        })?;
        retired.sort_by_key(|k| std::cmp::Reverse(k.expires));
        Ok(Self {
            current,
            current_created,
            retired,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringFileContents {
    format: String,
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
struct FileKey {
    keyid: String,
    /// Base64 DER `SubjectPublicKeyInfo`.
    public_key: String,
    /// Base64 PKCS#8 v1: only the current key has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// npmjs's registry keys as published in its keys document (both still listed there; a
    /// copy is in `shared/sigstore/trust/npm-registry-keys.v1.json`).
    const NPM_KEYS: [(&str, &str); 2] = [
        (
            "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA",
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1Olb3zMAFFxXKHiIkQO5cJ3Yhl5i6UPp+IhuteBJbuHcA5UogKo0EWtlWwW6KSaKoTNEYL7JlCQiVnkhBktUgg==",
        ),
        (
            "SHA256:DhQ8wR5APBvFHLF/+Tc+AYvPOdTpcIDqOhxsBHRwC7U",
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEY6Ya7W++7aUPzvMTrezH6Ycx3c+HOKYCcNGybJZSCJq/fd7Qa8uuAKtdIkUQtQiEKERhAmE5lMMJhP8OkDOa2g==",
        ),
    ];

    #[test]
    fn keyids_are_derived_as_npmjs_derives_them() {
        for (keyid, key) in NPM_KEYS {
            let public = PublicKey::from_spki_base64(key).unwrap();
            assert_eq!(public.keyid().as_str(), keyid);
            assert_eq!(public.spki_base64(), key);
        }
    }

    #[test]
    fn keyid_shape_matches_npmjs() {
        let key = SigningKey::generate().unwrap();
        let keyid = key.keyid().as_str();
        let digest = keyid.strip_prefix("SHA256:").unwrap();
        assert_eq!(digest.len(), 43, "{keyid}");
        assert!(!digest.contains('='));
        assert_eq!(key.public_key().spki_der().len(), 91);
    }

    #[test]
    fn a_signature_verifies_and_a_changed_message_does_not() {
        let key = SigningKey::generate().unwrap();
        let message = signature_message("@scope/demo", "1.0.0", "sha512-abc==");
        assert_eq!(message, "@scope/demo@1.0.0:sha512-abc==");
        let sig = key.sign(message.as_bytes()).unwrap();
        key.public_key().verify(message.as_bytes(), &sig).unwrap();
        let tampered = signature_message("@scope/demo", "1.0.0", "sha512-abd==");
        assert!(matches!(
            key.public_key().verify(tampered.as_bytes(), &sig),
            Err(SigningError::BadSignature(_))
        ));
        let other = SigningKey::generate().unwrap();
        assert!(other.public_key().verify(message.as_bytes(), &sig).is_err());
        assert!(matches!(
            key.public_key().verify(message.as_bytes(), "not base64!"),
            Err(SigningError::SignatureEncoding)
        ));
    }

    #[test]
    fn only_p256_spki_keys_are_accepted() {
        let good = BASE64.decode(NPM_KEYS[0].1.as_bytes()).unwrap();
        let mut off_curve = good.clone();
        off_curve[40] ^= 1;
        for bad in [&good[..90], &good[1..], &off_curve[..], b"".as_slice()] {
            assert!(matches!(
                PublicKey::from_spki_der(bad),
                Err(SigningError::InvalidPublicKey)
            ));
        }
    }

    #[test]
    fn rotation_keeps_the_old_key_listed_until_now() {
        let created = datetime!(2026-01-01 00:00:00.123456 UTC);
        let rotated = datetime!(2026-02-01 12:00:00.5009 UTC);
        let mut ring = Keyring::generate(created).unwrap();
        let old = ring.signing_key().keyid().clone();
        ring.rotate(rotated).unwrap();
        let new = ring.signing_key().keyid().clone();
        assert_ne!(old, new);
        let keys = ring.keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].public.keyid(), &new);
        assert_eq!(keys[0].expires, None);
        assert_eq!(keys[1].public.keyid(), &old);
        assert_eq!(keys[1].created, datetime!(2026-01-01 00:00:00.123 UTC));
        assert_eq!(
            keys[1].expires,
            Some(datetime!(2026-02-01 12:00:00.500 UTC))
        );

        // pacote: a version's time must be strictly before the key's expiry.
        assert!(ring.accepts(old.as_str(), datetime!(2026-02-01 12:00:00.499 UTC)));
        assert!(!ring.accepts(old.as_str(), datetime!(2026-02-01 12:00:00.5001 UTC)));
        assert!(!ring.accepts(old.as_str(), datetime!(2026-03-01 00:00 UTC)));
        assert!(ring.accepts(new.as_str(), datetime!(2030-01-01 00:00 UTC)));
        assert!(!ring.accepts("SHA256:unknown", created));
    }

    #[test]
    fn the_keyring_file_round_trips_and_drops_retired_private_keys() {
        let mut ring = Keyring::generate(datetime!(2026-01-01 00:00 UTC)).unwrap();
        ring.rotate(datetime!(2026-02-01 00:00 UTC)).unwrap();
        ring.rotate(datetime!(2026-03-01 00:00 UTC)).unwrap();
        let bytes = ring.to_file_bytes().unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let keys = file["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys[0]["private_key"].is_string());
        assert!(keys[1].get("private_key").is_none());
        assert!(keys[2].get("private_key").is_none());

        let read = Keyring::from_file_bytes(&bytes).unwrap();
        assert_eq!(read.keys(), ring.keys());
        let message = b"demo@1.0.0:sha512-x";
        let sig = read.signing_key().sign(message).unwrap();
        ring.signing_key()
            .public_key()
            .verify(message, &sig)
            .unwrap();
    }

    #[test]
    fn a_broken_keyring_file_is_refused_with_a_reason() {
        let ring = Keyring::generate(datetime!(2026-01-01 00:00 UTC)).unwrap();
        let good: serde_json::Value =
            serde_json::from_slice(&ring.to_file_bytes().unwrap()).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            f(&mut v);
            Keyring::from_file_bytes(&serde_json::to_vec(&v).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            edit(&|v| v["keys"][0]["keyid"] = "SHA256:x".into()),
            format!(
                "the keyring file is not valid: key `{}` is listed under another keyid (SHA256:x)",
                ring.signing_key().keyid()
            )
        );
        assert_eq!(
            edit(&|v| {
                v["keys"][0].as_object_mut().unwrap().remove("private_key");
            }),
            format!(
                "the keyring file is not valid: key `{}` has neither a private key nor an expiry",
                ring.signing_key().keyid()
            )
        );
        assert_eq!(
            edit(&|v| v["keys"] = serde_json::json!([])),
            "the keyring file is not valid: no current key (one without an expiry)"
        );
        assert_eq!(
            edit(&|v| v["format"] = "v0".into()),
            "the keyring file is not valid: unknown format `v0` (expected `airlock-registry-keyring-v1`)"
        );
        assert!(Keyring::from_file_bytes(b"{").is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let ring = Keyring::generate(datetime!(2026-01-01 00:00 UTC)).unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains(ring.signing_key().keyid().as_str()));
        let pkcs8 = ring.signing_key().pkcs8_base64().unwrap();
        assert!(!debug.contains(&pkcs8[50..80]), "the private scalar");
    }
}
