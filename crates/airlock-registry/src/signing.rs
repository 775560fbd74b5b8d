//! Registry signatures (protocol §6): every version is signed when it goes live, over
//! `name@version:integrity`, with the current key of the keyring, and the signature is stored
//! with the version, so reads never sign. `GET /-/npm/v1/keys` lists the current key and every
//! retired one with its expiry, which is what keeps signatures made before a rotation valid.
//!
//! The keyring lives in a file in the data directory that `airlock keys rotate` may rewrite
//! while the server runs. The server notices with one `stat` before every use (signing, the
//! keys document), so the first signature after a rotation already uses the new key, without
//! a restart. Versions that went live before the registry had a key (older data directories)
//! are signed by [`Registry::sign_versions`] at startup; the same sweep runs again whenever
//! the keyring changed, which also re-signs the few versions a publish may have signed with
//! the old key in the instant the rotation was being written.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use airlock_store::{KeyringFile, KeyringStamp, VersionSignature, format_time};
use airlock_trust::{KEY_TYPE, Keyring, SigningKey, signature_message};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Registry;
use crate::error::Result;

/// Signatures stored per transaction by the sweep: keeps each write short so publishes are not
/// held up behind a large backfill.
const SIGN_BATCH: usize = 500;

enum KeySource {
    File(KeyringFile),
    /// Generated at start and never written: tests, and registries built without a data
    /// directory.
    Memory,
}

struct Loaded {
    stamp: Option<KeyringStamp>,
    keyring: Arc<Keyring>,
}

/// The registry's signing keys, re-read when their file changes.
pub struct SigningKeys {
    source: KeySource,
    loaded: RwLock<Loaded>,
    /// Bumped on every reload, so a sweep can tell the keyring changed since it last ran.
    generation: AtomicU64,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn parse(bytes: &[u8]) -> Result<Keyring> {
    Ok(Keyring::from_file_bytes(bytes)?)
}

impl SigningKeys {
    /// The keyring of a data directory, created with a first key if there is none yet.
    pub fn open(file: KeyringFile, now: OffsetDateTime) -> Result<Self> {
        let (keyring, stamp) = match file.read()? {
            Some((bytes, stamp)) => (parse(&bytes)?, stamp),
            None => {
                let lock = file.lock()?;
                // Someone (a concurrent `airlock keys rotate`) may have created it meanwhile.
                match lock.read()? {
                    Some((bytes, stamp)) => (parse(&bytes)?, stamp),
                    None => {
                        let keyring = Keyring::generate(now)?;
                        let stamp = lock.write(&keyring.to_file_bytes()?)?;
                        tracing::info!(
                            keyid = %keyring.signing_key().keyid(),
                            path = %file.path().display(),
                            "created the registry signing key"
                        );
                        (keyring, stamp)
                    }
                }
            }
        };
        Ok(Self {
            source: KeySource::File(file),
            loaded: RwLock::new(Loaded {
                stamp: Some(stamp),
                keyring: Arc::new(keyring),
            }),
            generation: AtomicU64::new(0),
        })
    }

    /// A key that exists only in memory.
    pub fn ephemeral(now: OffsetDateTime) -> Result<Self> {
        Ok(Self {
            source: KeySource::Memory,
            loaded: RwLock::new(Loaded {
                stamp: None,
                keyring: Arc::new(Keyring::generate(now)?),
            }),
            generation: AtomicU64::new(0),
        })
    }

    /// The keyring as it is now: re-read if its file changed since the last call (one `stat`
    /// otherwise). A keyring file that disappeared leaves the last one in use; the next start
    /// creates a new key and re-signs.
    pub fn keyring(&self) -> Result<Arc<Keyring>> {
        let KeySource::File(file) = &self.source else {
            return Ok(self.current());
        };
        let stamp = file.stamp()?;
        {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if stamp.is_none() || stamp == loaded.stamp {
                return Ok(loaded.keyring.clone());
            }
        }
        let Some((bytes, stamp)) = file.read()? else {
            return Ok(self.current());
        };
        let keyring = Arc::new(parse(&bytes)?);
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.stamp != Some(stamp) {
            tracing::info!(keyid = %keyring.signing_key().keyid(), "reloaded the registry signing keys");
            *loaded = Loaded {
                stamp: Some(stamp),
                keyring: keyring.clone(),
            };
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(loaded.keyring.clone())
    }

    fn current(&self) -> Arc<Keyring> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keyring
            .clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// Reads a data directory's keyring without creating one (`airlock keys list`).
pub fn read_keyring(file: &KeyringFile) -> Result<Option<Keyring>> {
    file.read()?.map(|(bytes, _)| parse(&bytes)).transpose()
}

/// `airlock keys rotate`: under the writer lock, makes a fresh key current and keeps the old
/// one listed with `expires = now` (or creates the first key). A running server picks the new
/// key up before its next signature.
pub fn rotate_keyring(file: &KeyringFile, now: OffsetDateTime) -> Result<Keyring> {
    let lock = file.lock()?;
    let keyring = match lock.read()? {
        Some((bytes, _)) => {
            let mut keyring = parse(&bytes)?;
            keyring.rotate(now)?;
            keyring
        }
        None => Keyring::generate(now)?,
    };
    lock.write(&keyring.to_file_bytes()?)?;
    Ok(keyring)
}

fn sign(key: &SigningKey, name: &str, version: &str, integrity: &str) -> Result<VersionSignature> {
    let message = signature_message(name, version, integrity);
    Ok(VersionSignature {
        keyid: key.keyid().to_string(),
        sig: key.sign(message.as_bytes())?,
    })
}

/// `/-/npm/v1/keys`: npm's shape and field order.
fn keys_document(keyring: &Keyring) -> Value {
    let keys: Vec<Value> = keyring
        .keys()
        .iter()
        .map(|key| {
            json!({
                "expires": key.expires.map(format_time),
                "keyid": key.public.keyid().as_str(),
                "keytype": KEY_TYPE,
                "scheme": KEY_TYPE,
                "key": key.public.spki_base64(),
            })
        })
        .collect();
    json!({ "keys": keys })
}

impl Registry {
    /// Signs with the keys in `keys` instead of a key that lives only in memory.
    #[must_use]
    pub fn with_signing_keys(mut self, keys: SigningKeys) -> Self {
        self.keys = Arc::new(keys);
        self.keys_swept = Arc::new(AtomicU64::new(0));
        self
    }

    /// `GET /-/npm/v1/keys`: the public keys npm checks `dist.signatures` with.
    pub fn public_keys(&self) -> Result<Value> {
        let keyring = self.keys.keyring()?;
        Ok(keys_document(&keyring))
    }

    /// The registry's signature of a version going live, with the current key.
    pub(crate) fn sign_version(
        &self,
        name: &str,
        version: &str,
        integrity: &str,
    ) -> Result<VersionSignature> {
        sign(self.keys.keyring()?.signing_key(), name, version, integrity)
    }

    /// Signs, with the current key, every live version that has no signature npm would
    /// accept: none (it went live before the registry had a key), one by a key the keyring
    /// no longer lists, or one by a key that expired before the version went live. Returns
    /// how many were signed.
    pub async fn sign_versions(&self) -> Result<usize> {
        let generation = self.keys.generation();
        let keyring = self.keys.keyring()?;
        let key = keyring.signing_key();
        let mut signed = Vec::new();
        for version in self
            .packages
            .versions_not_signed_by(key.keyid().as_str())
            .await?
        {
            let accepted = version
                .signature
                .as_ref()
                .is_some_and(|s| keyring.accepts(&s.keyid, version.published_at));
            if !accepted {
                let signature = sign(key, &version.package, &version.version, &version.integrity)?;
                signed.push((version, signature));
            }
        }
        for batch in signed.chunks(SIGN_BATCH) {
            self.packages.set_version_signatures(batch).await?;
        }
        let packages: BTreeSet<&str> = signed.iter().map(|(v, _)| v.package.as_str()).collect();
        for package in packages {
            self.cache.invalidate(package);
        }
        self.keys_swept.store(generation, Ordering::SeqCst);
        if !signed.is_empty() {
            tracing::info!(versions = signed.len(), keyid = %key.keyid(), "signed versions");
        }
        Ok(signed.len())
    }

    /// The background job's part: when the keyring file changed since the last sweep (a
    /// rotation), sweep again. One `stat` when nothing changed.
    pub async fn refresh_signatures(&self) -> Result<usize> {
        self.keys.keyring()?;
        if self.keys.generation() == self.keys_swept.load(Ordering::SeqCst) {
            return Ok(0);
        }
        self.sign_versions().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_trust::PublicKey;
    use time::macros::datetime;

    #[test]
    fn the_keys_document_has_npms_shape() {
        let mut keyring = Keyring::generate(datetime!(2026-01-01 00:00 UTC)).unwrap();
        let old = keyring.signing_key().public_key().clone();
        keyring
            .rotate(datetime!(2026-02-03 04:05:06.789 UTC))
            .unwrap();
        let doc = keys_document(&keyring);
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let fields: Vec<&str> = keys[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["expires", "keyid", "keytype", "scheme", "key"]);
        assert_eq!(keys[0]["expires"], Value::Null);
        assert_eq!(keys[0]["keytype"], "ecdsa-sha2-nistp256");
        assert_eq!(keys[0]["scheme"], "ecdsa-sha2-nistp256");
        assert_eq!(keys[1]["expires"], "2026-02-03T04:05:06.789Z");
        assert_eq!(keys[1]["keyid"], old.keyid().as_str());
        let listed = PublicKey::from_spki_base64(keys[1]["key"].as_str().unwrap()).unwrap();
        assert_eq!(listed, old);
    }

    #[test]
    fn a_rotation_by_another_process_is_seen_on_the_next_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::in_data_dir(dir.path());
        let now = datetime!(2026-01-01 00:00 UTC);
        let keys = SigningKeys::open(file.clone(), now).unwrap();
        let first = keys.keyring().unwrap().signing_key().keyid().clone();
        assert_eq!(keys.generation(), 0);
        // Opening again finds the same key.
        let again = SigningKeys::open(file.clone(), now).unwrap();
        assert_eq!(again.keyring().unwrap().signing_key().keyid(), &first);

        let rotated = rotate_keyring(&file, datetime!(2026-02-01 00:00 UTC)).unwrap();
        let current = keys.keyring().unwrap();
        assert_eq!(current.signing_key().keyid(), rotated.signing_key().keyid());
        assert_ne!(current.signing_key().keyid(), &first);
        assert_eq!(keys.generation(), 1);
        let listed: Vec<_> = current
            .keys()
            .iter()
            .map(|k| (k.public.keyid().clone(), k.expires))
            .collect();
        assert_eq!(listed[1], (first, Some(datetime!(2026-02-01 00:00 UTC))));
        // No change, no reload.
        keys.keyring().unwrap();
        assert_eq!(keys.generation(), 1);
        assert_eq!(read_keyring(&file).unwrap().unwrap().keys(), current.keys());
    }

    #[test]
    fn rotating_an_empty_data_dir_creates_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::in_data_dir(dir.path());
        assert!(read_keyring(&file).unwrap().is_none());
        let keyring = rotate_keyring(&file, datetime!(2026-01-01 00:00 UTC)).unwrap();
        assert_eq!(keyring.keys().len(), 1);
    }
}
