//! Rendered packuments, kept in memory so hot reads never touch the database. Every write goes
//! through the registry, which invalidates the package's entries after it commits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::packument::Representation;

/// One serialized document with its validators, and its gzip form made once on first use.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    /// A strong ETag, different for every representation and every change.
    pub etag: String,
    /// The ETag of the gzip-encoded form (a strong validator differs per encoding).
    pub gzip_etag: String,
    pub last_modified: OffsetDateTime,
    gzip: OnceLock<Bytes>,
}

/// Level 6: within a few percent of level 9's size for JSON at a fraction of the time; the
/// result is cached, so it is paid once per package revision.
const GZIP_LEVEL: u32 = 6;

impl Rendered {
    pub(crate) fn new(body: Vec<u8>, last_modified: OffsetDateTime) -> Self {
        let digest = hex::encode(Sha256::digest(&body));
        Self {
            etag: format!("\"{}\"", &digest[..40]),
            gzip_etag: format!("\"{}-gz\"", &digest[..40]),
            body: body.into(),
            last_modified,
            gzip: OnceLock::new(),
        }
    }

    /// The body gzip-encoded, compressed on the first call and kept.
    pub fn gzipped(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.body.len() / 4),
                flate2::Compression::new(GZIP_LEVEL),
            );
            // Writing to a Vec cannot fail.
            let _ = std::io::Write::write_all(&mut encoder, &self.body);
            encoder.finish().map(Bytes::from).unwrap_or_default()
        })
    }
}

/// What a read needs to know about a package, and its documents once rendered.
pub(crate) struct CachedPackage {
    pub restricted: bool,
    pub maintainer_ids: Vec<i64>,
    /// Live versions: version -> (sha512 hex, size).
    pub tarballs: HashMap<String, (String, u64)>,
    /// What the documents are rendered from, on first request: a tarball download never pays
    /// for rendering a multi-megabyte packument.
    pub source: Box<dyn Fn(Representation) -> Rendered + Send + Sync>,
    pub full: OnceLock<Rendered>,
    pub abbreviated: OnceLock<Rendered>,
}

impl std::fmt::Debug for CachedPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedPackage")
            .field("restricted", &self.restricted)
            .finish_non_exhaustive()
    }
}

impl CachedPackage {
    pub(crate) fn document(&self, representation: Representation) -> &Rendered {
        let slot = match representation {
            Representation::Full => &self.full,
            Representation::Abbreviated => &self.abbreviated,
        };
        slot.get_or_init(|| (self.source)(representation))
    }
}

#[derive(Default)]
pub(crate) struct PackumentCache {
    /// (base URL, package name) -> entry. The base URL is part of the key because tarball URLs
    /// are absolute and follow the host the client used when no public URL is configured.
    entries: RwLock<HashMap<(String, String), Arc<CachedPackage>>>,
    /// Bumped by every invalidation; a reader that started before a write must not insert what
    /// it read.
    generation: AtomicU64,
}

impl PackumentCache {
    pub(crate) fn get(&self, base_url: &str, name: &str) -> Option<Arc<CachedPackage>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&(base_url.to_owned(), name.to_owned()))
            .cloned()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Inserts unless a write happened since `generation` was read.
    pub(crate) fn insert(
        &self,
        generation: u64,
        base_url: &str,
        name: &str,
        entry: Arc<CachedPackage>,
    ) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::SeqCst) == generation {
            entries.insert((base_url.to_owned(), name.to_owned()), entry);
        }
    }

    pub(crate) fn invalidate(&self, name: &str) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|(_, n), _| n != name);
    }
}
