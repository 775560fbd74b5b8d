//! Trusted-publisher configurations as `npm trust github|gitlab|circleci` sends them
//! (protocol §5.1), checked into a typed [`TrustRule`].
//!
//! Besides npm's claims, a body may carry Airlock's own optional claims: `repository_id` and
//! `repository_owner_id` (GitHub) or `project_id` and `namespace_id` (GitLab) to pin the numeric
//! ids up front, `ref` (a pattern such as `refs/tags/v*`), and `issuer` (a custom issuer from the
//! registry's config, e.g. a self-hosted GitLab).

use serde_json::{Map, Value};

/// What a trusted publisher may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `createPackage`: publish a version directly (still subject to the release policy).
    Publish,
    /// `createStagedPackage`: stage a version for maintainers to approve.
    Stage,
}

impl Permission {
    pub fn wire_name(self) -> &'static str {
        match self {
            Permission::Publish => "createPackage",
            Permission::Stage => "createStagedPackage",
        }
    }

    /// The permission npm names `s` (`createPackage`, `createStagedPackage`).
    pub fn parse(s: &str) -> Option<Permission> {
        match s {
            "createPackage" => Some(Permission::Publish),
            "createStagedPackage" => Some(Permission::Stage),
            _ => None,
        }
    }
}

/// The CI provider a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Github,
    Gitlab,
    Circleci,
}

impl Provider {
    pub fn wire_name(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Circleci => "circleci",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "github" => Some(Provider::Github),
            "gitlab" => Some(Provider::Gitlab),
            "circleci" => Some(Provider::Circleci),
            _ => None,
        }
    }

    /// How npmjs.com names the publisher in `_npmUser`.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Github => "GitHub Actions",
            Provider::Gitlab => "GitLab CI/CD",
            Provider::Circleci => "CircleCI",
        }
    }
}

/// Which CI runs may use a configuration. Made only by [`parse_trust_request`] (or from storage
/// through [`TrustRule::from_stored`], which re-checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRule {
    Github {
        /// `owner/repo`.
        repository: String,
        /// The workflow file name, e.g. `publish.yml`.
        workflow_file: String,
        environment: Option<String>,
        repository_id: Option<String>,
        repository_owner_id: Option<String>,
        ref_pattern: Option<String>,
    },
    Gitlab {
        /// `group/sub/project`.
        project_path: String,
        /// The CI config file, e.g. `.gitlab-ci.yml`.
        config_file: String,
        environment: Option<String>,
        project_id: Option<String>,
        namespace_id: Option<String>,
        ref_pattern: Option<String>,
    },
    Circleci {
        org_id: String,
        project_id: String,
        pipeline_definition_id: String,
        vcs_origin: String,
        context_ids: Vec<String>,
    },
}

impl TrustRule {
    pub fn provider(&self) -> Provider {
        match self {
            TrustRule::Github { .. } => Provider::Github,
            TrustRule::Gitlab { .. } => Provider::Gitlab,
            TrustRule::Circleci { .. } => Provider::Circleci,
        }
    }

    /// The claims as npm shows them (`npm trust list`), plus ours.
    pub fn wire_claims(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), Value::String(v.clone()));
            }
        };
        match self {
            TrustRule::Github {
                repository,
                workflow_file,
                environment,
                repository_id,
                repository_owner_id,
                ref_pattern,
            } => {
                put("repository", Some(repository));
                put("environment", environment.as_ref());
                put("repository_id", repository_id.as_ref());
                put("repository_owner_id", repository_owner_id.as_ref());
                put("ref", ref_pattern.as_ref());
                m.insert(
                    "workflow_ref".into(),
                    serde_json::json!({ "file": workflow_file }),
                );
            }
            TrustRule::Gitlab {
                project_path,
                config_file,
                environment,
                project_id,
                namespace_id,
                ref_pattern,
            } => {
                put("project_path", Some(project_path));
                put("environment", environment.as_ref());
                put("project_id", project_id.as_ref());
                put("namespace_id", namespace_id.as_ref());
                put("ref", ref_pattern.as_ref());
                m.insert(
                    "ci_config_ref_uri".into(),
                    serde_json::json!({ "file": config_file }),
                );
            }
            TrustRule::Circleci {
                org_id,
                project_id,
                pipeline_definition_id,
                vcs_origin,
                context_ids,
            } => {
                put(CIRCLE_ORG, Some(org_id));
                put(CIRCLE_PROJECT, Some(project_id));
                put(CIRCLE_PIPELINE, Some(pipeline_definition_id));
                put(CIRCLE_VCS, Some(vcs_origin));
                if !context_ids.is_empty() {
                    m.insert(CIRCLE_CONTEXTS.into(), serde_json::json!(context_ids));
                }
            }
        }
        m
    }

    /// Rebuilds a rule from what [`TrustRule::wire_claims`] stored.
    pub fn from_stored(
        provider: Provider,
        claims: &Map<String, Value>,
    ) -> Result<Self, TrustError> {
        rule(provider, claims)
    }
}

const CIRCLE_ORG: &str = "oidc.circleci.com/org-id";
const CIRCLE_PROJECT: &str = "oidc.circleci.com/project-id";
const CIRCLE_PIPELINE: &str = "oidc.circleci.com/pipeline-definition-id";
const CIRCLE_VCS: &str = "oidc.circleci.com/vcs-origin";
const CIRCLE_CONTEXTS: &str = "oidc.circleci.com/context-ids";

/// A checked `POST /-/package/{name}/trust` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRequest {
    pub rule: TrustRule,
    /// Sorted, without duplicates, never empty.
    pub permissions: Vec<Permission>,
    /// A custom issuer named in the body; `None` means the provider's configured issuer.
    pub issuer: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error(
        "the trust body must be a JSON array with exactly one configuration (this registry allows one per package)"
    )]
    NotOneConfig,
    #[error("the trust configuration must be a JSON object")]
    NotObject,
    #[error("unknown trusted publisher type `{0}`: use github, gitlab or circleci")]
    UnknownType(String),
    #[error("the trust configuration needs `{0}`")]
    Missing(&'static str),
    #[error("`{field}` is not valid: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(
        "unknown permission `{0}`: use createPackage (--allow-publish) or createStagedPackage (--allow-stage-publish)"
    )]
    UnknownPermission(String),
    #[error(
        "the trust configuration grants nothing: add --allow-publish and/or --allow-stage-publish"
    )]
    NoPermissions,
}

/// Checks an `npm trust` body.
pub fn parse_trust_request(body: &[u8]) -> Result<TrustRequest, TrustError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| TrustError::Invalid {
        field: "body",
        why: format!("not JSON ({e})"),
    })?;
    let config = match value {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        Value::Object(_) => value,
        _ => return Err(TrustError::NotOneConfig),
    };
    let config = config.as_object().ok_or(TrustError::NotObject)?;
    let kind = config
        .get("type")
        .and_then(Value::as_str)
        .ok_or(TrustError::Missing("type"))?;
    let provider = Provider::parse(kind).ok_or_else(|| TrustError::UnknownType(kind.into()))?;
    let claims = config
        .get("claims")
        .and_then(Value::as_object)
        .ok_or(TrustError::Missing("claims"))?;
    let rule = rule(provider, claims)?;
    let mut permissions = Vec::new();
    for p in config
        .get("permissions")
        .and_then(Value::as_array)
        .ok_or(TrustError::Missing("permissions"))?
    {
        let p = p.as_str().unwrap_or_default();
        permissions
            .push(Permission::parse(p).ok_or_else(|| TrustError::UnknownPermission(p.to_owned()))?);
    }
    permissions.sort();
    permissions.dedup();
    if permissions.is_empty() {
        return Err(TrustError::NoPermissions);
    }
    let issuer = optional(claims, "issuer")?;
    if let Some(url) = &issuer
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(TrustError::Invalid {
            field: "issuer",
            why: "must be the issuer's URL, as the registry's config lists it".into(),
        });
    }
    Ok(TrustRequest {
        rule,
        permissions,
        issuer,
    })
}

fn rule(provider: Provider, claims: &Map<String, Value>) -> Result<TrustRule, TrustError> {
    Ok(match provider {
        Provider::Github => {
            let repository = required(claims, "repository")?;
            let parts: Vec<&str> = repository.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| !is_slug(p)) {
                return Err(invalid("repository", "it must be `owner/repo`"));
            }
            TrustRule::Github {
                repository,
                workflow_file: file(claims, "workflow_ref", &[".yml", ".yaml"])?,
                environment: optional(claims, "environment")?,
                repository_id: numeric_id(claims, "repository_id")?,
                repository_owner_id: numeric_id(claims, "repository_owner_id")?,
                ref_pattern: ref_pattern(claims)?,
            }
        }
        Provider::Gitlab => {
            let project_path = required(claims, "project_path")?;
            let parts: Vec<&str> = project_path.split('/').collect();
            if parts.len() < 2 || parts.iter().any(|p| !is_slug(p)) {
                return Err(invalid(
                    "project_path",
                    "it must be `group/project` (subgroups allowed)",
                ));
            }
            TrustRule::Gitlab {
                project_path,
                config_file: file(claims, "ci_config_ref_uri", &[".yml", ".yaml"])?,
                environment: optional(claims, "environment")?,
                project_id: numeric_id(claims, "project_id")?,
                namespace_id: numeric_id(claims, "namespace_id")?,
                ref_pattern: ref_pattern(claims)?,
            }
        }
        Provider::Circleci => {
            let uuid = |field: &'static str| -> Result<String, TrustError> {
                let v = required(claims, field)?;
                if is_uuid(&v) {
                    Ok(v.to_ascii_lowercase())
                } else {
                    Err(invalid(field, "it must be a UUID"))
                }
            };
            let org_id = uuid(CIRCLE_ORG)?;
            let project_id = uuid(CIRCLE_PROJECT)?;
            let pipeline_definition_id = uuid(CIRCLE_PIPELINE)?;
            let vcs_origin = required(claims, CIRCLE_VCS)?;
            if vcs_origin.contains("://") || vcs_origin.split('/').count() != 3 {
                return Err(invalid(
                    CIRCLE_VCS,
                    "it must be `host/owner/repo` without a scheme",
                ));
            }
            let context_ids = match claims.get(CIRCLE_CONTEXTS) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(ids)) => ids
                    .iter()
                    .map(|id| match id.as_str() {
                        Some(s) if is_uuid(s) => Ok(s.to_ascii_lowercase()),
                        _ => Err(invalid(CIRCLE_CONTEXTS, "every context id must be a UUID")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(invalid(CIRCLE_CONTEXTS, "it must be an array of UUIDs")),
            };
            TrustRule::Circleci {
                org_id,
                project_id,
                pipeline_definition_id,
                vcs_origin,
                context_ids,
            }
        }
    })
}

fn invalid(field: &'static str, why: &str) -> TrustError {
    TrustError::Invalid {
        field,
        why: why.to_owned(),
    }
}

fn required(claims: &Map<String, Value>, field: &'static str) -> Result<String, TrustError> {
    optional(claims, field)?.ok_or(TrustError::Missing(field))
}

fn optional(
    claims: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, TrustError> {
    match claims.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 512 => {
            Ok(Some(s.trim().to_owned()))
        }
        Some(_) => Err(invalid(field, "it must be a non-empty string")),
    }
}

/// `{"file": "publish.yml"}`: a bare file name.
fn file(
    claims: &Map<String, Value>,
    field: &'static str,
    extensions: &[&str],
) -> Result<String, TrustError> {
    let name = claims
        .get(field)
        .and_then(|v| v.get("file"))
        .and_then(Value::as_str)
        .ok_or(TrustError::Missing(field))?;
    let bare = !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != "..";
    if bare && extensions.iter().any(|e| name.ends_with(e)) {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            field,
            &format!(
                "`{name}` must be a bare file name ending in {}",
                extensions.join(" or ")
            ),
        ))
    }
}

fn numeric_id(
    claims: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, TrustError> {
    let text = match claims.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid(field, "it must be a number")),
    };
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Some(text))
    } else {
        Err(invalid(field, "it must be a number"))
    }
}

fn ref_pattern(claims: &Map<String, Value>) -> Result<Option<String>, TrustError> {
    let pattern = optional(claims, "ref")?;
    if let Some(p) = &pattern
        && !p.starts_with("refs/")
    {
        return Err(invalid(
            "ref",
            "it must be a full ref pattern such as `refs/tags/v*` or `refs/heads/main`",
        ));
    }
    Ok(pattern)
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Does `value` match `pattern`, where `*` stands for any run of characters?
pub fn ref_matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            let Some(rest) = value.strip_prefix(head) else {
                return false;
            };
            // Try every split point for the rest of the pattern.
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| ref_matches(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn npm_bodies_as_captured() {
        let github = br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"publish.yml"},"environment":"prod"},"permissions":["createPackage","createStagedPackage"]}]"#;
        let r = parse_trust_request(github).unwrap();
        assert_eq!(r.permissions, vec![Permission::Publish, Permission::Stage]);
        assert_eq!(
            r.rule,
            TrustRule::Github {
                repository: "alice/demo".into(),
                workflow_file: "publish.yml".into(),
                environment: Some("prod".into()),
                repository_id: None,
                repository_owner_id: None,
                ref_pattern: None,
            }
        );
        let claims = r.rule.wire_claims();
        assert_eq!(claims["workflow_ref"]["file"], "publish.yml");
        assert_eq!(
            TrustRule::from_stored(Provider::Github, &claims).unwrap(),
            r.rule
        );

        let gitlab = br#"[{"type":"gitlab","claims":{"project_path":"group/sub/proj","ci_config_ref_uri":{"file":".gitlab-ci.yml"}},"permissions":["createPackage"]}]"#;
        let r = parse_trust_request(gitlab).unwrap();
        assert_eq!(r.rule.provider(), Provider::Gitlab);

        let circle = br#"[{"type":"circleci","claims":{"oidc.circleci.com/org-id":"0b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d","oidc.circleci.com/project-id":"1b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d","oidc.circleci.com/pipeline-definition-id":"2b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d","oidc.circleci.com/vcs-origin":"github.com/alice/demo","oidc.circleci.com/context-ids":["3b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d"]},"permissions":["createStagedPackage"]}]"#;
        let r = parse_trust_request(circle).unwrap();
        assert_eq!(r.permissions, vec![Permission::Stage]);
        let claims = r.rule.wire_claims();
        assert_eq!(
            TrustRule::from_stored(Provider::Circleci, &claims).unwrap(),
            r.rule
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"[]", "exactly one"),
            (br#"[{"type":"jenkins","claims":{},"permissions":["createPackage"]}]"#, "jenkins"),
            (br#"[{"type":"github","claims":{"repository":"alice","workflow_ref":{"file":"p.yml"}},"permissions":["createPackage"]}]"#, "owner/repo"),
            (br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"../p.yml"}},"permissions":["createPackage"]}]"#, "bare file name"),
            (br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"p.yml"}},"permissions":[]}]"#, "grants nothing"),
            (br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"p.yml"}},"permissions":["admin"]}]"#, "unknown permission"),
            (br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"p.yml"},"repository_id":"12a"},"permissions":["createPackage"]}]"#, "number"),
            (br#"[{"type":"github","claims":{"repository":"alice/demo","workflow_ref":{"file":"p.yml"},"ref":"v*"},"permissions":["createPackage"]}]"#, "refs/tags"),
            (br#"[{"type":"gitlab","claims":{"project_path":"proj","ci_config_ref_uri":{"file":".gitlab-ci.yml"}},"permissions":["createPackage"]}]"#, "group/project"),
            (br#"[{"type":"circleci","claims":{"oidc.circleci.com/org-id":"nope"},"permissions":["createPackage"]}]"#, "UUID"),
        ];
        for (body, needle) in cases {
            let e = parse_trust_request(body).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
    }

    #[test]
    fn ref_patterns() {
        assert!(ref_matches("refs/tags/v*", "refs/tags/v1.2.3"));
        assert!(!ref_matches("refs/tags/v*", "refs/heads/v1"));
        assert!(ref_matches("refs/heads/main", "refs/heads/main"));
        assert!(!ref_matches("refs/heads/main", "refs/heads/main2"));
        assert!(ref_matches("refs/*/release-*", "refs/heads/release-7"));
    }
}
