use std::path::Path;

use sigstore_verify::Verifier;
use sigstore_verify::trust_root::TrustedRoot;

use super::SigstoreError;

/// The Sigstore public-good (production) trusted root: the seed root shipped in sigstore-js
/// (`packages/tuf/seeds.json`), byte-identical to sigstore-python's. A snapshot; see
/// `testdata/sigstore/README.md` for its source.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &str = include_str!("roots/public-good.trusted_root.json");

/// The Sigstore staging trusted root, as embedded in sigstore-python.
pub const STAGING_TRUSTED_ROOT: &str = include_str!("roots/staging.trusted_root.json");

/// One trusted root, prepared for verification.
pub(crate) struct LoadedRoot {
    pub(crate) name: String,
    pub(crate) verifier: Verifier,
    /// Key ids (the SHA-256 of the log key) of the Rekor logs this root trusts.
    pub(crate) log_ids: Vec<Vec<u8>>,
}

/// The Sigstore instances a bundle may come from: each is a `trusted_root.json` (Fulcio CAs,
/// Rekor logs, CT logs, timestamp authorities). A bundle must verify entirely against one of
/// them; material is never mixed between roots.
pub struct TrustedRoots {
    roots: Vec<LoadedRoot>,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.roots.iter().map(|root| &root.name))
            .finish()
    }
}

impl TrustedRoots {
    /// Only the embedded Sigstore public-good root.
    pub fn public_good() -> Result<Self, SigstoreError> {
        Self::from_json("the embedded public-good root", PUBLIC_GOOD_TRUSTED_ROOT)
    }

    /// Only the embedded Sigstore staging root.
    pub fn staging() -> Result<Self, SigstoreError> {
        Self::from_json("the embedded staging root", STAGING_TRUSTED_ROOT)
    }

    /// Only the root in `json`; `name` says where it came from in error messages.
    pub fn from_json(name: &str, json: &str) -> Result<Self, SigstoreError> {
        Ok(Self {
            roots: vec![load(name, json)?],
        })
    }

    /// Only the root in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, SigstoreError> {
        let (name, json) = read(path)?;
        Self::from_json(&name, &json)
    }

    /// Adds another root (a private Sigstore deployment) from JSON.
    pub fn with_json(mut self, name: &str, json: &str) -> Result<Self, SigstoreError> {
        self.roots.push(load(name, json)?);
        Ok(self)
    }

    /// Adds another root (a private Sigstore deployment) from a `trusted_root.json` file.
    pub fn with_file(self, path: &Path) -> Result<Self, SigstoreError> {
        let (name, json) = read(path)?;
        self.with_json(&name, &json)
    }

    /// The names of the roots, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|root| root.name.as_str())
    }

    pub(crate) fn roots(&self) -> &[LoadedRoot] {
        &self.roots
    }
}

fn read(path: &Path) -> Result<(String, String), SigstoreError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(json) => Ok((name, json)),
        Err(source) => Err(SigstoreError::TrustedRootRead { name, source }),
    }
}

fn load(name: &str, json: &str) -> Result<LoadedRoot, SigstoreError> {
    let invalid = |source| SigstoreError::TrustedRootInvalid {
        name: name.to_owned(),
        source,
    };
    let root =
        TrustedRoot::from_json(json).map_err(|e| invalid(sigstore_verify::Error::TrustRoot(e)))?;
    let verifier = Verifier::new(&root).map_err(invalid)?;
    let log_ids = root
        .tlogs
        .iter()
        .map(|log| log.log_id.key_id.as_bytes().to_vec())
        .collect();
    Ok(LoadedRoot {
        name: name.to_owned(),
        verifier,
        log_ids,
    })
}
