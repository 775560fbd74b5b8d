//! Reads: packuments, tarballs, dist-tags, visibility, collaborators.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_npm::{PackageName, parse_version};
use airlock_store::{BlobBody, PackageState};
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::Registry;
use crate::auth::Principal;
use crate::cache::{CachedPackage, Rendered};
use crate::error::{RegistryError, Result};
use crate::packument::{Representation, render};

/// A packument the caller may read.
pub struct Packument {
    document: Arc<Rendered>,
    restricted: bool,
}

impl Packument {
    #[must_use]
    pub fn rendered(&self) -> &Rendered {
        &self.document
    }

    /// Whether shared caches may keep it (public package on a registry with anonymous reads).
    #[must_use]
    pub fn is_public(&self) -> bool {
        !self.restricted
    }
}

/// A tarball's bytes, streamed from the blob store.
pub struct TarballStream {
    pub size: u64,
    pub sha512_hex: String,
    pub stream: BoxStream<'static, std::result::Result<Bytes, std::io::Error>>,
}

/// A published tarball: whole when small, else streamed from the blob store.
pub struct Tarball {
    pub size: u64,
    pub sha512: [u8; 64],
    pub body: BlobBody,
}

pub(crate) fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound(format!("package `{name}` was not found"))
}

/// A restricted package does not exist for anyone but its maintainers.
fn check_access(
    entry: &CachedPackage,
    principal: Option<&Principal>,
    name: &PackageName,
) -> Result<()> {
    if entry.restricted && !principal.is_some_and(|p| entry.maintainer_ids.contains(&p.user.id)) {
        return Err(not_found(name.as_str()));
    }
    Ok(())
}

impl Registry {
    /// A package's whole state, loaded on the cold path's thread (see [`crate::cold`]).
    pub(crate) async fn load_state(&self, name: &str) -> Result<Option<PackageState>> {
        let packages = self.packages.clone();
        let name = name.to_owned();
        Ok(self
            .cold
            .run(async move { packages.package(&name).await })
            .await?)
    }

    /// Renders one document on the cold path's thread, which also frees the state.
    ///
    /// Its hash and gzip form are computed on the blocking pool, in parallel: they are a third
    /// of a render's CPU, and the cold path's one thread is what a burst of first reads (an
    /// `npm install` after a restart) waits on.
    async fn render(
        &self,
        base_url: &str,
        name: &PackageName,
        state: PackageState,
        representation: Representation,
    ) -> Arc<Rendered> {
        let (base_url, name) = (base_url.to_owned(), name.clone());
        let (body, modified_at) = self
            .cold
            .run(async move {
                let doc = render(&base_url, &name, &state, representation);
                (
                    serde_json::to_vec(&doc).unwrap_or_default(),
                    state.modified_at,
                )
            })
            .await;
        match tokio::task::spawn_blocking(move || Rendered::new(body, modified_at)).await {
            Ok(rendered) => Arc::new(rendered),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels a blocking task; its requests go with it.
            Err(e) => panic!("a packument's compression was cancelled: {e}"),
        }
    }

    /// The cached entry for a live package the principal may read, loading it on a miss. The
    /// state is returned too when it was loaded, so a document can be rendered from it.
    async fn readable(
        &self,
        principal: Option<&Principal>,
        name: &PackageName,
        base_url: &str,
    ) -> Result<(Arc<CachedPackage>, Option<PackageState>)> {
        self.require_reader(principal)?;
        let (entry, state) = match self.cache.get(base_url, name.as_str()) {
            Some(entry) => (entry, None),
            None => {
                // One load per package at a time: concurrent misses wait for the first.
                let _loading = self.loading.lock(name.as_str()).await;
                match self.cache.get(base_url, name.as_str()) {
                    Some(entry) => (entry, None),
                    None => {
                        let generation = self.cache.generation();
                        let state = self
                            .load_state(name.as_str())
                            .await?
                            .ok_or_else(|| not_found(name.as_str()))?;
                        let entry = Arc::new(
                            CachedPackage::from_state(&state)
                                .ok_or_else(|| not_found(name.as_str()))?,
                        );
                        self.cache
                            .insert(generation, base_url, name.as_str(), entry.clone());
                        (entry, Some(state))
                    }
                }
            }
        };
        check_access(&entry, principal, name)?;
        Ok((entry, state))
    }

    pub async fn packument(
        &self,
        principal: Option<&Principal>,
        name: &str,
        representation: Representation,
        base_url: &str,
    ) -> Result<Packument> {
        let name = PackageName::parse(name)?;
        let (entry, loaded) = self.readable(principal, &name, base_url).await?;
        let packument = |document| Packument {
            document,
            restricted: entry.restricted,
        };
        if let Some(document) = entry.document(representation) {
            return Ok(packument(document));
        }
        // Rendered once per revision: later requests wait for the first one's document.
        let _rendering = self.loading.lock(name.as_str()).await;
        if let Some(document) = entry.document(representation) {
            return Ok(packument(document));
        }
        let state = match loaded {
            Some(state) => state,
            None => self
                .load_state(name.as_str())
                .await?
                .ok_or_else(|| not_found(name.as_str()))?,
        };
        if state.rev != entry.rev {
            // Changed since the entry was cached (its invalidation is on its way): answer from
            // what is stored now, checked afresh, without caching it.
            let fresh =
                CachedPackage::from_state(&state).ok_or_else(|| not_found(name.as_str()))?;
            check_access(&fresh, principal, &name)?;
            let document = self.render(base_url, &name, state, representation).await;
            return Ok(Packument {
                document,
                restricted: fresh.restricted,
            });
        }
        let document = self.render(base_url, &name, state, representation).await;
        self.cache.store_document(
            base_url,
            name.as_str(),
            &entry,
            representation,
            document.clone(),
        );
        Ok(packument(document))
    }

    /// `GET /{name}/-/{filename}`: from memory to the version's blob, no database round trip
    /// once the package is cached.
    pub async fn tarball(
        &self,
        principal: Option<&Principal>,
        name: &str,
        filename: &str,
        base_url: &str,
    ) -> Result<Tarball> {
        let name = PackageName::parse(name)?;
        let (entry, _) = self.readable(principal, &name, base_url).await?;
        let missing =
            || RegistryError::NotFound(format!("tarball `{filename}` of `{name}` was not found"));
        let version = filename
            .strip_prefix(name.bare_name())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_suffix(".tgz"))
            .ok_or_else(missing)?;
        let tarball = *entry.tarballs.get(version).ok_or_else(missing)?;
        let (size, body) = self.blobs.read(&tarball.sha512, tarball.size).await?.ok_or_else(|| {
            tracing::error!(package.name = %name, package.version = version, "tarball blob missing");
            missing()
        })?;
        if size != tarball.size {
            tracing::error!(package.name = %name, package.version = version, blob.size = size, "tarball blob has the wrong size");
            return Err(missing());
        }
        Ok(Tarball {
            size,
            sha512: tarball.sha512,
            body,
        })
    }

    /// Loads a live package for a read that needs the stored state (not just the rendering).
    pub(crate) async fn load_readable(
        &self,
        principal: Option<&Principal>,
        name: &PackageName,
    ) -> Result<PackageState> {
        self.require_reader(principal)?;
        let state = self
            .load_state(name.as_str())
            .await?
            // Only staged versions so far: not public yet.
            .filter(|s| s.unpublished_at.is_none() && s.versions.iter().any(|v| v.is_live()))
            .ok_or_else(|| not_found(name.as_str()))?;
        if state.access == "restricted" && !principal.is_some_and(|p| p.is_maintainer(&state)) {
            return Err(not_found(name.as_str()));
        }
        Ok(state)
    }

    pub async fn dist_tags(
        &self,
        principal: Option<&Principal>,
        name: &str,
    ) -> Result<BTreeMap<String, String>> {
        let name = PackageName::parse(name)?;
        Ok(self.load_readable(principal, &name).await?.dist_tags)
    }

    /// `npm access get status`: is the package public?
    pub async fn visibility(&self, principal: Option<&Principal>, name: &str) -> Result<bool> {
        let name = PackageName::parse(name)?;
        Ok(self.load_readable(principal, &name).await?.access == "public")
    }

    /// `npm access list collaborators`: every maintainer may write.
    pub async fn collaborators(
        &self,
        principal: Option<&Principal>,
        name: &str,
    ) -> Result<BTreeMap<String, String>> {
        let name = PackageName::parse(name)?;
        let state = self.load_readable(principal, &name).await?;
        Ok(state
            .maintainers
            .into_iter()
            .map(|m| (m.name, "write".to_owned()))
            .collect())
    }

    /// `npm access list packages USER`: the packages a user maintains that the caller can see.
    pub async fn packages_of_user(
        &self,
        principal: Option<&Principal>,
        user: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.require_reader(principal)?;
        let user = self
            .accounts
            .user_by_name(user)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("user `{user}` was not found")))?;
        let mut out = BTreeMap::new();
        for name in self.packages.packages_of(user.id).await? {
            let Ok(parsed) = PackageName::parse(&name) else {
                continue;
            };
            if self.load_readable(principal, &parsed).await.is_ok() {
                out.insert(name, "write".to_owned());
            }
        }
        Ok(out)
    }
}

/// Versions sorted by semver precedence, lowest first; strings that are not semver go first.
pub(crate) fn semver_sorted<'a>(versions: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut list: Vec<(Option<semver::Version>, &str)> =
        versions.map(|v| (parse_version(v).ok(), v)).collect();
    list.sort();
    list.into_iter().map(|(_, v)| v).collect()
}
