//! The CI identity a test certificate is issued to: a GitHub Actions workflow run, as Fulcio
//! records it in its certificate extensions and as npm records it in SLSA provenance.
//!
//! Facts used here (OIDs and value encodings) come from Fulcio's `docs/oid-info.md` and were
//! checked against the certificate of the sigstore-conformance bundle
//! `../shared/sigstore/conformance/happy-path-intoto-in-dsse-v3`.

use serde_json::{Value, json};

/// Fulcio's OID arc: extension `N` is `1.3.6.1.4.1.57264.1.N`.
pub const FULCIO_OID_ARC: &str = "1.3.6.1.4.1.57264.1";

/// GitHub Actions' OIDC issuer.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// One GitHub Actions workflow run: who a Fulcio certificate is issued to.
///
/// Build it with [`CiIdentity::github`] and adjust fields (they are public) for negative tests:
/// another repository, another numeric repository id, another workflow file, another ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiIdentity {
    /// The OIDC issuer (extension 1.1 and 1.8).
    pub issuer: String,
    /// `https://github.com`.
    pub server_url: String,
    /// `OWNER/REPO`.
    pub repository: String,
    /// GitHub's numeric repository id (extension 1.15).
    pub repository_id: u64,
    /// GitHub's numeric owner id (extension 1.17).
    pub repository_owner_id: u64,
    /// `.github/workflows/FILE.yml` in `repository`.
    pub workflow_path: String,
    /// The git ref the run built, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// The commit (40 hex), extensions 1.3, 1.10, 1.13, 1.19.
    pub sha: String,
    /// The event that triggered the run (`push`, `workflow_dispatch`, …).
    pub event_name: String,
    /// The workflow's `name:` (extension 1.4).
    pub workflow_name: String,
    pub run_id: u64,
    pub run_attempt: u32,
    /// `github-hosted` or `self-hosted` (extension 1.11).
    pub runner_environment: String,
    /// `public` or `private` (extension 1.22).
    pub repository_visibility: String,
    /// For a reusable workflow: the called workflow's `OWNER/REPO/.github/workflows/F.yml@REF`
    /// (GitHub's `job_workflow_ref`), which becomes the SAN and the build signer (1.9), while the
    /// caller's workflow stays the build config (1.18). `None`: the workflow signs for itself.
    pub job_workflow_ref: Option<String>,
}

impl CiIdentity {
    /// A `push` run of `.github/workflows/{workflow_file}` on `refs/heads/main` of `repository`
    /// (`OWNER/REPO`) on github.com, hosted runner, public repository.
    pub fn github(
        repository: &str,
        repository_id: u64,
        repository_owner_id: u64,
        workflow_file: &str,
    ) -> CiIdentity {
        CiIdentity {
            issuer: GITHUB_ACTIONS_ISSUER.to_owned(),
            server_url: "https://github.com".to_owned(),
            repository: repository.to_owned(),
            repository_id,
            repository_owner_id,
            workflow_path: format!(".github/workflows/{workflow_file}"),
            git_ref: "refs/heads/main".to_owned(),
            sha: "4c9f2f1d8e0b6a7c3d5e9f0a1b2c3d4e5f6a7b8c".to_owned(),
            event_name: "push".to_owned(),
            workflow_name: "publish".to_owned(),
            run_id: 9_876_543_210,
            run_attempt: 1,
            runner_environment: "github-hosted".to_owned(),
            repository_visibility: "public".to_owned(),
            job_workflow_ref: None,
        }
    }

    /// The owner part of `repository`.
    pub fn owner(&self) -> &str {
        self.repository
            .split_once('/')
            .map_or(self.repository.as_str(), |(owner, _)| owner)
    }

    /// `https://github.com/OWNER/REPO`.
    pub fn repository_uri(&self) -> String {
        format!("{}/{}", self.server_url, self.repository)
    }

    /// The caller workflow: `https://github.com/OWNER/REPO/.github/workflows/F.yml@REF`
    /// (extension 1.18, build config URI).
    pub fn build_config_uri(&self) -> String {
        format!(
            "{}/{}/{}@{}",
            self.server_url, self.repository, self.workflow_path, self.git_ref
        )
    }

    /// The certificate's SAN URI and build signer URI (1.9): the workflow that ran the job.
    pub fn san_uri(&self) -> String {
        match &self.job_workflow_ref {
            Some(job) => format!("{}/{job}", self.server_url),
            None => self.build_config_uri(),
        }
    }

    /// `https://github.com/OWNER/REPO/actions/runs/ID/attempts/N` (extension 1.21).
    pub fn run_invocation_uri(&self) -> String {
        format!(
            "{}/{}/actions/runs/{}/attempts/{}",
            self.server_url, self.repository, self.run_id, self.run_attempt
        )
    }

    /// Fulcio's certificate extensions for this run, in the order Fulcio writes them: OID arc
    /// under `1.3.6.1.4.1.57264.1` and the extension value bytes. Arcs 1–6 are the deprecated
    /// raw-string encoding; 8 and up hold a DER UTF8String.
    pub fn fulcio_extensions(&self) -> Vec<(u32, Vec<u8>)> {
        let raw = |s: &str| s.as_bytes().to_vec();
        let utf8 = |s: &str| der_utf8_string(s);
        let owner_uri = format!("{}/{}", self.server_url, self.owner());
        vec![
            (1, raw(&self.issuer)),
            (2, raw(&self.event_name)),
            (3, raw(&self.sha)),
            (4, raw(&self.workflow_name)),
            (5, raw(&self.repository)),
            (6, raw(&self.git_ref)),
            (8, utf8(&self.issuer)),
            (9, utf8(&self.san_uri())),
            (10, utf8(&self.sha)),
            (11, utf8(&self.runner_environment)),
            (12, utf8(&self.repository_uri())),
            (13, utf8(&self.sha)),
            (14, utf8(&self.git_ref)),
            (15, utf8(&self.repository_id.to_string())),
            (16, utf8(&owner_uri)),
            (17, utf8(&self.repository_owner_id.to_string())),
            (18, utf8(&self.build_config_uri())),
            (19, utf8(&self.sha)),
            (20, utf8(&self.event_name)),
            (21, utf8(&self.run_invocation_uri())),
            (22, utf8(&self.repository_visibility)),
        ]
    }

    /// The value of Fulcio extension `1.3.6.1.4.1.57264.1.{arc}` for this run, if Fulcio writes it.
    pub fn fulcio_extension(&self, arc: u32) -> Option<Vec<u8>> {
        self.fulcio_extensions()
            .into_iter()
            .find_map(|(a, value)| (a == arc).then_some(value))
    }

    /// The SLSA provenance v1 predicate npm writes for a GitHub Actions build (npm's
    /// `libnpmpublish/lib/provenance.js`, GitHub branch).
    pub fn slsa_v1_predicate(&self) -> Value {
        json!({
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": self.git_ref,
                        "repository": self.repository_uri(),
                        "path": self.workflow_path,
                    }
                },
                "internalParameters": {
                    "github": {
                        "event_name": self.event_name,
                        "repository_id": self.repository_id.to_string(),
                        "repository_owner_id": self.repository_owner_id.to_string(),
                        "runner_environment": self.runner_environment,
                    }
                },
                "resolvedDependencies": [{
                    "uri": format!("git+{}@{}", self.repository_uri(), self.git_ref),
                    "digest": { "gitCommit": self.sha },
                }],
            },
            "runDetails": {
                "builder": {
                    "id": format!("{}/actions/runner/{}", self.server_url, self.runner_environment),
                },
                "metadata": { "invocationId": self.run_invocation_uri() },
            },
        })
    }
}

/// DER `UTF8String` (tag 12) holding `s`.
pub fn der_utf8_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x0c];
    push_der_len(&mut out, s.len());
    out.extend_from_slice(s.as_bytes());
    out
}

fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// npm's package URL for `name@version` (npm-package-arg `toPurl`): the scope's `@` is written
/// `%40`, so `@scope/name` gives `pkg:npm/%40scope/name@1.0.0`.
pub fn npm_purl(name: &str, version: &str) -> String {
    let name = match name.strip_prefix('@') {
        Some(rest) => format!("%40{rest}"),
        None => name.to_owned(),
    };
    format!("pkg:npm/{name}@{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_escapes_the_scope_only() {
        assert_eq!(npm_purl("demo", "1.0.0"), "pkg:npm/demo@1.0.0");
        assert_eq!(
            npm_purl("@scope/name", "1.0.0-beta.1"),
            "pkg:npm/%40scope/name@1.0.0-beta.1"
        );
    }

    #[test]
    fn der_utf8_string_uses_long_lengths_past_127() {
        assert_eq!(der_utf8_string("ab"), vec![0x0c, 2, b'a', b'b']);
        let long = "x".repeat(200);
        let der = der_utf8_string(&long);
        assert_eq!(&der[..3], &[0x0c, 0x81, 200]);
        assert_eq!(der.len(), 203);
    }

    #[test]
    fn reusable_workflow_signs_while_caller_configures() {
        let mut id = CiIdentity::github("octo/app", 1, 2, "release.yml");
        assert_eq!(
            id.san_uri(),
            "https://github.com/octo/app/.github/workflows/release.yml@refs/heads/main"
        );
        id.job_workflow_ref = Some("octo/shared/.github/workflows/npm.yml@refs/tags/v1".into());
        assert_eq!(
            id.san_uri(),
            "https://github.com/octo/shared/.github/workflows/npm.yml@refs/tags/v1"
        );
        assert_eq!(
            id.build_config_uri(),
            "https://github.com/octo/app/.github/workflows/release.yml@refs/heads/main"
        );
    }
}
