//! npm's URL space, decoded once into a [`Route`]. Scoped names arrive as `@scope%2fname`
//! (npm), `@scope%2Fname` (pnpm) or `@scope/name` (tarball URLs, yarn), and all three must
//! land on the same route.

use percent_encoding::percent_decode_str;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Ping,
    Whoami,
    /// `POST /-/v1/login`: start a web login.
    WebLoginStart,
    /// `GET /-/v1/done?authId=…`: npm polls this.
    WebLoginDone,
    /// `/-/web/login/{id}`: the page a human opens.
    WebLoginPage {
        login_id: String,
    },
    /// `/-/web/otp/{id}`: where a human answers a web-OTP challenge.
    WebOtpPage {
        otp_id: String,
    },
    Search,
    Tokens,
    Token {
        key: String,
    },
    Profile,
    /// `/-/user/org.couchdb.user:{name}`
    User {
        name: String,
    },
    /// `DELETE /-/user/token/{token}` (npm logout)
    Logout {
        token: String,
    },
    UserPackages {
        user: String,
    },
    OrgPackages {
        scope: String,
    },
    AdvisoriesBulk,
    AuditsQuick,
    /// `GET /-/npm/v1/keys`: the registry's signing keys (`npm audit signatures`).
    Keys,
    /// `GET /-/npm/v1/attestations/{name}@{version}`: a version's provenance bundle.
    Attestations {
        name: String,
        version: String,
    },
    /// `GET|POST /-/package/{name}/trust`: `npm trust list` and `npm trust github|gitlab|circleci`.
    Trust {
        name: String,
    },
    /// `DELETE /-/package/{name}/trust/{id}`: `npm trust revoke`.
    TrustConfig {
        name: String,
        id: String,
    },
    /// `POST /-/npm/v1/oidc/token/exchange/package/{name}`: a CI ID token for a credential.
    OidcExchange {
        name: String,
    },
    DistTags {
        name: String,
    },
    DistTag {
        name: String,
        tag: String,
    },
    Visibility {
        name: String,
    },
    Access {
        name: String,
    },
    Collaborators {
        name: String,
    },
    /// `POST /-/stage/package/{name}`: npm stage publish.
    StagePublish {
        name: String,
    },
    /// `GET /-/stage`: npm stage list.
    Stages,
    /// `GET|DELETE /-/stage/{id}`: npm stage view / reject.
    Stage {
        id: String,
    },
    StageApprove {
        id: String,
    },
    StageTarball {
        id: String,
    },
    /// Airlock's own: the gate events of a stage.
    StageEvents {
        id: String,
    },
    /// Airlock's management API: `/-/airlock/v1/policy/{registry|@scope|name}`.
    Policy {
        subject: String,
    },
    /// `POST|GET /-/airlock/v1/hooks`: create webhooks, list them (`?target=`).
    Hooks,
    /// `DELETE /-/airlock/v1/hooks/{id}`.
    Hook {
        id: String,
    },
    Package {
        name: String,
    },
    PackageRev {
        name: String,
        rev: String,
    },
    Tarball {
        name: String,
        filename: String,
    },
    TarballRev {
        name: String,
        filename: String,
        rev: String,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown route `{0}`: see the npm registry API")]
    Unknown(String),
    #[error(
        "the path `{0}` has a segment that is not allowed (`.`, `..`, a NUL or bad percent-encoding)"
    )]
    BadSegment(String),
}

/// Decodes one path segment, refusing anything that could walk the file system.
fn decode(segment: &str, path: &str) -> Result<String, RouteError> {
    let decoded = decode_name_part(segment, path)?;
    if decoded.contains('/') {
        return Err(RouteError::BadSegment(path.to_owned()));
    }
    Ok(decoded)
}

/// Like [`decode`], but lets an encoded `/` through: `@scope%2fname` is one segment.
fn decode_name_part(segment: &str, path: &str) -> Result<String, RouteError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| RouteError::BadSegment(path.to_owned()))?;
    if decoded == "." || decoded == ".." || decoded.contains(['\0', '\\']) {
        return Err(RouteError::BadSegment(path.to_owned()));
    }
    Ok(decoded.into_owned())
}

/// Takes a package name off the front of `segments`: one segment, or two for `@scope/name`.
fn take_name<'a>(
    segments: &'a [&'a str],
    path: &str,
) -> Result<Option<(String, &'a [&'a str])>, RouteError> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(None);
    };
    let first = decode_name_part(first, path)?;
    if first.starts_with('@') && !first.contains('/') {
        let Some((second, rest)) = rest.split_first() else {
            return Ok(Some((first, rest)));
        };
        let second = decode(second, path)?;
        return Ok(Some((format!("{first}/{second}"), rest)));
    }
    if first.matches('/').count() > 1 || (first.contains('/') && !first.starts_with('@')) {
        return Err(RouteError::BadSegment(path.to_owned()));
    }
    Ok(Some((first, rest)))
}

/// Parses the path part of a request URI (still percent-encoded).
pub fn parse(path: &str) -> Result<Route, RouteError> {
    let unknown = || RouteError::Unknown(path.to_owned());
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(unknown());
    }
    if segments[0] == "-" {
        return parse_dash(&segments[1..], path);
    }
    let (name, rest) = take_name(&segments, path)?.ok_or_else(unknown)?;
    match rest {
        [] => Ok(Route::Package { name }),
        ["-rev", rev] => Ok(Route::PackageRev {
            name,
            rev: decode(rev, path)?,
        }),
        ["-", file] => Ok(Route::Tarball {
            name,
            filename: decode(file, path)?,
        }),
        ["-", file, "-rev", rev] => Ok(Route::TarballRev {
            name,
            filename: decode(file, path)?,
            rev: decode(rev, path)?,
        }),
        _ => Err(unknown()),
    }
}

fn parse_dash(segments: &[&str], path: &str) -> Result<Route, RouteError> {
    let unknown = || RouteError::Unknown(path.to_owned());
    match segments {
        ["ping"] => Ok(Route::Ping),
        ["whoami"] => Ok(Route::Whoami),
        ["v1", "login"] => Ok(Route::WebLoginStart),
        ["v1", "done"] => Ok(Route::WebLoginDone),
        ["v1", "search"] => Ok(Route::Search),
        ["web", "login", id] => Ok(Route::WebLoginPage {
            login_id: decode(id, path)?,
        }),
        ["web", "otp", id] => Ok(Route::WebOtpPage {
            otp_id: decode(id, path)?,
        }),
        ["npm", "v1", "tokens"] => Ok(Route::Tokens),
        ["npm", "v1", "tokens", "token", key] => Ok(Route::Token {
            key: decode(key, path)?,
        }),
        ["npm", "v1", "user"] => Ok(Route::Profile),
        ["npm", "v1", "security", "advisories", "bulk"] => Ok(Route::AdvisoriesBulk),
        ["npm", "v1", "security", "audits", "quick"] => Ok(Route::AuditsQuick),
        ["npm", "v1", "keys"] => Ok(Route::Keys),
        ["npm", "v1", "attestations", rest @ ..] => parse_attestations(rest, path),
        [
            "npm",
            "v1",
            "oidc",
            "token",
            "exchange",
            "package",
            rest @ ..,
        ] => match take_name(rest, path)? {
            Some((name, [])) => Ok(Route::OidcExchange { name }),
            _ => Err(unknown()),
        },
        ["user", "token", token] => Ok(Route::Logout {
            token: decode(token, path)?,
        }),
        ["user", user, "package"] => Ok(Route::UserPackages {
            user: decode(user, path)?,
        }),
        ["user", couch] => {
            let couch = decode(couch, path)?;
            let name = couch
                .strip_prefix("org.couchdb.user:")
                .ok_or_else(unknown)?;
            Ok(Route::User {
                name: name.to_owned(),
            })
        }
        ["stage"] => Ok(Route::Stages),
        ["stage", "package", rest @ ..] => match take_name(rest, path)? {
            Some((name, [])) => Ok(Route::StagePublish { name }),
            _ => Err(unknown()),
        },
        ["stage", id] => Ok(Route::Stage {
            id: decode(id, path)?,
        }),
        ["stage", id, "approve"] => Ok(Route::StageApprove {
            id: decode(id, path)?,
        }),
        ["stage", id, "tarball"] => Ok(Route::StageTarball {
            id: decode(id, path)?,
        }),
        ["stage", id, "events"] => Ok(Route::StageEvents {
            id: decode(id, path)?,
        }),
        ["airlock", "v1", "policy", rest @ ..] => match take_name(rest, path)? {
            Some((subject, [])) => Ok(Route::Policy { subject }),
            _ => Err(unknown()),
        },
        ["airlock", "v1", "hooks"] => Ok(Route::Hooks),
        ["airlock", "v1", "hooks", id] => Ok(Route::Hook {
            id: decode(id, path)?,
        }),
        ["org", scope, "package"] => Ok(Route::OrgPackages {
            scope: decode(scope, path)?,
        }),
        ["package", rest @ ..] => {
            let (name, rest) = take_name(rest, path)?.ok_or_else(unknown)?;
            match rest {
                ["dist-tags"] => Ok(Route::DistTags { name }),
                ["dist-tags", tag] => Ok(Route::DistTag {
                    name,
                    tag: decode(tag, path)?,
                }),
                ["visibility"] => Ok(Route::Visibility { name }),
                ["access"] => Ok(Route::Access { name }),
                ["collaborators"] => Ok(Route::Collaborators { name }),
                ["trust"] => Ok(Route::Trust { name }),
                ["trust", id] => Ok(Route::TrustConfig {
                    name,
                    id: decode(id, path)?,
                }),
                _ => Err(unknown()),
            }
        }
        _ => Err(unknown()),
    }
}

/// `name@version` after `/-/npm/v1/attestations/`: `@scope%2fname@1.0.0` (one segment, as
/// npm builds it), `@scope/name@1.0.0`, or `name@1.0.0`. The version follows the last `@`.
fn parse_attestations(segments: &[&str], path: &str) -> Result<Route, RouteError> {
    let unknown = || RouteError::Unknown(path.to_owned());
    let spec = match segments {
        [one] => decode_name_part(one, path)?,
        [scope, rest] => {
            let scope = decode(scope, path)?;
            if !scope.starts_with('@') {
                return Err(unknown());
            }
            format!("{scope}/{}", decode(rest, path)?)
        }
        _ => return Err(unknown()),
    };
    match spec.rsplit_once('@') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => {
            if name.matches('/').count() > 1 || (name.contains('/') && !name.starts_with('@')) {
                return Err(RouteError::BadSegment(path.to_owned()));
            }
            Ok(Route::Attestations {
                name: name.to_owned(),
                version: version.to_owned(),
            })
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> Route {
        Route::Package { name: name.into() }
    }

    #[test]
    fn attestations_in_every_spelling() {
        let attestations = |name: &str, version: &str| Route::Attestations {
            name: name.into(),
            version: version.into(),
        };
        for path in [
            "/-/npm/v1/attestations/@scope%2flib@1.0.0",
            "/-/npm/v1/attestations/@scope%2Flib@1.0.0",
            "/-/npm/v1/attestations/%40scope%2flib@1.0.0",
            "/-/npm/v1/attestations/@scope/lib@1.0.0",
        ] {
            assert_eq!(
                parse(path).unwrap(),
                attestations("@scope/lib", "1.0.0"),
                "{path}"
            );
        }
        assert_eq!(
            parse("/-/npm/v1/attestations/demo@2.0.0-beta.1").unwrap(),
            attestations("demo", "2.0.0-beta.1")
        );
        assert_eq!(
            parse("/-/npm/v1/attestations/demo%402.0.0").unwrap(),
            attestations("demo", "2.0.0")
        );
        for bad in [
            "/-/npm/v1/attestations",
            "/-/npm/v1/attestations/demo",
            "/-/npm/v1/attestations/demo@",
            "/-/npm/v1/attestations/@scope%2flib",
            "/-/npm/v1/attestations/scope/lib@1.0.0",
            "/-/npm/v1/attestations/@scope/lib/x@1.0.0",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("/-/npm/v1/attestations/..@1.0.0"),
            Ok(attestations("..", "1.0.0")),
            "the name is checked by the registry, not here"
        );
    }

    #[test]
    fn scoped_names_in_every_spelling() {
        assert_eq!(parse("/@scope%2flib").unwrap(), package("@scope/lib"));
        assert_eq!(parse("/@scope%2Flib").unwrap(), package("@scope/lib"));
        assert_eq!(parse("/@scope/lib").unwrap(), package("@scope/lib"));
        assert_eq!(parse("/lodash").unwrap(), package("lodash"));
        let tarball = Route::Tarball {
            name: "@scope/lib".into(),
            filename: "lib-1.0.0.tgz".into(),
        };
        assert_eq!(parse("/@scope/lib/-/lib-1.0.0.tgz").unwrap(), tarball);
        assert_eq!(parse("/@scope%2flib/-/lib-1.0.0.tgz").unwrap(), tarball);
        assert_eq!(parse("/@scope%2Flib/-/lib-1.0.0.tgz").unwrap(), tarball);
    }

    #[test]
    fn write_routes() {
        assert_eq!(
            parse("/demo/-rev/3-abc").unwrap(),
            Route::PackageRev {
                name: "demo".into(),
                rev: "3-abc".into()
            }
        );
        assert_eq!(
            parse("/demo/-/demo-1.1.0.tgz/-rev/4-def").unwrap(),
            Route::TarballRev {
                name: "demo".into(),
                filename: "demo-1.1.0.tgz".into(),
                rev: "4-def".into()
            }
        );
        assert_eq!(
            parse("/-/package/@scope%2fnewpkg/dist-tags/beta").unwrap(),
            Route::DistTag {
                name: "@scope/newpkg".into(),
                tag: "beta".into()
            }
        );
        assert_eq!(
            parse("/-/package/@scope/newpkg/dist-tags").unwrap(),
            Route::DistTags {
                name: "@scope/newpkg".into()
            }
        );
        assert_eq!(
            parse("/-/user/org.couchdb.user:alice").unwrap(),
            Route::User {
                name: "alice".into()
            }
        );
        assert_eq!(
            parse("/-/user/org.couchdb.user%3Aalice").unwrap(),
            Route::User {
                name: "alice".into()
            }
        );
        assert_eq!(
            parse("/-/npm/v1/tokens/token/abc").unwrap(),
            Route::Token { key: "abc".into() }
        );
    }

    #[test]
    fn stage_and_policy_routes() {
        assert_eq!(
            parse("/-/stage/package/@scope%2flib").unwrap(),
            Route::StagePublish {
                name: "@scope/lib".into()
            }
        );
        assert_eq!(parse("/-/stage").unwrap(), Route::Stages);
        let id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        assert_eq!(
            parse(&format!("/-/stage/{id}")).unwrap(),
            Route::Stage { id: id.into() }
        );
        assert_eq!(
            parse(&format!("/-/stage/{id}/approve")).unwrap(),
            Route::StageApprove { id: id.into() }
        );
        assert_eq!(
            parse(&format!("/-/stage/{id}/tarball")).unwrap(),
            Route::StageTarball { id: id.into() }
        );
        assert_eq!(
            parse("/-/airlock/v1/policy/registry").unwrap(),
            Route::Policy {
                subject: "registry".into()
            }
        );
        assert_eq!(
            parse("/-/airlock/v1/policy/@acme").unwrap(),
            Route::Policy {
                subject: "@acme".into()
            }
        );
        assert_eq!(
            parse("/-/airlock/v1/policy/@acme%2Flib").unwrap(),
            Route::Policy {
                subject: "@acme/lib".into()
            }
        );
        assert_eq!(
            parse("/-/airlock/v1/policy/@acme/lib").unwrap(),
            Route::Policy {
                subject: "@acme/lib".into()
            }
        );
    }

    #[test]
    fn webhook_routes() {
        assert_eq!(parse("/-/airlock/v1/hooks").unwrap(), Route::Hooks);
        assert_eq!(parse("/-/airlock/v1/hooks/").unwrap(), Route::Hooks);
        let id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        assert_eq!(
            parse(&format!("/-/airlock/v1/hooks/{id}")).unwrap(),
            Route::Hook { id: id.into() }
        );
        assert!(matches!(
            parse("/-/airlock/v1/hooks/%2e%2e"),
            Err(RouteError::BadSegment(_))
        ));
        assert!(matches!(
            parse(&format!("/-/airlock/v1/hooks/{id}/deliveries")),
            Err(RouteError::Unknown(_))
        ));
    }

    #[test]
    fn trust_routes() {
        assert_eq!(
            parse("/-/package/@scope%2foidcpkg/trust").unwrap(),
            Route::Trust {
                name: "@scope/oidcpkg".into()
            }
        );
        assert_eq!(
            parse("/-/package/demo/trust/abc%2Ddef").unwrap(),
            Route::TrustConfig {
                name: "demo".into(),
                id: "abc-def".into()
            }
        );
        assert_eq!(
            parse("/-/npm/v1/oidc/token/exchange/package/@scope%2foidcpkg").unwrap(),
            Route::OidcExchange {
                name: "@scope/oidcpkg".into()
            }
        );
        assert_eq!(
            parse("/-/npm/v1/oidc/token/exchange/package/demo").unwrap(),
            Route::OidcExchange {
                name: "demo".into()
            }
        );
        assert!(parse("/-/npm/v1/oidc/token/exchange/package/demo/more").is_err());
    }

    #[test]
    fn keys_route() {
        assert_eq!(parse("/-/npm/v1/keys").unwrap(), Route::Keys);
        assert_eq!(parse("/-/npm/v1/keys/").unwrap(), Route::Keys);
        assert!(matches!(
            parse("/-/npm/v1/keys/extra"),
            Err(RouteError::Unknown(_))
        ));
    }

    #[test]
    fn traversal_and_junk_are_refused() {
        for bad in [
            "/..",
            "/%2e%2e",
            "/a/-/..",
            "/a/-/%2e%2e%2fetc",
            "/@scope/%2e%2e",
            "/a%5cb",
            "/a%00",
            "/a%2fb",
            "/@a%2fb%2fc",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
        for unknown in ["/", "/-/nope", "/a/b/c", "//a", "/-/package/a/unknown"] {
            assert!(
                matches!(parse(unknown), Err(RouteError::Unknown(_))),
                "{unknown} must be unknown"
            );
        }
    }
}
