//! Staged releases (npm's `npm stage …`), release policy and the background promotion.
//!
//! The gate crate decides every transition; this module authorizes the caller, proves second
//! factors, persists state and events, and checks the bytes before anything goes live.

use airlock_gate::{
    Actor, Effect, GateEvent, GateRefusal, PolicyLayers, PolicyPatch, PublishMode, ReleasePolicy,
    ReleaseState, RiskSignal, StateKind, TarballSha512, apply, due, escalate,
};
use airlock_npm::PackageName;
use airlock_store::{
    GateEventRecord, NewStage, Promotion, StageRecord, StageUpdate, StoreError, format_time,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use time::OffsetDateTime;

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};
use crate::read::TarballStream;

/// How often a stage change is retried when another one won the race.
const STAGE_ATTEMPTS: usize = 3;
/// npm pages `stage list` by 100.
const MAX_PER_PAGE: u64 = 100;
/// Subject of the registry-wide policy layer.
pub const REGISTRY_SUBJECT: &str = "registry";

/// A stage as `npm stage list|view` print it: npm's fields first, then ours as strings.
pub struct StageView(pub Value);

fn state_of(stage: &StageRecord) -> Result<ReleaseState> {
    serde_json::from_value(stage.state.clone()).map_err(|_| {
        RegistryError::Store(StoreError::Corrupt(format!(
            "gate state of stage {}",
            stage.id
        )))
    })
}

fn state_kind_name(state: &ReleaseState) -> String {
    match state.kind() {
        StateKind::Staged => "staged",
        StateKind::CoolingOff => "cooling_off",
        StateKind::Live => "live",
        StateKind::Rejected => "rejected",
        StateKind::Expired => "expired",
    }
    .to_owned()
}

/// When the background job must look at a state next.
fn due_at(state: &ReleaseState) -> Option<OffsetDateTime> {
    match state {
        ReleaseState::Staged { release, .. } => Some(release.expires_at),
        ReleaseState::CoolingOff { until, .. } => Some(*until),
        ReleaseState::Live { .. }
        | ReleaseState::Rejected { .. }
        | ReleaseState::Expired { .. } => None,
    }
}

fn describe_policy(policy: &ReleasePolicy) -> String {
    let mode = match policy.publish {
        PublishMode::Direct => "direct",
        PublishMode::Staged => "staged",
    };
    let mut s = format!(
        "publish={mode}, approvals={}, cooling_off={}s",
        policy.approvals,
        policy.cooling_off.whole_seconds()
    );
    if policy.expedite {
        s.push_str(", expedite");
    }
    if !policy.escalated_by.is_empty() {
        let signals: Vec<String> = policy
            .escalated_by
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        s.push_str(&format!(", escalated by {}", signals.join(" ")));
    }
    s
}

fn sha512_of(hex: &str, stage_id: &str) -> Result<TarballSha512> {
    TarballSha512::from_hex(hex).map_err(|_| {
        RegistryError::Store(StoreError::Corrupt(format!("digest of stage {stage_id}")))
    })
}

fn refused(e: GateRefusal) -> RegistryError {
    RegistryError::GateRefused(e)
}

/// User names are unique and never change, so they serve as the gate's actor id (and its
/// refusals name people, not database ids).
fn actor_of(principal: &Principal) -> Actor {
    if let Some(grant) = &principal.publisher {
        return grant.actor();
    }
    Actor::user(principal.user.name.clone(), principal.user.name.clone())
}

impl Registry {
    /// The policy for `name`: registry, scope and package layers over the defaults.
    pub async fn effective_policy(&self, name: &PackageName) -> Result<ReleasePolicy> {
        let layer = |value: Option<Value>, subject: &str| -> Result<Option<PolicyPatch>> {
            value
                .map(|v| {
                    serde_json::from_value(v).map_err(|_| {
                        RegistryError::Store(StoreError::Corrupt(format!("policy of {subject}")))
                    })
                })
                .transpose()
        };
        let scope_subject = name.scope().map(|s| format!("@{s}"));
        let layers = PolicyLayers {
            registry: layer(
                self.releases.policy(REGISTRY_SUBJECT).await?,
                REGISTRY_SUBJECT,
            )?,
            scope: match &scope_subject {
                Some(subject) => layer(self.releases.policy(subject).await?, subject)?,
                None => None,
            },
            package: layer(self.releases.policy(name.as_str()).await?, name.as_str())?,
        };
        layers
            .effective()
            .map_err(|e| RegistryError::BadRequest(e.to_string()))
    }

    /// Refuses a direct publish where the policy says releases must be staged; returns the
    /// policy otherwise.
    pub(crate) async fn require_direct_publish_allowed(
        &self,
        name: &PackageName,
    ) -> Result<ReleasePolicy> {
        let policy = self.effective_policy(name).await?;
        match policy.publish {
            PublishMode::Direct => Ok(policy),
            PublishMode::Staged => Err(RegistryError::Forbidden(format!(
                "`{name}` only accepts staged releases: run `npm stage publish`, then have {} approve it with `npm stage approve`",
                if policy.approvals > 1 {
                    format!("{} maintainers", policy.approvals)
                } else {
                    "a maintainer".to_owned()
                }
            ))),
        }
    }

    /// `POST /-/stage/package/{name}`: stage a release. No second factor is needed; the
    /// version number is taken from here on.
    pub async fn stage(
        &self,
        principal: Option<&Principal>,
        url_name: &str,
        body: &[u8],
    ) -> Result<String> {
        let (principal, url_name, publish) =
            self.checked_publish_body(principal, url_name, body)?;
        if let Some(grant) = &principal.publisher {
            grant.require(&url_name, airlock_npm::Permission::Stage)?;
        }
        let provenance = self.verify_provenance(principal, &publish).await?;
        let configured = self.effective_policy(&url_name).await?;
        let now = self.now();
        let stager = actor_of(principal);
        let sha512 = TarballSha512::from_bytes(publish.digests.sha512);
        let _serialized = self.locks.lock(url_name.as_str()).await;
        let mut bytes_stored = false;
        for _ in 0..STAGE_ATTEMPTS {
            let state = self.packages.package(url_name.as_str()).await?;
            let (expected_rev, claim_scope) = self
                .decide_target(principal, &publish, state.as_ref())
                .await?;
            // A staged release goes past maintainers anyway: a provenance downgrade is not
            // refused but raises the bar (one more approver), and the stage shows why.
            let signals: Vec<RiskSignal> = self
                .provenance_risks(&url_name, &configured, state.as_ref(), provenance.as_ref())?
                .into_iter()
                .map(|(signal, refusal)| {
                    tracing::warn!(package.name = %url_name, package.version = %publish.version, reason = %refusal, "provenance risk: release escalated");
                    signal
                })
                .collect();
            let policy = escalate(&configured, &signals);
            let transition = apply(
                None,
                &GateEvent::Stage {
                    stager: stager.clone(),
                    tarball_sha512: sha512,
                    policy: policy.clone(),
                    at: now,
                },
            )
            .map_err(refused)?;
            if !bytes_stored {
                self.blobs
                    .put(
                        &publish.digests.sha512_hex(),
                        publish.tarball.clone().into(),
                    )
                    .await?;
                bytes_stored = true;
            }
            let id = uuid::Uuid::new_v4().to_string();
            let mut plan = self.plan(principal, &publish, expected_rev, claim_scope);
            plan.version.provenance = provenance.as_ref().map(|p| p.stored.clone());
            let stage = NewStage {
                id: id.clone(),
                name: plan.name,
                scope: plan.scope,
                expected_rev: plan.expected_rev,
                claim_scope: plan.claim_scope,
                access: plan.access,
                version: plan.version,
                tag: plan.tag,
                state_kind: state_kind_name(&transition.state),
                state: serde_json::to_value(&transition.state)
                    .map_err(|e| RegistryError::BadRequest(e.to_string()))?,
                due_at: due_at(&transition.state),
                event: GateEventRecord {
                    stage_id: Some(id.clone()),
                    subject: url_name.to_string(),
                    kind: "staged".into(),
                    actor_id: principal.publisher.is_none().then_some(principal.user.id),
                    actor_name: Some(stager.name.clone()),
                    at: now,
                    sha512_hex: Some(publish.digests.sha512_hex()),
                    factor: None,
                    detail: json!({ "version": publish.version.to_string(), "tag": publish.tag.to_string(), "policy": policy }),
                },
                now,
            };
            match self.releases.create_stage(stage).await {
                Ok(()) => {
                    self.cache.invalidate(url_name.as_str());
                    tracing::info!(package.name = %url_name, package.version = %publish.version, stage.id = %id, actor.name = %stager.name, "staged");
                    return Ok(id);
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::VersionExists(v)) => return Err(RegistryError::VersionExists(v)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(format!(
            "`{url_name}` is being changed by other requests right now: stage again"
        )))
    }

    /// A stage the principal may see: only maintainers of its package; to anyone else it does
    /// not exist.
    async fn visible_stage(&self, principal: &Principal, id: &str) -> Result<StageRecord> {
        let missing =
            || RegistryError::NotFound(format!("there is no staged release `{id}` you can see"));
        let stage = self.releases.stage(id).await?.ok_or_else(missing)?;
        let state = self
            .packages
            .package(&stage.package)
            .await?
            .ok_or_else(missing)?;
        if principal.is_maintainer(&state) {
            Ok(stage)
        } else {
            Err(missing())
        }
    }

    fn view(stage: &StageRecord, state: &ReleaseState) -> StageView {
        let release = state.release();
        let approvals = state.approvals();
        let mut item = json!({
            "id": stage.id,
            "packageName": stage.package,
            "version": stage.version,
            "tag": stage.tag,
            "createdAt": format_time(stage.created_at),
            "actor": release.stager.name,
            "actorType": if release.stager.is_user() { "user" } else { "ci" },
            "shasum": stage.shasum,
            "integrity": stage.integrity,
            "state": state.kind().to_string(),
            "approvals": format!("{} of {}", approvals.len(), release.policy.approvals),
            "policy": describe_policy(&release.policy),
            "expiresAt": format_time(release.expires_at),
        });
        if !approvals.is_empty() {
            let by: Vec<String> = approvals
                .iter()
                .map(|a| format!("{} ({})", a.approver.name, a.factor))
                .collect();
            item["approvedBy"] = json!(by.join(", "));
        }
        match state {
            ReleaseState::CoolingOff { until, .. } => {
                item["coolingOffUntil"] = json!(format_time(*until))
            }
            ReleaseState::Live { at, expedited, .. } => {
                item["liveAt"] = json!(format_time(*at));
                if *expedited {
                    item["expedited"] = json!("yes");
                }
            }
            ReleaseState::Rejected {
                actor, reason, at, ..
            } => {
                item["rejectedBy"] = json!(actor.name);
                item["rejectedAt"] = json!(format_time(*at));
                if let Some(reason) = reason {
                    item["reason"] = json!(reason);
                }
            }
            ReleaseState::Staged { .. } | ReleaseState::Expired { .. } => {}
        }
        StageView(item)
    }

    /// `GET /-/stage?page=&perPage=&package=`.
    pub async fn list_stages(
        &self,
        principal: Option<&Principal>,
        package: Option<&str>,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<StageView>, u64)> {
        let principal = require_principal(principal)?;
        if let Some(name) = package {
            PackageName::parse(name)?;
        }
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let (stages, total) = self
            .releases
            .stages_for_maintainer(
                principal.user.id,
                package,
                page.saturating_mul(per_page),
                per_page,
            )
            .await?;
        let views = stages
            .iter()
            .map(|s| Ok(Self::view(s, &state_of(s)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((views, total))
    }

    /// `GET /-/stage/{id}`.
    pub async fn view_stage(&self, principal: Option<&Principal>, id: &str) -> Result<StageView> {
        let principal = require_principal(principal)?;
        let stage = self.visible_stage(principal, id).await?;
        Ok(Self::view(&stage, &state_of(&stage)?))
    }

    /// `GET /-/stage/{id}/tarball` (`npm stage download`): maintainers only.
    pub async fn stage_tarball(
        &self,
        principal: Option<&Principal>,
        id: &str,
    ) -> Result<TarballStream> {
        let principal = require_principal(principal)?;
        let stage = self.visible_stage(principal, id).await?;
        let (size, stream) = self.blobs.get(&stage.sha512_hex).await?.ok_or_else(|| {
            RegistryError::NotFound(format!("the tarball of stage `{id}` is missing"))
        })?;
        use futures::TryStreamExt;
        Ok(TarballStream {
            size,
            sha512_hex: stage.sha512_hex.clone(),
            stream: Box::pin(stream.map_err(std::io::Error::other)),
        })
    }

    /// A stage the principal may approve or reject: visible to them, and their token may write
    /// (not read-only, and a package-limited token must cover the package).
    async fn decidable_stage(&self, principal: &Principal, id: &str) -> Result<StageRecord> {
        principal.require_write()?;
        let stage = self.visible_stage(principal, id).await?;
        principal.require_token_covers(&PackageName::parse(&stage.package)?)?;
        Ok(stage)
    }

    /// `POST /-/stage/{id}/approve`: a maintainer approves with a fresh second factor.
    pub async fn approve_stage(
        &self,
        principal: Option<&Principal>,
        id: &str,
    ) -> Result<StageView> {
        let principal = require_principal(principal)?;
        let stage = self.decidable_stage(principal, id).await?;
        let factor = self
            .verify_second_factor(&principal.user, principal.otp.as_deref())
            .await?;
        let approver = actor_of(principal);
        self.advance_stage(
            &stage.id,
            |_| {
                Ok(GateEvent::Approve {
                    approver: approver.clone(),
                    factor,
                    at: self.now(),
                })
            },
            Some(principal),
        )
        .await
    }

    /// `DELETE /-/stage/{id}`: any maintainer rejects (vetoes) with a fresh second factor.
    pub async fn reject_stage(
        &self,
        principal: Option<&Principal>,
        id: &str,
        reason: Option<String>,
    ) -> Result<StageView> {
        let principal = require_principal(principal)?;
        let stage = self.decidable_stage(principal, id).await?;
        let factor = self
            .verify_second_factor(&principal.user, principal.otp.as_deref())
            .await?;
        let actor = actor_of(principal);
        tracing::info!(stage.id = %id, actor.name = %principal.user.name, factor = %factor, "stage rejected");
        self.advance_stage(
            &stage.id,
            |_| {
                Ok(GateEvent::Reject {
                    actor: actor.clone(),
                    reason: reason.clone(),
                    at: self.now(),
                })
            },
            Some(principal),
        )
        .await
    }

    /// Applies the event `make` builds from the current state, persists the transition, and
    /// makes the version live when the gate says so — after checking that the stored bytes
    /// still hash to the approved digest.
    async fn advance_stage(
        &self,
        id: &str,
        make: impl Fn(&ReleaseState) -> Result<GateEvent>,
        principal: Option<&Principal>,
    ) -> Result<StageView> {
        for _ in 0..STAGE_ATTEMPTS {
            let stage = self.releases.stage(id).await?.ok_or_else(|| {
                RegistryError::NotFound(format!("there is no staged release `{id}`"))
            })?;
            let _serialized = self.locks.lock(&stage.package).await;
            let state = state_of(&stage)?;
            let event = make(&state)?;
            let transition = apply(Some(&state), &event).map_err(refused)?;
            let mut promote = None;
            for effect in &transition.effects {
                if let Effect::GoLive { tarball_sha512 } = effect {
                    // An unpublished package stays unpublished: its pending releases are
                    // rejected by the unpublish, and one racing it must not bring it back.
                    if self
                        .packages
                        .package(&stage.package)
                        .await?
                        .is_none_or(|p| p.unpublished_at.is_some())
                    {
                        return Err(RegistryError::Conflict(format!(
                            "`{}` was unpublished; its staged release `{}` cannot go live: reject it",
                            stage.package, stage.id
                        )));
                    }
                    self.check_blob(&stage, tarball_sha512).await?;
                    let (description, keywords) = crate::publish::search_fields(&stage.manifest);
                    let at = match &transition.state {
                        ReleaseState::Live { at, .. } => *at,
                        _ => event.at(),
                    };
                    promote = Some(Promotion {
                        manifest: self.live_manifest(&stage, &transition.state).await?,
                        description,
                        keywords,
                        at,
                        signature: self.sign_version(
                            &stage.package,
                            &stage.version,
                            &stage.integrity,
                        )?,
                    });
                }
            }
            let factor = match &event {
                GateEvent::Approve { factor, .. } => Some(factor.to_string()),
                _ => None,
            };
            let update = StageUpdate {
                id: stage.id.clone(),
                expected_seq: stage.seq,
                state_kind: state_kind_name(&transition.state),
                state: serde_json::to_value(&transition.state)
                    .map_err(|e| RegistryError::BadRequest(e.to_string()))?,
                due_at: due_at(&transition.state),
                event: GateEventRecord {
                    stage_id: Some(stage.id.clone()),
                    subject: stage.package.clone(),
                    kind: format!("{:?}", event.kind()).to_lowercase(),
                    actor_id: principal.map(|p| p.user.id),
                    actor_name: principal.map(|p| p.user.name.clone()),
                    at: event.at(),
                    sha512_hex: Some(stage.sha512_hex.clone()),
                    factor,
                    detail: json!({ "version": stage.version, "state": state_kind_name(&transition.state) }),
                },
                promote,
            };
            match self.releases.update_stage(update).await {
                Ok(()) => {
                    self.cache.invalidate(&stage.package);
                    tracing::info!(stage.id = %stage.id, package.name = %stage.package, package.version = %stage.version, state = %transition.state.kind(), "stage advanced");
                    return Ok(Self::view(&stage, &transition.state));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(format!(
            "stage `{id}` is being changed by other requests right now: try again"
        )))
    }

    /// The version object a release goes live with: as staged, with `_npmUser` naming who
    /// staged it (or the trusted publisher that did) and the maintainer whose approval
    /// released it, in npm's shape for a staged publish (`_npmUser.approver`). pnpm's
    /// `trustPolicy: no-downgrade` ranks that above any other trust evidence, so a later
    /// version published without approval is refused by installers as a downgrade.
    async fn live_manifest(
        &self,
        stage: &StageRecord,
        state: &ReleaseState,
    ) -> Result<serde_json::Map<String, Value>> {
        let mut manifest = stage.manifest.clone();
        let approval = match state {
            ReleaseState::Live { approvals, .. } => approvals.last(),
            _ => None,
        };
        let Some(approval) = approval else {
            return Ok(manifest);
        };
        // Approvers are users, recorded by name.
        let mut approver = json!({ "name": approval.approver.name });
        if let Some(user) = self
            .accounts
            .user_by_name(approval.approver.id.as_str())
            .await?
        {
            approver["email"] = json!(user.email);
        }
        let npm_user = manifest
            .entry("_npmUser")
            .or_insert_with(|| json!({ "name": stage.stager.name, "email": stage.stager.email }));
        if let Some(npm_user) = npm_user.as_object_mut() {
            npm_user.insert("approver".into(), approver);
        }
        Ok(manifest)
    }

    /// The bytes about to go live must be the ones that were staged and approved.
    async fn check_blob(&self, stage: &StageRecord, approved: &TarballSha512) -> Result<()> {
        let swapped = || {
            tracing::error!(stage.id = %stage.id, "stored tarball does not match the approved digest");
            RegistryError::Conflict(format!(
                "the stored tarball of `{}@{}` no longer matches what was approved; it will not go live",
                stage.package, stage.version
            ))
        };
        if sha512_of(&stage.sha512_hex, &stage.id)? != *approved {
            return Err(swapped());
        }
        let (_, mut stream) = self
            .blobs
            .get(&stage.sha512_hex)
            .await?
            .ok_or_else(swapped)?;
        let mut hasher = Sha512::new();
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| RegistryError::Blob(airlock_store::BlobError::Backend(e)))?;
            hasher.update(&chunk);
        }
        let actual: [u8; 64] = hasher.finalize().into();
        if TarballSha512::from_bytes(actual) == *approved {
            Ok(())
        } else {
            Err(swapped())
        }
    }

    /// The background job: expires stages past their time and promotes releases whose
    /// cooling-off is over. Returns how many stages changed.
    pub async fn run_due(&self) -> Result<usize> {
        let now = self.now();
        let mut changed = 0;
        for stage in self.releases.due_stages(now).await? {
            let state = state_of(&stage)?;
            let Some(_) = due(&state, now) else { continue };
            let result = self
                .advance_stage(
                    &stage.id,
                    |current| {
                        due(current, now).ok_or_else(|| {
                            RegistryError::Conflict("nothing is due any more".into())
                        })
                    },
                    None,
                )
                .await;
            match result {
                Ok(_) => changed += 1,
                Err(e) => {
                    tracing::warn!(stage.id = %stage.id, error = %e, "could not advance a due stage")
                }
            }
        }
        Ok(changed)
    }

    /// Who may change the policy of `subject`: a package's maintainers, a scope's owners, the
    /// registry's admins.
    async fn require_policy_owner(&self, principal: &Principal, subject: &str) -> Result<()> {
        if self.owns_subject(principal, subject).await? {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "you may not change the release policy of `{subject}`: packages by their maintainers, scopes by their owners, `registry` by administrators"
            )))
        }
    }

    /// Whether `principal` owns `subject` (`registry`, `@scope` or a package name): a package's
    /// maintainers, a scope's owners (and admins), the registry's admins. A package that does
    /// not exist is `NotFound`.
    pub(crate) async fn owns_subject(&self, principal: &Principal, subject: &str) -> Result<bool> {
        Ok(if subject == REGISTRY_SUBJECT {
            principal.user.is_admin
        } else if let Some(scope) = subject.strip_prefix('@').filter(|s| !s.contains('/')) {
            principal.user.is_admin
                || self
                    .packages
                    .scope_owners(scope)
                    .await?
                    .iter()
                    .any(|o| o.user_id == principal.user.id)
        } else {
            let name = PackageName::parse(subject)?;
            match self.packages.package(name.as_str()).await? {
                Some(state) => principal.is_maintainer(&state),
                None => {
                    return Err(RegistryError::NotFound(format!(
                        "package `{name}` was not found"
                    )));
                }
            }
        })
    }

    /// `GET /-/airlock/v1/policy/{subject}`: the layer and, for packages, the effective policy.
    pub async fn show_policy(&self, principal: Option<&Principal>, subject: &str) -> Result<Value> {
        let principal = require_principal(principal)?;
        let patch = self
            .releases
            .policy(subject)
            .await?
            .unwrap_or_else(|| json!({}));
        let mut out = json!({ "subject": subject, "layer": patch });
        let effective = if subject == REGISTRY_SUBJECT || subject.starts_with('@') {
            let parse =
                |v: Option<Value>| v.and_then(|v| serde_json::from_value::<PolicyPatch>(v).ok());
            let layers = PolicyLayers {
                registry: parse(self.releases.policy(REGISTRY_SUBJECT).await?),
                scope: if subject == REGISTRY_SUBJECT {
                    None
                } else {
                    parse(Some(patch.clone()))
                },
                package: None,
            };
            layers
                .effective()
                .map_err(|e| RegistryError::BadRequest(e.to_string()))?
        } else {
            let name = PackageName::parse(subject)?;
            if let Some(state) = self.packages.package(name.as_str()).await?
                && state.access == "restricted"
                && !principal.is_maintainer(&state)
            {
                return Err(crate::read::not_found(name.as_str()));
            }
            self.effective_policy(&name).await?
        };
        let mut effective_json = serde_json::to_value(&effective).unwrap_or(Value::Null);
        // Stored states omit these at their defaults; show them here.
        effective_json["require_provenance"] = json!(effective.require_provenance);
        effective_json["downgrade_protection"] = json!(effective.downgrade_protection);
        out["effective"] = effective_json;
        Ok(out)
    }

    /// `PUT /-/airlock/v1/policy/{subject}`: replaces a policy layer. Needs the subject's owner
    /// with a fresh second factor; recorded as a gate event.
    pub async fn set_policy(
        &self,
        principal: Option<&Principal>,
        subject: &str,
        body: &[u8],
    ) -> Result<Value> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        let patch: PolicyPatch = serde_json::from_slice(body).map_err(|e| {
            RegistryError::BadRequest(format!(
                "the policy is not valid ({e}): send JSON with any of publish (\"direct\"|\"staged\"), approvals, cooling_off_seconds, expedite, stage_ttl_seconds, require_provenance, downgrade_protection, provenance_change ({{allow_missing, expected_repository, expected_workflow}})"
            ))
        })?;
        patch
            .validate()
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        if patch.provenance_change.is_some()
            && (subject == REGISTRY_SUBJECT || subject.starts_with('@') && !subject.contains('/'))
        {
            return Err(RegistryError::BadRequest(format!(
                "a provenance change is declared for one package, not for `{subject}`: set provenance_change on the package's policy"
            )));
        }
        self.require_policy_owner(principal, subject).await?;
        let factor = self
            .verify_second_factor(&principal.user, principal.otp.as_deref())
            .await?;
        let value =
            serde_json::to_value(&patch).map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        self.releases
            .set_policy(
                subject,
                value,
                GateEventRecord {
                    stage_id: None,
                    subject: subject.to_owned(),
                    kind: "policy_changed".into(),
                    actor_id: Some(principal.user.id),
                    actor_name: Some(principal.user.name.clone()),
                    at: self.now(),
                    sha512_hex: None,
                    factor: Some(factor.to_string()),
                    detail: serde_json::to_value(&patch).unwrap_or(Value::Null),
                },
            )
            .await?;
        tracing::info!(policy.subject = subject, actor.name = %principal.user.name, "release policy changed");
        self.show_policy(Some(principal), subject).await
    }

    /// Rejects every pending release of a package that is being unpublished, so nothing
    /// staged or cooling off brings it back later.
    pub(crate) async fn reject_pending_stages(
        &self,
        principal: &Principal,
        name: &PackageName,
    ) -> Result<()> {
        let (stages, _) = self
            .releases
            .stages_for_maintainer(principal.user.id, Some(name.as_str()), 0, u64::MAX >> 1)
            .await?;
        let actor = actor_of(principal);
        for stage in stages {
            if state_of(&stage)?.is_terminal() {
                continue;
            }
            let reason = Some("the package was unpublished".to_owned());
            self.advance_stage(
                &stage.id,
                |_| {
                    Ok(GateEvent::Reject {
                        actor: actor.clone(),
                        reason: reason.clone(),
                        at: self.now(),
                    })
                },
                Some(principal),
            )
            .await?;
        }
        Ok(())
    }

    /// Gate events of a stage, oldest first (for audits and the transparency log).
    pub async fn stage_events(
        &self,
        principal: Option<&Principal>,
        id: &str,
    ) -> Result<Vec<GateEventRecord>> {
        let principal = require_principal(principal)?;
        self.visible_stage(principal, id).await?;
        Ok(self.releases.gate_events(id).await?)
    }
}
