//! What hot reads need, kept in memory so they never touch the database: per package, who may
//! read it and each live version's tarball digest, and the packument documents once rendered.
//! Every write goes through the registry, which invalidates the package's entries after it
//! commits. The cache is bounded by bytes: past the budget, the least recently used packages
//! are dropped (and loaded again from the store on their next read).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use airlock_store::PackageState;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::packument::Representation;

/// One serialized document with its validators and its gzip form.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    /// A strong ETag, different for every representation and every change.
    pub etag: String,
    /// The ETag of the gzip-encoded form (a strong validator differs per encoding).
    pub gzip_etag: String,
    pub last_modified: OffsetDateTime,
    gzip: Bytes,
}

/// Level 6: within a few percent of level 9's size for JSON at a fraction of the time; the
/// result is cached, so it is paid once per package revision.
const GZIP_LEVEL: u32 = 6;

impl Rendered {
    /// Compresses the body right away: npm always asks for gzip, and a document whose size is
    /// known when it enters the cache can be accounted for.
    pub(crate) fn new(body: Vec<u8>, last_modified: OffsetDateTime) -> Self {
        let digest = hex::encode(Sha256::digest(&body));
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::new(GZIP_LEVEL),
        );
        // Writing to a Vec cannot fail.
        let _ = std::io::Write::write_all(&mut encoder, &body);
        let gzip = encoder.finish().map(Bytes::from).unwrap_or_default();
        Self {
            etag: format!("\"{}\"", &digest[..40]),
            gzip_etag: format!("\"{}-gz\"", &digest[..40]),
            body: body.into(),
            last_modified,
            gzip,
        }
    }

    /// The body gzip-encoded.
    #[must_use]
    pub fn gzipped(&self) -> &Bytes {
        &self.gzip
    }

    /// Memory held, for the cache's budget.
    fn footprint(&self) -> usize {
        self.body.len() + self.gzip.len() + self.etag.len() + self.gzip_etag.len() + 128
    }
}

/// Where a live version's tarball is: its SHA-512 and size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TarballRef {
    pub sha512: [u8; 64],
    pub size: u64,
}

/// What a read needs to know about a package at one revision, and its documents once
/// rendered. It keeps no copy of the package state: a document not rendered yet is rendered
/// from the store when first asked for.
pub(crate) struct CachedPackage {
    pub rev: i64,
    pub restricted: bool,
    pub maintainer_ids: Box<[i64]>,
    /// Live versions: version -> tarball.
    pub tarballs: HashMap<Box<str>, TarballRef>,
    full: OnceLock<Arc<Rendered>>,
    abbreviated: OnceLock<Arc<Rendered>>,
    /// When this entry was last read, in the cache's ticks (least recently used goes first).
    last_used: AtomicU64,
    /// Bytes charged to the cache's budget for this entry.
    charged: AtomicUsize,
}

impl std::fmt::Debug for CachedPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedPackage")
            .field("rev", &self.rev)
            .field("restricted", &self.restricted)
            .finish_non_exhaustive()
    }
}

/// Fixed cost per cached package beyond its maps and documents (the entry, the map slot).
const ENTRY_OVERHEAD_BYTES: usize = 256;

impl CachedPackage {
    /// The entry for a package that can be read, or `None` when it has nothing live to show
    /// (unpublished, or only staged versions so far).
    pub(crate) fn from_state(state: &PackageState) -> Option<Self> {
        if state.unpublished_at.is_some() || !state.versions.iter().any(|v| v.is_live()) {
            return None;
        }
        let tarballs: HashMap<Box<str>, TarballRef> = state
            .versions
            .iter()
            .filter(|v| v.is_live())
            .filter_map(|v| {
                let mut sha512 = [0u8; 64];
                // Digests come from our own checks at publish; one that does not decode has
                // no blob to serve either.
                hex::decode_to_slice(&v.sha512_hex, &mut sha512).ok()?;
                Some((
                    v.version.clone().into_boxed_str(),
                    TarballRef {
                        sha512,
                        size: v.size,
                    },
                ))
            })
            .collect();
        let footprint = ENTRY_OVERHEAD_BYTES
            + tarballs
                .keys()
                .map(|version| version.len() + size_of::<TarballRef>() + 48)
                .sum::<usize>()
            + state.maintainers.len() * size_of::<i64>();
        Some(Self {
            rev: state.rev,
            restricted: state.access == "restricted",
            maintainer_ids: state.maintainers.iter().map(|m| m.id).collect(),
            tarballs,
            full: OnceLock::new(),
            abbreviated: OnceLock::new(),
            last_used: AtomicU64::new(0),
            charged: AtomicUsize::new(footprint),
        })
    }

    fn slot(&self, representation: Representation) -> &OnceLock<Arc<Rendered>> {
        match representation {
            Representation::Full => &self.full,
            Representation::Abbreviated => &self.abbreviated,
        }
    }

    /// The document if it was rendered already.
    pub(crate) fn document(&self, representation: Representation) -> Option<Arc<Rendered>> {
        self.slot(representation).get().cloned()
    }
}

/// The default budget: the packuments of a few hundred typical packages plus a handful of huge
/// ones (a 1,500-version packument is about 5 MB with its gzip form and the abbreviated one).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// When over budget, evict down to this share of it, so eviction does not run on every insert.
const EVICT_TO_PERCENT: usize = 90;

/// Package name -> one entry per base URL. The base URL is part of the key because tarball URLs
/// are absolute and follow the host the client used when no public URL is configured; keyed by
/// name first so a lookup allocates nothing.
type Entries = HashMap<Box<str>, Vec<(Box<str>, Arc<CachedPackage>)>>;

pub(crate) struct PackumentCache {
    entries: RwLock<Entries>,
    /// Bumped by every invalidation; a reader that started before a write must not insert what
    /// it read.
    generation: AtomicU64,
    /// Ticks for least-recently-used order.
    clock: AtomicU64,
    /// Bytes charged by the entries in the map.
    bytes: AtomicUsize,
    budget: usize,
}

impl Default for PackumentCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl PackumentCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            entries: RwLock::default(),
            generation: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            bytes: AtomicUsize::new(0),
            budget,
        }
    }

    pub(crate) fn get(&self, base_url: &str, name: &str) -> Option<Arc<CachedPackage>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries
            .get(name)?
            .iter()
            .find(|(base, _)| &**base == base_url)
            .map(|(_, entry)| entry.clone())?;
        entry.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(entry)
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
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        entry.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.bytes
            .fetch_add(entry.charged.load(Ordering::Relaxed), Ordering::Relaxed);
        let per_base = entries.entry(name.into()).or_default();
        match per_base.iter_mut().find(|(base, _)| &**base == base_url) {
            Some((_, old)) => {
                let old = std::mem::replace(old, entry);
                self.bytes
                    .fetch_sub(old.charged.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            None => per_base.push((base_url.into(), entry)),
        }
        self.evict_over_budget(&mut entries);
    }

    /// Keeps a document rendered for `entry`, charging it to the budget while the entry is
    /// still cached (a document rendered for an entry dropped meanwhile is only returned).
    pub(crate) fn store_document(
        &self,
        base_url: &str,
        name: &str,
        entry: &Arc<CachedPackage>,
        representation: Representation,
        document: Arc<Rendered>,
    ) {
        let size = document.footprint();
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entry.slot(representation).set(document).is_err() {
            return;
        }
        entry.charged.fetch_add(size, Ordering::Relaxed);
        let cached = entries.get(name).is_some_and(|per_base| {
            per_base
                .iter()
                .any(|(base, cached)| &**base == base_url && Arc::ptr_eq(cached, entry))
        });
        if cached {
            self.bytes.fetch_add(size, Ordering::Relaxed);
            self.evict_over_budget(&mut entries);
        }
    }

    pub(crate) fn invalidate(&self, name: &str) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(removed) = entries.remove(name) {
            self.uncharge(&removed);
        }
    }

    fn uncharge(&self, removed: &[(Box<str>, Arc<CachedPackage>)]) {
        let freed: usize = removed
            .iter()
            .map(|(_, entry)| entry.charged.load(Ordering::Relaxed))
            .sum();
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Drops the least recently used entries until the cache is back under its budget.
    fn evict_over_budget(&self, entries: &mut Entries) {
        if self.bytes.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let target = self.budget / 100 * EVICT_TO_PERCENT;
        let mut by_age: Vec<(u64, Box<str>, Box<str>)> = entries
            .iter()
            .flat_map(|(name, per_base)| {
                per_base.iter().map(|(base, entry)| {
                    (
                        entry.last_used.load(Ordering::Relaxed),
                        name.clone(),
                        base.clone(),
                    )
                })
            })
            .collect();
        by_age.sort_unstable_by_key(|(last_used, _, _)| *last_used);
        for (_, name, base) in by_age {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            let Some(per_base) = entries.get_mut(&name) else {
                continue;
            };
            if let Some(position) = per_base.iter().position(|(b, _)| *b == base) {
                let removed = per_base.swap_remove(position);
                self.uncharge(std::slice::from_ref(&removed));
            }
            if per_base.is_empty() {
                entries.remove(&name);
            }
        }
    }

    #[cfg(test)]
    fn charged_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry charging `bytes` to the budget.
    fn entry(rev: i64, bytes: usize) -> Arc<CachedPackage> {
        Arc::new(CachedPackage {
            rev,
            restricted: false,
            maintainer_ids: Box::new([]),
            tarballs: HashMap::new(),
            full: OnceLock::new(),
            abbreviated: OnceLock::new(),
            last_used: AtomicU64::new(0),
            charged: AtomicUsize::new(bytes),
        })
    }

    const BASE: &str = "http://127.0.0.1:4873/";

    #[test]
    fn least_recently_read_packages_go_first_past_the_budget() {
        let cache = PackumentCache::new(1000);
        for name in ["a", "b", "c"] {
            cache.insert(cache.generation(), BASE, name, entry(1, 300));
        }
        // `a` is read again: `b` is now the least recently used.
        assert!(cache.get(BASE, "a").is_some());
        cache.insert(cache.generation(), BASE, "d", entry(1, 300));
        assert!(cache.get(BASE, "b").is_none());
        for name in ["a", "c", "d"] {
            assert!(cache.get(BASE, name).is_some(), "{name}");
        }
        assert_eq!(cache.charged_bytes(), 900);
    }

    #[test]
    fn invalidation_drops_every_base_url_and_frees_its_bytes() {
        let cache = PackumentCache::new(10_000);
        cache.insert(cache.generation(), BASE, "a", entry(1, 100));
        cache.insert(cache.generation(), "http://other/", "a", entry(1, 100));
        cache.insert(cache.generation(), BASE, "b", entry(1, 100));
        cache.invalidate("a");
        assert!(cache.get(BASE, "a").is_none());
        assert!(cache.get("http://other/", "a").is_none());
        assert_eq!((cache.len(), cache.charged_bytes()), (1, 100));
    }

    #[test]
    fn a_read_that_started_before_a_write_is_not_cached() {
        let cache = PackumentCache::new(10_000);
        let before = cache.generation();
        cache.invalidate("a");
        cache.insert(before, BASE, "a", entry(1, 100));
        assert!(cache.get(BASE, "a").is_none());
        assert_eq!(cache.charged_bytes(), 0);
    }

    #[test]
    fn replacing_an_entry_charges_only_the_new_one() {
        let cache = PackumentCache::new(10_000);
        cache.insert(cache.generation(), BASE, "a", entry(1, 100));
        cache.insert(cache.generation(), BASE, "a", entry(2, 250));
        assert_eq!(cache.get(BASE, "a").map(|e| e.rev), Some(2));
        assert_eq!((cache.len(), cache.charged_bytes()), (1, 250));
    }

    #[test]
    fn documents_count_against_the_budget_while_their_entry_is_cached() {
        let cache = PackumentCache::new(100_000);
        let cached = entry(1, 100);
        cache.insert(cache.generation(), BASE, "a", cached.clone());
        let document = Arc::new(Rendered::new(vec![b'x'; 4000], OffsetDateTime::UNIX_EPOCH));
        let size = document.footprint();
        cache.store_document(BASE, "a", &cached, Representation::Full, document);
        assert!(cached.document(Representation::Full).is_some());
        assert_eq!(cache.charged_bytes(), 100 + size);

        // Rendered for an entry that was dropped meanwhile: returned to its reader, not counted.
        cache.invalidate("a");
        let gone = entry(1, 100);
        let document = Arc::new(Rendered::new(b"{}".to_vec(), OffsetDateTime::UNIX_EPOCH));
        cache.store_document(BASE, "a", &gone, Representation::Full, document);
        assert_eq!(cache.charged_bytes(), 0);
    }

    #[test]
    fn the_gzip_form_decodes_to_the_body() {
        let document = Rendered::new(br#"{"name":"a"}"#.to_vec(), OffsetDateTime::UNIX_EPOCH);
        let mut decoded = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&document.gzipped()[..]),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, r#"{"name":"a"}"#);
        assert_ne!(document.etag, document.gzip_etag);
    }
}
