//! `npm publish`: check the body, decide, store the bytes, then commit the version.

use airlock_npm::{Access, PackageName, Permission, VerifiedPublish, parse_publish};
use airlock_store::{NewVersion, PackageState, PublishPlan, StoreError};
use serde_json::Value;

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};

/// Manifest keys only the registry may set: a publish body that carries them is not believed.
const SERVER_OWNED_KEYS: &[&str] = &[
    "_npmUser",
    "maintainers",
    "dist",
    "deprecated",
    "_attachments",
    "_rev",
];

/// How often a publish is re-decided when a writer in another process won the race.
const PUBLISH_ATTEMPTS: usize = 3;

/// What happened to a publish.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    Published,
    /// An identical publish by the same user had already succeeded (a client retry).
    AlreadyPublished,
}

impl Registry {
    /// `PUT /{name}` with an attachment.
    pub async fn publish(
        &self,
        principal: Option<&Principal>,
        url_name: &str,
        body: &[u8],
    ) -> Result<PublishOutcome> {
        let (principal, url_name, publish) =
            self.checked_publish_body(principal, url_name, body)?;
        match &principal.publisher {
            Some(grant) => grant.require(&url_name, Permission::Publish)?,
            None => {
                self.require_write_factor(principal).await?;
            }
        }
        let provenance = self.verify_provenance(principal, &publish).await?;

        let _serialized = self.locks.lock(url_name.as_str()).await;
        let mut bytes_stored = false;
        for _ in 0..PUBLISH_ATTEMPTS {
            let state = self.load_state(url_name.as_str()).await?;
            if let Some(state) = &state
                && self.is_identical_retry(principal, &publish, state)
            {
                return Ok(PublishOutcome::AlreadyPublished);
            }
            let (expected_rev, claim_scope) = self
                .decide_target(principal, &publish, state.as_ref())
                .await?;
            let policy = self.require_direct_publish_allowed(&url_name).await?;
            // A direct publish has no gate to escalate to: a provenance downgrade is refused.
            if let Some((_, refusal)) = self
                .provenance_risks(&url_name, &policy, state.as_ref(), provenance.as_ref())?
                .into_iter()
                .next()
            {
                return Err(RegistryError::from(refusal));
            }
            if !bytes_stored {
                // The bytes go first: a crash after this leaves an unreferenced blob, never a
                // version without its tarball.
                self.blobs
                    .put(
                        &publish.digests.sha512_hex(),
                        publish.tarball.clone().into(),
                    )
                    .await?;
                bytes_stored = true;
            }
            let mut plan = self.plan(principal, &publish, expected_rev, claim_scope);
            plan.version.provenance = provenance.as_ref().map(|p| p.stored.clone());
            plan.signature = Some(self.sign_version(
                &plan.name,
                &plan.version.version,
                &plan.version.integrity,
            )?);
            match self.packages.publish(plan).await {
                Ok(_) => {
                    self.cache.invalidate(url_name.as_str());
                    tracing::info!(package.name = %url_name, package.version = %publish.version, actor.name = %principal.actor_name(), "published");
                    return Ok(PublishOutcome::Published);
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::VersionExists(version)) => {
                    return Err(RegistryError::VersionExists(version));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(format!(
            "`{url_name}` is being changed by other requests right now: publish again"
        )))
    }

    /// What publish and stage both check first: a principal who may write this package, and
    /// a publish body that holds together.
    pub(crate) fn checked_publish_body<'p>(
        &self,
        principal: Option<&'p Principal>,
        url_name: &str,
        body: &[u8],
    ) -> Result<(&'p Principal, PackageName, VerifiedPublish)> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        let url_name = PackageName::parse(url_name)?;
        principal.require_token_covers(&url_name)?;
        let publish = parse_publish(&url_name, body, &self.config.tarball_limits)?;
        Ok((principal, url_name, publish))
    }

    /// npm retries a PUT on 5xx: the same bytes by the same user shortly after are not a
    /// second publish.
    fn is_identical_retry(
        &self,
        principal: &Principal,
        publish: &VerifiedPublish,
        state: &PackageState,
    ) -> bool {
        let version = publish.version.to_string();
        state.versions.iter().any(|existing| {
            existing.version == version
                && existing.is_live()
                && existing.sha512_hex == publish.digests.sha512_hex()
                && existing.publisher.id == principal.user.id
                && self.now() - existing.published_at < self.config.publish_retry_window
        })
    }

    /// Where a new version may go: `(expected revision, scope to claim)`, or why not. Shared
    /// by publish and stage.
    pub(crate) async fn decide_target(
        &self,
        principal: &Principal,
        publish: &VerifiedPublish,
        state: Option<&PackageState>,
    ) -> Result<(Option<i64>, Option<String>)> {
        match state {
            // A restricted package must not exist for non-maintainers: answer what a publish
            // of a new package in that scope would.
            Some(state) if state.access == "restricted" && !principal.is_maintainer(state) => {
                self.decide_new(principal, publish).await?;
                Err(principal.not_maintainer(&publish.name))
            }
            Some(state) => {
                principal.require_maintainer(&publish.name, state)?;
                let version = publish.version.to_string();
                if state.versions.iter().any(|v| v.version == version) {
                    return Err(RegistryError::VersionExists(version));
                }
                Ok((Some(state.rev), None))
            }
            None => Ok((None, self.decide_new(principal, publish).await?)),
        }
    }

    /// A new package: the scope to claim (if nobody owns it yet), or a refusal.
    async fn decide_new(
        &self,
        principal: &Principal,
        publish: &VerifiedPublish,
    ) -> Result<Option<String>> {
        let Some(scope) = publish.name.scope() else {
            return Ok(None);
        };
        let owners = self.packages.scope_owners(scope).await?;
        if owners.is_empty() {
            return Ok(Some(scope.to_owned()));
        }
        if owners.iter().any(|o| o.user_id == principal.user.id) {
            Ok(None)
        } else {
            Err(RegistryError::Forbidden(format!(
                "the scope `@{scope}` belongs to other users: ask one of them, or an administrator (`airlock scope assign @{scope} {}`), to let you publish in it",
                principal.user.name
            )))
        }
    }

    pub(crate) fn plan(
        &self,
        principal: &Principal,
        publish: &VerifiedPublish,
        expected_rev: Option<i64>,
        claim_scope: Option<String>,
    ) -> PublishPlan {
        let mut manifest = publish.manifest.clone();
        for key in SERVER_OWNED_KEYS {
            manifest.remove(*key);
        }
        if let Some(grant) = &principal.publisher {
            manifest.insert("_npmUser".into(), grant.npm_user());
        }
        let (description, keywords) = search_fields(&manifest);
        PublishPlan {
            name: publish.name.to_string(),
            scope: publish.name.scope().map(str::to_owned),
            expected_rev,
            claim_scope,
            access: publish.access.map(|a| match a {
                Access::Public => "public".to_owned(),
                Access::Restricted => "restricted".to_owned(),
            }),
            version: NewVersion {
                version: publish.version.to_string(),
                manifest,
                integrity: publish.digests.integrity(),
                shasum: publish.digests.shasum(),
                sha512_hex: publish.digests.sha512_hex(),
                size: publish.tarball.len() as u64,
                file_count: publish.tarball_info.file_count,
                unpacked_size: publish.tarball_info.unpacked_size,
                publisher_id: principal.user.id,
                provenance: None,
            },
            tag: publish.tag.to_string(),
            description,
            keywords,
            now: self.now(),
            // Only a publish that makes the version live signs it (a stage signs on promotion).
            signature: None,
        }
    }
}

/// What search and the package row keep from a manifest: the description and the keywords
/// (lower-cased).
pub(crate) fn search_fields(
    manifest: &serde_json::Map<String, Value>,
) -> (Option<String>, Vec<String>) {
    let description = manifest
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let keywords = manifest
        .get("keywords")
        .and_then(Value::as_array)
        .map(|k| {
            k.iter()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    (description, keywords)
}
