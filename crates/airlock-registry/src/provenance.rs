//! Provenance: the Sigstore bundle npm attaches to a publish (`NAME-VERSION.sigstore`,
//! protocol §3.1), verified offline before anything is stored, tied to the package's trusted
//! publisher and to the CI run that published, compared with the newest live version's
//! (downgrade protection), and served back at `/-/npm/v1/attestations/NAME@VERSION` (§6).

use airlock_gate::{ProvenanceIdentity, ReleasePolicy, RiskSignal, provenance_signals};
use airlock_npm::{PackageName, Provider, TrustRule, VerifiedPublish, parse_version};
use airlock_store::{NewProvenance, PackageState, StoreError, VersionRecord};
use airlock_trust::sigstore::{
    Artifact, CertificateIdentity, SignerPolicy, SigstoreError, TrustedRoots, VerifiedBundle,
};
use serde_json::{Value, json};

use crate::Registry;
use crate::auth::Principal;
use crate::error::{RegistryError, Result};
use crate::trusted_publishing::PublisherGrant;

/// Predicate types npm writes: SLSA provenance v1 (GitHub Actions) and v0.2 (GitLab).
const SLSA_PREDICATE_PREFIX: &str = "https://slsa.dev/provenance/";

/// Why a publish's provenance was refused. Each message names what was expected and what the
/// bundle (or the release) carries, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceRefusal {
    /// The bundle did not verify: signature, certificate chain, SCT, log proof, or subject.
    #[error(
        "the provenance bundle attached to `{package}` was refused: {source} (attach the bundle `npm publish --provenance` made for this very tarball)"
    )]
    Invalid {
        package: String,
        #[source]
        source: SigstoreError,
    },
    /// The bundle verified but is not SLSA provenance.
    #[error(
        "the bundle attached to `{package}` is a `{predicate_type}` attestation, not SLSA build provenance (https://slsa.dev/provenance/v1 or v0.2)"
    )]
    NotProvenance {
        package: String,
        predicate_type: String,
    },
    /// The certificate's identity is not the package's trusted publisher.
    #[error(
        "the provenance of `{package}` was not built by its trusted publisher: {what} must be `{expected}`, the signing certificate says `{actual}` (a maintainer can see the publisher with `npm trust list {package}`)"
    )]
    NotTrustedPublisher {
        package: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// The provenance names another CI run than the one whose credential published.
    #[error(
        "the provenance of `{package}` was built by another CI run than the one publishing it: {what} must be `{expected}` (the run the publishing credential was issued to), the signing certificate says `{actual}`"
    )]
    OtherCiRun {
        package: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// The policy requires provenance and the publish has none.
    #[error(
        "`{package}` requires provenance: publish from CI with `npm publish --provenance` (or `npm stage publish --provenance`)"
    )]
    Required { package: String },
    /// The newest live version had provenance; this one has none.
    #[error(
        "`{package}@{previous_version}` was published with provenance from {previous}, but this version has none, which is how a publish with a stolen token looks. Publish from that workflow with `npm publish --provenance`; if dropping provenance is intended, a maintainer must first declare it with `airlock policy set {package} --allow-missing-provenance` (needs a second factor)"
    )]
    Downgrade {
        package: String,
        previous_version: String,
        previous: String,
    },
    /// The provenance comes from another repository or workflow than the newest live version's.
    #[error(
        "`{package}@{previous_version}` was built by {previous}, but this version's provenance names {current}. If the package really moved, a maintainer must first declare it with `airlock policy set {package} --expected-repository {repository} --expected-workflow {workflow}` (needs a second factor)"
    )]
    IdentityChanged {
        package: String,
        previous_version: String,
        previous: String,
        current: String,
        repository: String,
        workflow: String,
    },
}

/// What the registry established about a verified bundle: stored with the version as its
/// summary, and what downgrade protection compares.
#[derive(Clone, Debug)]
pub(crate) struct VerifiedProvenance {
    pub(crate) stored: NewProvenance,
    pub(crate) identity: ProvenanceIdentity,
}

/// `https://github.com/acme/widget` → `acme/widget`: the path of a repository URL.
fn repository_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split_once('/')
        .map_or("", |(_, path)| path)
        .trim_end_matches('/')
}

/// The workflow path inside the repository, without its ref: from the build config URI
/// `https://github.com/acme/widget/.github/workflows/release.yml@refs/tags/v1` (GitHub) or
/// `https://gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main` (GitLab).
fn workflow_path(build_config_uri: &str, repository_uri: Option<&str>) -> String {
    let without_ref = build_config_uri
        .rsplit_once('@')
        .map_or(build_config_uri, |(path, _)| path);
    let rest = without_ref
        .split_once("://")
        .map_or(without_ref, |(_, rest)| rest);
    if let Some((_, file)) = rest.split_once("//") {
        return file.to_owned();
    }
    if let Some(repository) = repository_uri
        && let Some(path) = without_ref.strip_prefix(repository.trim_end_matches('/'))
    {
        return path.trim_start_matches('/').to_owned();
    }
    without_ref.to_owned()
}

fn identity_of(certificate: &CertificateIdentity) -> ProvenanceIdentity {
    let repository = certificate
        .source_repository_uri
        .clone()
        .unwrap_or_else(|| certificate.san.clone());
    let workflow = certificate
        .build_config_uri
        .as_deref()
        .map(|uri| workflow_path(uri, certificate.source_repository_uri.as_deref()))
        .unwrap_or_default();
    ProvenanceIdentity {
        repository,
        repository_id: certificate.source_repository_id.clone(),
        workflow,
    }
}

/// The identity recorded in a stored summary.
fn identity_of_summary(summary: &Value) -> Option<ProvenanceIdentity> {
    Some(ProvenanceIdentity {
        repository: summary.get("repository")?.as_str()?.to_owned(),
        repository_id: summary
            .get("repositoryId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        workflow: summary
            .get("workflow")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

fn describe(identity: &ProvenanceIdentity) -> String {
    format!("{} ({})", identity.repository, identity.workflow)
}

fn summary_of(
    verified: &VerifiedBundle,
    certificate: &CertificateIdentity,
    predicate_type: &str,
) -> Value {
    let identity = identity_of(certificate);
    json!({
        "predicateType": predicate_type,
        "issuer": certificate.issuer,
        "repository": identity.repository,
        "repositoryId": certificate.source_repository_id,
        "repositoryOwnerId": certificate.source_repository_owner_id,
        "workflow": identity.workflow,
        "buildConfig": certificate.build_config_uri,
        "ref": certificate.source_repository_ref,
        "commit": certificate.source_repository_digest,
        "run": certificate.run_invocation_uri,
        "integratedTime": verified.integrated_time().map(airlock_store::format_time),
        "logIndex": verified.log_entries().first().map(|entry| entry.log_index),
        "trustedRoot": verified.trusted_root(),
        "mediaType": verified.media_type(),
    })
}

/// Compares one claim; `Err((what, expected, actual))` on a mismatch.
type Mismatch = (&'static str, String, String);

fn expect(
    what: &'static str,
    expected: &str,
    actual: Option<&str>,
    same: impl Fn(&str, &str) -> bool,
) -> std::result::Result<(), Mismatch> {
    match actual {
        Some(actual) if same(expected, actual) => Ok(()),
        actual => Err((
            what,
            expected.to_owned(),
            actual.unwrap_or("(nothing)").to_owned(),
        )),
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn eq_exact(a: &str, b: &str) -> bool {
    a == b
}

/// Does the certificate come from the CI identity a trust configuration names?
fn match_trust_config(
    rule: &TrustRule,
    issuer: &str,
    pinned: Option<&Value>,
    certificate: &CertificateIdentity,
) -> std::result::Result<(), Mismatch> {
    expect(
        "the OIDC issuer",
        issuer,
        certificate.issuer.as_deref(),
        |a, b| a.trim_end_matches('/') == b.trim_end_matches('/'),
    )?;
    let repository = certificate
        .source_repository_uri
        .as_deref()
        .map(repository_path);
    let identity = identity_of(certificate);
    let pin = |key: &str| pinned.and_then(|p| p.get(key)).and_then(Value::as_str);
    match rule {
        TrustRule::Github {
            repository: expected_repository,
            workflow_file,
            repository_id,
            repository_owner_id,
            ..
        } => {
            expect(
                "the source repository",
                expected_repository,
                repository,
                eq_ignore_case,
            )?;
            expect(
                "the workflow",
                &format!(".github/workflows/{workflow_file}"),
                Some(&identity.workflow),
                eq_ignore_case,
            )?;
            if let Some(id) = repository_id.as_deref().or(pin("repository_id")) {
                expect(
                    "the repository id",
                    id,
                    certificate.source_repository_id.as_deref(),
                    eq_exact,
                )?;
            }
            if let Some(id) = repository_owner_id
                .as_deref()
                .or(pin("repository_owner_id"))
            {
                expect(
                    "the repository owner id",
                    id,
                    certificate.source_repository_owner_id.as_deref(),
                    eq_exact,
                )?;
            }
        }
        TrustRule::Gitlab {
            project_path,
            config_file,
            project_id,
            namespace_id,
            ..
        } => {
            expect("the project", project_path, repository, eq_ignore_case)?;
            expect(
                "the CI config file",
                config_file,
                Some(&identity.workflow),
                eq_exact,
            )?;
            if let Some(id) = project_id.as_deref().or(pin("project_id")) {
                expect(
                    "the project id",
                    id,
                    certificate.source_repository_id.as_deref(),
                    eq_exact,
                )?;
            }
            if let Some(id) = namespace_id.as_deref().or(pin("namespace_id")) {
                expect(
                    "the namespace id",
                    id,
                    certificate.source_repository_owner_id.as_deref(),
                    eq_exact,
                )?;
            }
        }
        TrustRule::Circleci { vcs_origin, .. } => {
            let origin = certificate
                .source_repository_uri
                .as_deref()
                .map(|uri| uri.split_once("://").map_or(uri, |(_, rest)| rest));
            expect("the VCS origin", vcs_origin, origin, eq_ignore_case)?;
        }
    }
    Ok(())
}

/// Does the certificate name the CI run a trusted-publishing credential was issued to?
fn match_ci_run(
    grant: &PublisherGrant,
    certificate: &CertificateIdentity,
) -> std::result::Result<(), Mismatch> {
    let text = |key: &str| grant.identity.get(key).and_then(Value::as_str);
    let repository = certificate
        .source_repository_uri
        .as_deref()
        .map(repository_path);
    let identity = identity_of(certificate);
    match grant.provider {
        Provider::Github => {
            if let Some(expected) = text("repository") {
                expect(
                    "the source repository",
                    expected,
                    repository,
                    eq_ignore_case,
                )?;
            }
            if let Some(expected) = text("repository_id") {
                expect(
                    "the repository id",
                    expected,
                    certificate.source_repository_id.as_deref(),
                    eq_exact,
                )?;
            }
            if let (Some(workflow_ref), Some(repository)) =
                (text("workflow_ref"), text("repository"))
            {
                let path = workflow_ref
                    .split_once('@')
                    .map_or(workflow_ref, |(p, _)| p);
                let expected = path
                    .strip_prefix(repository)
                    .map_or(path, |rest| rest.trim_start_matches('/'));
                expect(
                    "the workflow",
                    expected,
                    Some(&identity.workflow),
                    eq_ignore_case,
                )?;
            }
        }
        Provider::Gitlab => {
            if let Some(expected) = text("project_path") {
                expect("the project", expected, repository, eq_ignore_case)?;
            }
            if let Some(expected) = text("project_id") {
                expect(
                    "the project id",
                    expected,
                    certificate.source_repository_id.as_deref(),
                    eq_exact,
                )?;
            }
            if let Some(uri) = text("ci_config_ref_uri") {
                expect(
                    "the CI config file",
                    &workflow_path(uri, None),
                    Some(&identity.workflow),
                    eq_exact,
                )?;
            }
        }
        // CircleCI runs carry no repository claims to compare beyond the trust configuration.
        Provider::Circleci => {}
    }
    Ok(())
}

/// The newest live version (the last to go live), if any.
fn newest_live(state: Option<&PackageState>) -> Option<&VersionRecord> {
    state?
        .versions
        .iter()
        .filter(|v| v.is_live())
        .max_by_key(|v| v.published_at)
}

impl Registry {
    /// Verifies the publish's provenance bundle, if it has one: fully and offline against the
    /// configured trusted roots, subject `pkg:npm/NAME@VERSION` with this tarball's sha512,
    /// signed by the package's trusted publisher (when it has one) and by the CI run that
    /// publishes (when the principal is a trusted-publishing credential).
    pub(crate) async fn verify_provenance(
        &self,
        principal: &Principal,
        publish: &VerifiedPublish,
    ) -> Result<Option<VerifiedProvenance>> {
        let Some(attachment) = &publish.provenance else {
            return Ok(None);
        };
        let package = publish.name.to_string();
        let version = publish.version.to_string();
        let invalid = |source| {
            RegistryError::from(ProvenanceRefusal::Invalid {
                package: format!("{package}@{version}"),
                source,
            })
        };
        let sha512 = publish.digests.sha512;
        let verified = self
            .provenance_roots
            .verify(
                attachment.bundle_json.as_bytes(),
                Artifact::Sha512(sha512),
                &SignerPolicy::AnyCertificate,
            )
            .map_err(invalid)?;
        let statement = verified
            .check_npm_subject(&package, &version, &sha512)
            .map_err(invalid)?;
        let predicate_type = statement.predicate_type.clone();
        if !predicate_type.starts_with(SLSA_PREDICATE_PREFIX) {
            return Err(RegistryError::from(ProvenanceRefusal::NotProvenance {
                package,
                predicate_type,
            }));
        }
        let certificate = verified
            .certificate()
            .ok_or_else(|| invalid(SigstoreError::KeyWhereCertificateExpected))?;

        if let Some((rule, issuer, pinned)) = self.trust_rule_of(&publish.name).await? {
            match_trust_config(&rule, &issuer, pinned.as_ref(), certificate).map_err(
                |(what, expected, actual)| {
                    RegistryError::from(ProvenanceRefusal::NotTrustedPublisher {
                        package: package.clone(),
                        what,
                        expected,
                        actual,
                    })
                },
            )?;
        }
        if let Some(grant) = &principal.publisher {
            match_ci_run(grant, certificate).map_err(|(what, expected, actual)| {
                RegistryError::from(ProvenanceRefusal::OtherCiRun {
                    package: package.clone(),
                    what,
                    expected,
                    actual,
                })
            })?;
        }
        let summary = summary_of(&verified, certificate, &predicate_type);
        tracing::info!(package.name = %package, package.version = %version, provenance.repository = ?certificate.source_repository_uri, provenance.workflow = ?certificate.build_config_uri, "provenance verified");
        Ok(Some(VerifiedProvenance {
            identity: identity_of(certificate),
            stored: NewProvenance {
                predicate_type,
                bundle: attachment.bundle_json.clone(),
                summary,
            },
        }))
    }

    /// The package's trust configuration, if trusted publishing is on and it has one.
    async fn trust_rule_of(
        &self,
        name: &PackageName,
    ) -> Result<Option<(TrustRule, String, Option<Value>)>> {
        let Some(trusted) = self.trusted_publishing.as_deref() else {
            return Ok(None);
        };
        let Some(config) = trusted
            .store()
            .trust_configs(name.as_str())
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt(format!("trust config {}", config.id));
        let provider = Provider::parse(&config.provider).ok_or_else(corrupt)?;
        let claims = config.claims.as_object().ok_or_else(corrupt)?;
        let rule = TrustRule::from_stored(provider, claims).map_err(|_| corrupt())?;
        Ok(Some((rule, config.issuer, config.pinned_ids)))
    }

    /// The provenance policy for a release about to be stored on `state`: refuses a missing
    /// bundle where the policy requires one, and returns the risk signals of a downgrade
    /// against the newest live version (none when downgrade protection is off). The caller
    /// refuses them (a direct publish) or escalates the release (a stage).
    pub(crate) fn provenance_risks(
        &self,
        name: &PackageName,
        policy: &ReleasePolicy,
        state: Option<&PackageState>,
        provenance: Option<&VerifiedProvenance>,
    ) -> Result<Vec<(RiskSignal, ProvenanceRefusal)>> {
        if policy.require_provenance && provenance.is_none() {
            return Err(RegistryError::from(ProvenanceRefusal::Required {
                package: name.to_string(),
            }));
        }
        if !policy.downgrade_protection {
            return Ok(Vec::new());
        }
        let Some(previous) = newest_live(state) else {
            return Ok(Vec::new());
        };
        let previous_identity = previous
            .provenance
            .as_ref()
            .and_then(|p| identity_of_summary(&p.summary));
        let current = provenance.map(|p| &p.identity);
        let signals = provenance_signals(
            previous_identity.as_ref(),
            current,
            policy.provenance_change.as_ref(),
        );
        let Some(previous_identity) = previous_identity else {
            return Ok(Vec::new());
        };
        Ok(signals
            .into_iter()
            .map(|signal| {
                let refusal = match current {
                    None => ProvenanceRefusal::Downgrade {
                        package: name.to_string(),
                        previous_version: previous.version.clone(),
                        previous: describe(&previous_identity),
                    },
                    Some(current) => ProvenanceRefusal::IdentityChanged {
                        package: name.to_string(),
                        previous_version: previous.version.clone(),
                        previous: describe(&previous_identity),
                        current: describe(current),
                        repository: repository_path(&current.repository).to_owned(),
                        workflow: current
                            .workflow
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    },
                };
                (signal, refusal)
            })
            .collect())
    }

    /// `GET /-/npm/v1/attestations/{name}@{version}`: the provenance bundle of a live version,
    /// in npm's shape (protocol §6).
    pub async fn attestations(
        &self,
        principal: Option<&Principal>,
        name: &str,
        version: &str,
    ) -> Result<Value> {
        let name = PackageName::parse(name)?;
        let version = parse_version(version)?.to_string();
        let state = self.load_readable(principal, &name).await?;
        let missing = || {
            RegistryError::NotFound(format!(
                "`{name}@{version}` has no attestations: it was published without provenance"
            ))
        };
        if !state
            .versions
            .iter()
            .any(|v| v.version == version && v.is_live())
        {
            return Err(RegistryError::NotFound(format!(
                "`{name}@{version}` was not found"
            )));
        }
        let record = self
            .packages
            .provenance(name.as_str(), &version)
            .await?
            .ok_or_else(missing)?;
        let bundle: Value = serde_json::from_str(&record.bundle)
            .map_err(|_| StoreError::Corrupt(format!("provenance bundle of {name}@{version}")))?;
        Ok(json!({
            "attestations": [{ "predicateType": record.predicate_type, "bundle": bundle }]
        }))
    }
}

/// Verifies with nothing but the embedded public-good root.
pub(crate) fn default_roots() -> std::result::Result<TrustedRoots, SigstoreError> {
    TrustedRoots::public_good()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_paths() {
        assert_eq!(
            workflow_path(
                "https://github.com/acme/widget/.github/workflows/release.yml@refs/tags/v1",
                Some("https://github.com/acme/widget")
            ),
            ".github/workflows/release.yml"
        );
        assert_eq!(
            workflow_path(
                "https://gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main",
                Some("https://gitlab.com/group/project")
            ),
            ".gitlab-ci.yml"
        );
        assert_eq!(
            workflow_path(
                "gitlab.com/group/project//ci/release.yml@refs/heads/main",
                None
            ),
            "ci/release.yml"
        );
        assert_eq!(
            repository_path("https://github.com/acme/widget"),
            "acme/widget"
        );
        assert_eq!(repository_path("https://gitlab.example/a/b/c/"), "a/b/c");
    }
}
