//! Reads: packuments, tarballs, dist-tags, visibility, collaborators.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use airlock_npm::{PackageName, parse_version};
use airlock_store::PackageState;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::Registry;
use crate::auth::Principal;
use crate::cache::{CachedPackage, Rendered};
use crate::error::{RegistryError, Result};
use crate::packument::{Representation, render};

/// A packument the caller may read.
pub struct Packument {
    entry: Arc<CachedPackage>,
    representation: Representation,
}

impl Packument {
    #[must_use]
    pub fn rendered(&self) -> &Rendered {
        self.entry.document(self.representation)
    }

    /// Whether shared caches may keep it (public package on a registry with anonymous reads).
    #[must_use]
    pub fn is_public(&self) -> bool {
        !self.entry.restricted
    }
}

/// A tarball's bytes, streamed from the blob store.
pub struct TarballStream {
    pub size: u64,
    pub sha512_hex: String,
    pub stream: BoxStream<'static, std::result::Result<Bytes, std::io::Error>>,
}

pub(crate) fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound(format!("package `{name}` was not found"))
}

fn build_entry(base_url: &str, name: &PackageName, state: &PackageState) -> Option<CachedPackage> {
    if state.unpublished_at.is_some() || !state.versions.iter().any(|v| v.is_live()) {
        return None;
    }
    let tarballs = state
        .versions
        .iter()
        .filter(|v| v.is_live())
        .map(|v| (v.version.clone(), (v.sha512_hex.clone(), v.size)))
        .collect::<HashMap<_, _>>();
    let (base_url, name, state) = (base_url.to_owned(), name.clone(), state.clone());
    Some(CachedPackage {
        restricted: state.access == "restricted",
        maintainer_ids: state.maintainers.iter().map(|m| m.id).collect(),
        tarballs,
        source: Box::new(move |representation| {
            let doc = render(&base_url, &name, &state, representation);
            Rendered::new(
                serde_json::to_vec(&doc).unwrap_or_default(),
                state.modified_at,
            )
        }),
        full: std::sync::OnceLock::new(),
        abbreviated: std::sync::OnceLock::new(),
    })
}

impl Registry {
    /// The cached entry for a live package the principal may read.
    async fn readable(
        &self,
        principal: Option<&Principal>,
        name: &PackageName,
        base_url: &str,
    ) -> Result<Arc<CachedPackage>> {
        self.require_reader(principal)?;
        let entry = match self.cache.get(base_url, name.as_str()) {
            Some(entry) => entry,
            None => {
                let generation = self.cache.generation();
                let state = self
                    .packages
                    .package(name.as_str())
                    .await?
                    .ok_or_else(|| not_found(name.as_str()))?;
                let entry = Arc::new(
                    build_entry(base_url, name, &state).ok_or_else(|| not_found(name.as_str()))?,
                );
                self.cache
                    .insert(generation, base_url, name.as_str(), entry.clone());
                entry
            }
        };
        // A restricted package does not exist for anyone but its maintainers.
        if entry.restricted && !principal.is_some_and(|p| entry.maintainer_ids.contains(&p.user.id))
        {
            return Err(not_found(name.as_str()));
        }
        Ok(entry)
    }

    pub async fn packument(
        &self,
        principal: Option<&Principal>,
        name: &str,
        representation: Representation,
        base_url: &str,
    ) -> Result<Packument> {
        let name = PackageName::parse(name)?;
        let entry = self.readable(principal, &name, base_url).await?;
        Ok(Packument {
            entry,
            representation,
        })
    }

    /// `GET /{name}/-/{filename}`.
    pub async fn tarball(
        &self,
        principal: Option<&Principal>,
        name: &str,
        filename: &str,
        base_url: &str,
    ) -> Result<TarballStream> {
        let name = PackageName::parse(name)?;
        let entry = self.readable(principal, &name, base_url).await?;
        let missing =
            || RegistryError::NotFound(format!("tarball `{filename}` of `{name}` was not found"));
        let version = filename
            .strip_prefix(name.bare_name())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_suffix(".tgz"))
            .ok_or_else(missing)?;
        let (sha512_hex, size) = entry.tarballs.get(version).ok_or_else(missing)?.clone();
        let (_, stream) = self.blobs.get(&sha512_hex).await?.ok_or_else(|| {
            tracing::error!(package.name = %name, package.version = version, "tarball blob missing");
            missing()
        })?;
        use futures::TryStreamExt;
        Ok(TarballStream {
            size,
            sha512_hex,
            stream: Box::pin(stream.map_err(std::io::Error::other)),
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
            .packages
            .package(name.as_str())
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
