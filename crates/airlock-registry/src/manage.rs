//! Changes to existing packages: deprecate, unpublish, owners, dist-tags, access.

use std::collections::BTreeMap;

use airlock_npm::{DistTag, PackageName, parse_version};
use airlock_store::{PackageChange, PackageState, StoreError};
use serde_json::{Value, json};

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};
use crate::packument::format_rev;
use crate::read::{not_found, semver_sorted};

/// How often a change without a client-supplied revision is retried when it loses a race.
const CHANGE_ATTEMPTS: usize = 3;

fn parse_json(body: &[u8]) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RegistryError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(e) => Err(RegistryError::BadRequest(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

fn conflict(name: &PackageName) -> RegistryError {
    RegistryError::Conflict(format!(
        "`{name}` changed since you read it: run the command again"
    ))
}

impl Registry {
    /// An authenticated principal allowed to write at all, with the second factor their
    /// account asks for on writes (checked once per request, before any retry).
    pub(crate) async fn authorize_write<'p>(
        &self,
        principal: Option<&'p Principal>,
    ) -> Result<&'p Principal> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        self.require_write_factor(principal).await?;
        Ok(principal)
    }

    /// A live package the principal maintains. Non-maintainers of a restricted package get
    /// "not found", so they learn nothing about it.
    async fn load_maintained(
        &self,
        principal: &Principal,
        name: &PackageName,
    ) -> Result<PackageState> {
        let state = self
            .packages
            .package(name.as_str())
            .await?
            .filter(|s| s.unpublished_at.is_none())
            .ok_or_else(|| not_found(name.as_str()))?;
        if state.access == "restricted" && !principal.is_maintainer(&state) {
            return Err(not_found(name.as_str()));
        }
        principal.require_maintainer(name, &state)?;
        Ok(state)
    }

    fn check_rev(name: &PackageName, state: &PackageState, rev: &str) -> Result<()> {
        if rev == format_rev(name.as_str(), state.rev) {
            Ok(())
        } else {
            Err(conflict(name))
        }
    }

    async fn apply(
        &self,
        principal: &Principal,
        name: &PackageName,
        rev: i64,
        change: PackageChange,
    ) -> Result<i64> {
        match self
            .packages
            .update_package(name.as_str(), rev, change, principal.user.id, self.now())
            .await
        {
            Ok(rev) => {
                self.cache.invalidate(name.as_str());
                Ok(rev)
            }
            Err(StoreError::Conflict) => Err(conflict(name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a change computed from fresh state, retrying when another write wins the race.
    async fn change_with_retry(
        &self,
        principal: &Principal,
        name: &PackageName,
        compute: impl Fn(&PackageState) -> Result<Option<PackageChange>>,
    ) -> Result<()> {
        let _serialized = self.locks.lock(name.as_str()).await;
        for _ in 0..CHANGE_ATTEMPTS {
            let state = self.load_maintained(principal, name).await?;
            let Some(change) = compute(&state)? else {
                return Ok(());
            };
            match self.apply(principal, name, state.rev, change).await {
                Err(RegistryError::Conflict(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(conflict(name))
    }

    /// `PUT /{name}` without attachments: npm deprecate/undeprecate send the whole packument
    /// back with `deprecated` changed. Only `deprecated` is taken from it.
    pub async fn update_metadata(
        &self,
        principal: Option<&Principal>,
        name: &str,
        body: &[u8],
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let doc = parse_json(body)?;
        let Some(versions) = doc.get("versions").and_then(Value::as_object) else {
            return Err(RegistryError::BadRequest(
                "a package document without attachments must carry `versions` (only deprecation changes are accepted this way)".into(),
            ));
        };
        let mut wanted: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (version, object) in versions {
            let message = match object.get("deprecated") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(RegistryError::BadRequest(format!(
                        "`deprecated` of version `{version}` must be a string"
                    )));
                }
            };
            wanted.insert(version.clone(), message);
        }
        self.change_with_retry(principal, &name, |state| {
            let mut changes = BTreeMap::new();
            for (version, message) in &wanted {
                let stored = state
                    .versions
                    .iter()
                    .find(|v| &v.version == version && v.is_live());
                match stored {
                    Some(v) if &v.deprecated != message => {
                        changes.insert(version.clone(), message.clone());
                    }
                    Some(_) => {}
                    None => {
                        return Err(RegistryError::NotFound(format!(
                            "`{name}` has no version `{version}`"
                        )));
                    }
                }
            }
            Ok((!changes.is_empty()).then_some(PackageChange::SetDeprecations(changes)))
        })
        .await
    }

    /// `PUT /{name}/-rev/{rev}`: npm unpublish (the document minus versions) or npm owner
    /// (`maintainers` only). Answers the JSON npm owner expects.
    pub async fn put_with_rev(
        &self,
        principal: Option<&Principal>,
        name: &str,
        rev: &str,
        body: &[u8],
    ) -> Result<Value> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let doc = parse_json(body)?;
        let state = self.load_maintained(principal, &name).await?;
        Self::check_rev(&name, &state, rev)?;
        let change = if let Some(versions) = doc.get("versions") {
            let versions = versions
                .as_object()
                .ok_or_else(|| RegistryError::BadRequest("`versions` must be an object".into()))?;
            Self::unpublish_change(&state, |v| !versions.contains_key(v))
        } else if let Some(maintainers) = doc.get("maintainers") {
            Some(self.owners_change(&name, maintainers).await?)
        } else {
            return Err(RegistryError::BadRequest(
                "expected `versions` (unpublish) or `maintainers` (owner change) in the package document".into(),
            ));
        };
        let rev = match change {
            Some(change) => self.apply(principal, &name, state.rev, change).await?,
            None => state.rev,
        };
        Ok(json!({ "ok": true, "id": name.as_str(), "rev": format_rev(name.as_str(), rev) }))
    }

    /// The change that unpublishes the live versions `remove` selects, or `None` if none.
    /// Dist-tags pointing at them go; `latest` moves to the highest remaining release.
    fn unpublish_change(
        state: &PackageState,
        remove: impl Fn(&str) -> bool,
    ) -> Option<PackageChange> {
        let live: Vec<&str> = state
            .versions
            .iter()
            .filter(|v| v.is_live())
            .map(|v| v.version.as_str())
            .collect();
        let (removed, remaining): (Vec<&str>, Vec<&str>) = live.iter().partition(|v| remove(v));
        if removed.is_empty() {
            return None;
        }
        if remaining.is_empty() {
            return Some(PackageChange::UnpublishPackage);
        }
        let mut tags: BTreeMap<String, String> = state
            .dist_tags
            .iter()
            .filter(|(_, v)| !removed.contains(&v.as_str()))
            .map(|(t, v)| (t.clone(), v.clone()))
            .collect();
        if !tags.contains_key("latest") {
            let sorted = semver_sorted(remaining.iter().copied());
            let release = sorted
                .iter()
                .rev()
                .find(|v| parse_version(v).is_ok_and(|p| p.pre.is_empty()));
            if let Some(latest) = release.or(sorted.last()) {
                tags.insert("latest".into(), (*latest).to_owned());
            }
        }
        Some(PackageChange::UnpublishVersions {
            versions: removed.iter().map(|v| (*v).to_owned()).collect(),
            dist_tags: tags,
        })
    }

    async fn owners_change(
        &self,
        name: &PackageName,
        maintainers: &Value,
    ) -> Result<PackageChange> {
        let list = maintainers.as_array().ok_or_else(|| {
            RegistryError::BadRequest("`maintainers` must be an array of {name, email}".into())
        })?;
        let mut ids = Vec::new();
        for entry in list {
            let user_name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
                RegistryError::BadRequest("every maintainer needs a `name`".into())
            })?;
            let user = self
                .accounts
                .user_by_name(user_name)
                .await?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!("there is no user named `{user_name}`"))
                })?;
            ids.push(user.id);
        }
        if ids.is_empty() {
            return Err(RegistryError::BadRequest(format!(
                "`{name}` needs at least one maintainer"
            )));
        }
        Ok(PackageChange::SetMaintainers(ids))
    }

    /// `DELETE /{name}/-rev/{rev}`: unpublish the whole package. Its version numbers stay
    /// taken and its maintainers keep the name.
    pub async fn unpublish_package(
        &self,
        principal: Option<&Principal>,
        name: &str,
        rev: &str,
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let state = self.load_maintained(principal, &name).await?;
        Self::check_rev(&name, &state, rev)?;
        self.apply(principal, &name, state.rev, PackageChange::UnpublishPackage)
            .await?;
        self.reject_pending_stages(principal, &name).await
    }

    /// `DELETE /{name}/-/{filename}/-rev/{rev}`: the last step of npm's unpublish, after the
    /// version was already removed; if it is still live, this unpublishes it.
    pub async fn delete_tarball(
        &self,
        principal: Option<&Principal>,
        name: &str,
        filename: &str,
        rev: &str,
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let state = self.load_maintained(principal, &name).await?;
        Self::check_rev(&name, &state, rev)?;
        let version = filename
            .strip_prefix(name.bare_name())
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".tgz"))
            .ok_or_else(|| {
                RegistryError::NotFound(format!("tarball `{filename}` of `{name}` was not found"))
            })?;
        if let Some(change) = Self::unpublish_change(&state, |v| v == version) {
            self.apply(principal, &name, state.rev, change).await?;
        }
        Ok(())
    }

    /// `PUT /-/package/{name}/dist-tags/{tag}` with a JSON string body.
    pub async fn set_dist_tag(
        &self,
        principal: Option<&Principal>,
        name: &str,
        tag: &str,
        body: &[u8],
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let tag = DistTag::parse(tag)?;
        let version: String = serde_json::from_slice(body).map_err(|_| {
            RegistryError::BadRequest(
                "the body must be the version as a JSON string, for example \"1.0.0\"".into(),
            )
        })?;
        self.change_with_retry(principal, &name, |state| {
            if !state
                .versions
                .iter()
                .any(|v| v.version == version && v.is_live())
            {
                return Err(RegistryError::NotFound(format!(
                    "`{name}` has no version `{version}` to tag"
                )));
            }
            if state.dist_tags.get(tag.as_str()) == Some(&version) {
                return Ok(None);
            }
            Ok(Some(PackageChange::SetDistTag {
                tag: tag.to_string(),
                version: version.clone(),
            }))
        })
        .await
    }

    /// `DELETE /-/package/{name}/dist-tags/{tag}`.
    pub async fn remove_dist_tag(
        &self,
        principal: Option<&Principal>,
        name: &str,
        tag: &str,
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        if tag == "latest" {
            return Err(RegistryError::BadRequest(
                "the `latest` tag cannot be removed: point it at another version instead".into(),
            ));
        }
        self.change_with_retry(principal, &name, |state| {
            if !state.dist_tags.contains_key(tag) {
                return Err(RegistryError::NotFound(format!(
                    "`{name}` has no dist-tag `{tag}`"
                )));
            }
            Ok(Some(PackageChange::RemoveDistTag(tag.to_owned())))
        })
        .await
    }

    /// `POST /-/package/{name}/access` with `{"access": "public" | "restricted"}`.
    pub async fn set_access(
        &self,
        principal: Option<&Principal>,
        name: &str,
        body: &[u8],
    ) -> Result<()> {
        let principal = self.authorize_write(principal).await?;
        let name = PackageName::parse(name)?;
        let doc = parse_json(body)?;
        let access = match doc.get("access").and_then(Value::as_str) {
            Some("public") => "public",
            Some("restricted" | "private") => "restricted",
            Some(other) => {
                return Err(RegistryError::BadRequest(format!(
                    "unknown access level `{other}`: use public or restricted"
                )));
            }
            None if doc.contains_key("publish_requires_tfa") => {
                return Err(RegistryError::BadRequest(
                    "per-package two-factor settings are not supported yet; Airlock's release policy will cover them".into(),
                ));
            }
            None => {
                return Err(RegistryError::BadRequest(
                    "expected {\"access\": \"public\" | \"restricted\"}".into(),
                ));
            }
        };
        if access == "restricted" && name.scope().is_none() {
            return Err(RegistryError::BadRequest(format!(
                "`{name}` is unscoped; only scoped packages can be restricted"
            )));
        }
        self.change_with_retry(principal, &name, |state| {
            Ok((state.access != access).then(|| PackageChange::SetAccess(access.to_owned())))
        })
        .await
    }
}
