//! Thin handlers: decode the request, call the registry, encode the answer.

use std::collections::HashMap;
use std::net::SocketAddr;

use airlock_registry::{
    CreateTokenRequest, Credentials, DoneStatus, Principal, ProfileUpdate, PublishOutcome,
    Registry, Rendered, Representation, SearchQuery,
};
use airlock_store::{BlobBody, format_time};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::route::{self, Route};
use crate::{AppState, web};

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The corgi media type (protocol §1.1).
const ABBREVIATED_MEDIA_TYPE: &str = "application/vnd.npm.install-v1+json";
/// Packuments may be cached for five minutes, as registry.npmjs.org does.
const PACKUMENT_CACHE_CONTROL_PUBLIC: &str = "public, max-age=300";
const PACKUMENT_CACHE_CONTROL_PRIVATE: &str = "private, max-age=300";
/// Tarballs never change once published.
const TARBALL_CACHE_CONTROL: &str = "public, max-age=31557600, immutable";
/// npm polls the done URL after this many seconds.
const WEB_LOGIN_RETRY_AFTER_SECS: &str = "1";

/// Everything about the request a handler may need.
struct Call {
    method: Method,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
    principal: Option<Principal>,
    base_url: String,
}

impl Call {
    fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }
}

pub(crate) async fn dispatch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    match handle(&state, peer, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, peer: SocketAddr, request: Request) -> Result<Response> {
    let route = route::parse(request.uri().path())?;
    let (parts, body) = request.into_parts();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let base_url = base_url(state, &parts.headers);
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    if let Route::OidcExchange { name } = &route {
        // The bearer here is the CI's ID token, not a registry credential; npm logs the
        // `message` of a failure (protocol §5.2).
        return Ok(oidc_exchange(state, &parts.headers, &parts.method, name)
            .await
            .unwrap_or_else(ApiError::into_message_response));
    }
    let credentials = credentials(&parts.headers)?;
    let otp = otp_header(&parts.headers);
    let registry = &state.registry;
    let principal = registry.authenticate(credentials, otp, peer.ip()).await?;
    let call = Call {
        method: parts.method,
        headers: parts.headers,
        query,
        body,
        principal,
        base_url,
    };
    route_call(registry, &call, route)
        .await
        .map_err(|e| e.with_base_url(&call.base_url))
}

async fn oidc_exchange(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    name: &str,
) -> Result<Response> {
    if method != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on this route: POST the ID token"),
        ));
    }
    let id_token = match credentials(headers)? {
        Some(Credentials::Bearer(token)) => Some(token),
        Some(Credentials::Basic { .. }) | None => None,
    };
    let token = state
        .registry
        .exchange_id_token(name, id_token.as_deref(), &registry_host(state, headers))
        .await?;
    Ok(no_store(json_response(
        StatusCode::CREATED,
        &json!({ "token": token }),
    )))
}

/// The registry's host name as npm puts it in the ID token audience: no port, no path.
fn registry_host(state: &AppState, headers: &HeaderMap) -> String {
    let base = base_url(state, headers);
    url::Url::parse(&base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// The one-time password npm sends after an OTP challenge (or with `--otp`).
fn otp_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("npm-otp")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than this registry accepts ({limit} bytes): ask an administrator to raise max_body_bytes"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // Most requests are GETs without a body: skip the collecting machinery.
    if axum::body::HttpBody::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Authorization header is not valid text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Credentials::Bearer(rest.to_owned())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                ApiError::bad_request("the Basic credentials are not valid base64 of user:password")
            })?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::bad_request("the Basic credentials must be user:password"))?;
        return Ok(Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    Err(ApiError::bad_request(format!(
        "unsupported authorization scheme `{scheme}`: use a Bearer token"
    )))
}

/// The registry's own base URL, ending in `/`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    let mut url = String::with_capacity("http:///".len() + host.len());
    url.push_str("http://");
    url.push_str(host);
    url.push('/');
    url
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value)).into_response()
}

fn ok_json(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

fn method_not_allowed(call: &Call) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on this route", call.method),
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON for this route: {e}"
        ))
    })
}

async fn route_call(registry: &Registry, call: &Call, route: Route) -> Result<Response> {
    let p = call.principal();
    let m = &call.method;
    if let Some(grant) = p.and_then(|p| p.publisher.as_ref())
        && !publisher_may_call(&route, m, &call.body)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a trusted-publishing credential may only publish or stage `{}`; use a maintainer's token for anything else",
                grant.package
            ),
        ));
    }
    Ok(match route {
        Route::Ping => ok_json(&json!({})),
        Route::Whoami => {
            let principal = p.ok_or(airlock_registry::RegistryError::Unauthenticated)?;
            ok_json(&json!({ "username": principal.user.name }))
        }
        Route::AdvisoriesBulk | Route::AuditsQuick if m == Method::POST => {
            // No advisory database yet: an honest "nothing known" in the shape npm expects.
            ok_json(&json!({}))
        }
        // Public keys: readable without a token, even where reads need one.
        Route::Keys if m == Method::GET || m == Method::HEAD => ok_json(&registry.public_keys()?),
        Route::Attestations { name, version } if m == Method::GET || m == Method::HEAD => {
            ok_json(&registry.attestations(p, &name, &version).await?)
        }
        Route::Trust { name } if m == Method::GET => ok_json(&registry.list_trust(p, &name).await?),
        Route::Trust { name } if m == Method::POST => json_response(
            StatusCode::CREATED,
            &registry.create_trust(p, &name, &call.body).await?,
        ),
        Route::TrustConfig { name, id } if m == Method::DELETE => {
            registry.revoke_trust(p, &name, &id).await?;
            StatusCode::NO_CONTENT.into_response()
        }
        Route::OidcExchange { .. } => {
            // Answered in `handle` before authentication; never reaches here.
            return Err(method_not_allowed(call));
        }
        Route::Package { name } if m == Method::GET || m == Method::HEAD => {
            packument(registry, call, &name).await?
        }
        Route::Package { name } if m == Method::PUT => {
            if is_publish(&call.body) {
                let outcome = registry.publish(p, &name, &call.body).await?;
                let status = if outcome == PublishOutcome::Published {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                json_response(status, &json!({ "ok": true, "id": name, "success": true }))
            } else {
                registry.update_metadata(p, &name, &call.body).await?;
                ok_json(&json!({ "ok": true, "id": name }))
            }
        }
        Route::PackageRev { name, rev } if m == Method::PUT => {
            ok_json(&registry.put_with_rev(p, &name, &rev, &call.body).await?)
        }
        Route::PackageRev { name, rev } if m == Method::DELETE => {
            registry.unpublish_package(p, &name, &rev).await?;
            ok_json(&json!({ "ok": true, "id": name }))
        }
        Route::Tarball { name, filename } if m == Method::GET || m == Method::HEAD => {
            tarball(registry, call, &name, &filename).await?
        }
        Route::TarballRev {
            name,
            filename,
            rev,
        } if m == Method::DELETE => {
            registry.delete_tarball(p, &name, &filename, &rev).await?;
            ok_json(&json!({ "ok": true }))
        }
        Route::DistTags { name } if m == Method::GET => {
            ok_json(&json!(registry.dist_tags(p, &name).await?))
        }
        Route::DistTag { name, tag } if m == Method::PUT || m == Method::POST => {
            registry.set_dist_tag(p, &name, &tag, &call.body).await?;
            json_response(StatusCode::CREATED, &json!({ "ok": true }))
        }
        Route::DistTag { name, tag } if m == Method::DELETE => {
            registry.remove_dist_tag(p, &name, &tag).await?;
            ok_json(&json!({ "ok": true }))
        }
        Route::Visibility { name } if m == Method::GET => {
            ok_json(&json!({ "public": registry.visibility(p, &name).await? }))
        }
        Route::Access { name } if m == Method::POST => {
            registry.set_access(p, &name, &call.body).await?;
            ok_json(&json!({ "ok": true }))
        }
        Route::Collaborators { name } if m == Method::GET => {
            ok_json(&json!(registry.collaborators(p, &name).await?))
        }
        Route::UserPackages { user } if m == Method::GET => {
            ok_json(&json!(registry.packages_of_user(p, &user).await?))
        }
        Route::OrgPackages { scope } => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("this registry has no organisations (asked for `{scope}`)"),
            ));
        }
        Route::Search if m == Method::GET => search(registry, call).await?,
        Route::User { name } if m == Method::PUT => {
            let outcome = registry
                .couch_login(&name, &call.body, otp_header(&call.headers).as_deref())
                .await?;
            json_response(
                StatusCode::CREATED,
                &json!({ "ok": true, "id": format!("org.couchdb.user:{}", outcome.user.name), "rev": "1", "token": outcome.token.expose() }),
            )
        }
        Route::User { name } if m == Method::GET => {
            ok_json(&registry.user_document(p, &name).await?)
        }
        Route::Logout { token } if m == Method::DELETE => {
            registry.logout(p, &token).await?;
            ok_json(&json!({ "ok": true }))
        }
        Route::WebLoginStart if m == Method::POST => web_login_start(registry, call).await?,
        Route::WebLoginDone if m == Method::GET => web_login_done(registry, call).await?,
        Route::WebLoginPage { login_id } if m == Method::GET => {
            web_login_page(registry, &login_id).await
        }
        Route::WebLoginPage { login_id } if m == Method::POST => {
            web_login_submit(registry, call, &login_id).await
        }
        Route::WebOtpPage { otp_id } if m == Method::GET => web_otp_page(registry, &otp_id).await,
        Route::WebOtpPage { otp_id } if m == Method::POST => {
            web_otp_submit(registry, call, &otp_id).await
        }
        Route::StagePublish { name } if m == Method::POST => {
            let id = registry.stage(p, &name, &call.body).await?;
            json_response(StatusCode::CREATED, &json!({ "stageId": id }))
        }
        Route::Stages if m == Method::GET => {
            let page = query_number(call, "page", 0)?;
            let per_page = query_number(call, "perPage", 100)?;
            let package = call.query.get("package").map(String::as_str);
            let (items, total) = registry.list_stages(p, package, page, per_page).await?;
            let items: Vec<Value> = items.into_iter().map(|v| v.0).collect();
            ok_json(&json!({ "items": items, "total": total }))
        }
        Route::Stage { id } if m == Method::GET => ok_json(&registry.view_stage(p, &id).await?.0),
        Route::Stage { id } if m == Method::DELETE => {
            let reason = call.query.get("reason").cloned();
            ok_json(&registry.reject_stage(p, &id, reason).await?.0)
        }
        Route::StageApprove { id } if m == Method::POST => {
            let view = registry.approve_stage(p, &id).await?.0;
            // npm prints "approved and published" whatever happened; `npm-notice` is printed
            // too, so the user learns the release's real state.
            let mut response = ok_json(&view);
            if let Ok(notice) = HeaderValue::from_str(&stage_notice(&view)) {
                response.headers_mut().insert("npm-notice", notice);
            }
            response
        }
        Route::StageTarball { id } if m == Method::GET => {
            let tarball = registry.stage_tarball(p, &id).await?;
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(tarball.size));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            (StatusCode::OK, headers, Body::from_stream(tarball.stream)).into_response()
        }
        Route::StageEvents { id } if m == Method::GET => {
            let events: Vec<Value> = registry
                .stage_events(p, &id)
                .await?
                .into_iter()
                .map(|e| {
                    json!({
                        "kind": e.kind,
                        "actor": e.actor_name,
                        "at": format_time(e.at),
                        "sha512": e.sha512_hex,
                        "factor": e.factor,
                        "detail": e.detail,
                    })
                })
                .collect();
            ok_json(&json!({ "events": events }))
        }
        Route::Policy { subject } if m == Method::GET => {
            ok_json(&registry.show_policy(p, &subject).await?)
        }
        Route::Policy { subject } if m == Method::PUT => {
            ok_json(&registry.set_policy(p, &subject, &call.body).await?)
        }
        Route::Hooks if m == Method::POST => {
            let created = registry.create_webhook(p, &call.body).await?;
            // The answer carries the signing secret, shown this once.
            no_store(json_response(StatusCode::CREATED, &created))
        }
        Route::Hooks if m == Method::GET => {
            let target = call.query.get("target").ok_or_else(|| {
                ApiError::bad_request(
                    "say whose webhooks to list: add ?target=<package name or @scope>",
                )
            })?;
            ok_json(&registry.list_webhooks(p, target).await?)
        }
        Route::Hook { id } if m == Method::DELETE => {
            registry.delete_webhook(p, &id).await?;
            ok_json(&json!({ "ok": true, "id": id }))
        }
        Route::Tokens if m == Method::GET => token_list(registry, call).await?,
        Route::Tokens if m == Method::POST => {
            let request: CreateTokenRequest = parse_json(&call.body)?;
            let created = registry.create_token(p, &request).await?;
            let r = &created.record;
            ok_json(&json!({
                "token": created.token.expose(),
                "key": r.key,
                "name": r.name,
                "readonly": r.readonly,
                "cidr_whitelist": r.cidr_whitelist,
                "created": format_time(r.created_at),
                "updated": format_time(r.created_at),
                "expires": r.expires_at.map(format_time),
            }))
        }
        Route::Token { key } if m == Method::DELETE => {
            registry.revoke_token(p, &key).await?;
            StatusCode::NO_CONTENT.into_response()
        }
        Route::Profile if m == Method::GET => ok_json(&registry.profile(p).await?),
        Route::Profile if m == Method::POST => {
            let update: ProfileUpdate = parse_json(&call.body)?;
            ok_json(&registry.update_profile(p, update).await?)
        }
        Route::AdvisoriesBulk
        | Route::AuditsQuick
        | Route::Keys
        | Route::Attestations { .. }
        | Route::Trust { .. }
        | Route::TrustConfig { .. }
        | Route::Package { .. }
        | Route::PackageRev { .. }
        | Route::Tarball { .. }
        | Route::TarballRev { .. }
        | Route::DistTags { .. }
        | Route::DistTag { .. }
        | Route::Visibility { .. }
        | Route::Access { .. }
        | Route::Collaborators { .. }
        | Route::UserPackages { .. }
        | Route::Search
        | Route::User { .. }
        | Route::Logout { .. }
        | Route::WebLoginStart
        | Route::WebLoginDone
        | Route::WebLoginPage { .. }
        | Route::WebOtpPage { .. }
        | Route::StagePublish { .. }
        | Route::Stages
        | Route::Stage { .. }
        | Route::StageApprove { .. }
        | Route::StageTarball { .. }
        | Route::StageEvents { .. }
        | Route::Policy { .. }
        | Route::Hooks
        | Route::Hook { .. }
        | Route::Tokens
        | Route::Token { .. }
        | Route::Profile => return Err(method_not_allowed(call)),
    })
}

/// What a trusted-publishing credential may reach: its package's publish and stage (the
/// registry checks package and permission), and the reads npm makes around them. Every new
/// route must be decided here.
fn publisher_may_call(route: &Route, method: &Method, body: &[u8]) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Package { .. } if method == Method::PUT => is_publish(body),
        Route::StagePublish { .. } => method == Method::POST,
        Route::Package { .. }
        | Route::Tarball { .. }
        | Route::Visibility { .. }
        | Route::Attestations { .. } => read,
        Route::Ping | Route::Keys | Route::OidcExchange { .. } => true,
        Route::Whoami
        | Route::AdvisoriesBulk
        | Route::AuditsQuick
        | Route::PackageRev { .. }
        | Route::TarballRev { .. }
        | Route::DistTags { .. }
        | Route::DistTag { .. }
        | Route::Access { .. }
        | Route::Collaborators { .. }
        | Route::UserPackages { .. }
        | Route::OrgPackages { .. }
        | Route::Search
        | Route::User { .. }
        | Route::Logout { .. }
        | Route::WebLoginStart
        | Route::WebLoginDone
        | Route::WebLoginPage { .. }
        | Route::WebOtpPage { .. }
        | Route::Stages
        | Route::Stage { .. }
        | Route::StageApprove { .. }
        | Route::StageTarball { .. }
        | Route::StageEvents { .. }
        | Route::Policy { .. }
        | Route::Hooks
        | Route::Hook { .. }
        | Route::Tokens
        | Route::Token { .. }
        | Route::Profile
        | Route::Trust { .. }
        | Route::TrustConfig { .. } => false,
    }
}

/// A publish body carries `_attachments` with at least one entry; deprecate sends none.
fn is_publish(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "_attachments", default)]
        attachments: Option<serde::de::IgnoredAny>,
    }
    // Malformed JSON is handed to publish, which explains what is wrong with it.
    serde_json::from_slice::<Probe>(body).map_or(true, |probe| probe.attachments.is_some())
}

/// Does `Accept-Encoding` allow gzip (and not with `q=0`)?
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused =
                parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn wants_abbreviated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(ABBREVIATED_MEDIA_TYPE))
}

/// Does `If-None-Match` name this ETag (or `*`)? Weak comparison, as RFC 9110 asks for GET.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

async fn packument(registry: &Registry, call: &Call, name: &str) -> Result<Response> {
    let representation = if wants_abbreviated(&call.headers) {
        Representation::Abbreviated
    } else {
        Representation::Full
    };
    let packument = registry
        .packument(call.principal(), name, representation, &call.base_url)
        .await?;
    let rendered: &Rendered = packument.rendered();
    let cache_control = if packument.is_public() && !registry.config().read_requires_auth {
        PACKUMENT_CACHE_CONTROL_PUBLIC
    } else {
        PACKUMENT_CACHE_CONTROL_PRIVATE
    };
    let content_type = match representation {
        Representation::Full => "application/json",
        Representation::Abbreviated => ABBREVIATED_MEDIA_TYPE,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding, Authorization"),
    );
    // The gzip form is compressed once per revision and cached, not per request.
    let gzip = accepts_gzip(&call.headers);
    let etag = if gzip {
        &rendered.gzip_etag
    } else {
        &rendered.etag
    };
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(modified) =
        HeaderValue::from_str(&httpdate::fmt_http_date(rendered.last_modified.into()))
    {
        headers.insert(header::LAST_MODIFIED, modified);
    }
    if etag_matches(&call.headers, etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let bytes = if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        rendered.gzipped().clone()
    } else {
        rendered.body.clone()
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let body = if call.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

async fn tarball(registry: &Registry, call: &Call, name: &str, filename: &str) -> Result<Response> {
    let tarball = registry
        .tarball(call.principal(), name, filename, &call.base_url)
        .await?;
    // The first 20 bytes of the SHA-512, quoted.
    let etag = format!("\"{}\"", hex::encode(&tarball.sha512[..20]));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(TARBALL_CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if etag_matches(&call.headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(tarball.size));
    let body = match tarball.body {
        _ if call.method == Method::HEAD => Body::empty(),
        BlobBody::Whole(bytes) => Body::from(bytes),
        BlobBody::Stream(stream) => Body::from_stream(stream),
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

/// One line on where a release stands after an approval.
fn stage_notice(view: &Value) -> String {
    let field = |k: &str| view.get(k).and_then(Value::as_str).unwrap_or_default();
    let what = format!("{}@{}", field("packageName"), field("version"));
    match field("state") {
        "staged" => format!(
            "{what}: approvals {}; it stays staged until the rest approve",
            field("approvals")
        ),
        "cooling off" => format!(
            "{what}: approved; it goes live at {} unless a maintainer rejects it",
            field("coolingOffUntil")
        ),
        "live" => format!("{what} is live"),
        other => format!("{what} is {other}"),
    }
}

fn query_number(call: &Call, key: &str, default: u64) -> Result<u64> {
    call.query.get(key).map_or(Ok(default), |v| {
        v.parse().map_err(|_| {
            ApiError::bad_request(format!("`{key}` must be a whole number, not `{v}`"))
        })
    })
}

async fn search(registry: &Registry, call: &Call) -> Result<Response> {
    let query = SearchQuery {
        text: call.query.get("text").cloned().unwrap_or_default(),
        from: query_number(call, "from", 0)?,
        size: query_number(call, "size", 20)?,
    };
    let result = registry
        .search(call.principal(), &query, &call.base_url)
        .await?;
    Ok(ok_json(&json!({
        "objects": result.objects,
        "total": result.total,
        "time": format_time(time::OffsetDateTime::now_utc()),
    })))
}

async fn token_list(registry: &Registry, call: &Call) -> Result<Response> {
    let page = usize::try_from(query_number(call, "page", 0)?).unwrap_or(usize::MAX);
    let list = registry.list_tokens(call.principal(), page).await?;
    let objects: Vec<Value> = list
        .objects
        .iter()
        .map(|t| {
            json!({
                "key": t.key,
                "token": t.display,
                "name": t.name,
                "created": format_time(t.created_at),
                "updated": format_time(t.created_at),
                "readonly": t.readonly,
                "cidr_whitelist": t.cidr_whitelist,
                "expires": t.expires_at.map(format_time),
            })
        })
        .collect();
    let mut urls = json!({});
    if let Some(next) = list.next_page {
        urls["next"] = json!(format!("{}-/npm/v1/tokens?page={next}", call.base_url));
    }
    Ok(ok_json(
        &json!({ "objects": objects, "total": list.total, "urls": urls }),
    ))
}

async fn web_login_start(registry: &Registry, call: &Call) -> Result<Response> {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        create: bool,
    }
    let body: Body = if call.body.is_empty() {
        Body::default()
    } else {
        parse_json(&call.body)?
    };
    let start = registry.start_web_login(body.create).await?;
    Ok(ok_json(&json!({
        "loginUrl": format!("{}-/web/login/{}", call.base_url, start.login_id),
        "doneUrl": format!("{}-/v1/done?authId={}", call.base_url, start.done_secret),
    })))
}

/// npm polls one done URL for logins (`authId`) and for web-OTP answers (`otpId`).
async fn web_login_done(registry: &Registry, call: &Call) -> Result<Response> {
    if let Some(secret) = call.query.get("otpId") {
        return Ok(match registry.poll_web_otp(secret).await? {
            None => pending_done(),
            Some(token) => no_store(ok_json(&json!({ "token": token }))),
        });
    }
    let secret = call
        .query
        .get("authId")
        .ok_or_else(|| ApiError::bad_request("the done URL needs its `authId`"))?;
    Ok(match registry.poll_web_login(secret).await? {
        DoneStatus::Pending => pending_done(),
        DoneStatus::Done(token) => no_store(ok_json(&json!({ "token": token.expose() }))),
    })
}

/// `202` with `retry-after`: npm waits that long, then polls again (no header = busy loop).
fn pending_done() -> Response {
    let mut response = json_response(StatusCode::ACCEPTED, &json!({}));
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(WEB_LOGIN_RETRY_AFTER_SECS),
    );
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn web_otp_page(registry: &Registry, otp_id: &str) -> Response {
    match registry.web_otp_page(otp_id).await {
        Ok(()) => html(
            StatusCode::OK,
            web::otp_form(&format!("/-/web/otp/{otp_id}"), None),
        ),
        Err(_) => html(StatusCode::NOT_FOUND, web::expired()),
    }
}

async fn web_otp_submit(registry: &Registry, call: &Call, otp_id: &str) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
    let code = form.get("otp").map(String::as_str).unwrap_or_default();
    match registry.answer_web_otp(otp_id, code).await {
        Ok(()) => html(StatusCode::OK, web::otp_done()),
        Err(airlock_registry::RegistryError::NotFound(_)) => {
            html(StatusCode::NOT_FOUND, web::expired())
        }
        Err(e) => {
            let message = e.to_string();
            let status = ApiError::from(e).into_response().status();
            html(
                status,
                web::otp_form(&format!("/-/web/otp/{otp_id}"), Some(&message)),
            )
        }
    }
}

fn html(status: StatusCode, page: String) -> Response {
    let mut response = (status, Html(page)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page must not be framed (clickjacking) nor load anything from elsewhere.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

async fn web_login_page(registry: &Registry, login_id: &str) -> Response {
    match registry.web_login_page(login_id).await {
        Ok(offer_signup) => html(
            StatusCode::OK,
            web::login_form(&format!("/-/web/login/{login_id}"), offer_signup, None),
        ),
        Err(_) => html(StatusCode::NOT_FOUND, web::expired()),
    }
}

async fn web_login_submit(registry: &Registry, call: &Call, login_id: &str) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let email = form
        .get("email")
        .map(String::as_str)
        .filter(|e| !e.is_empty());
    match registry
        .complete_web_login(
            login_id,
            field("username"),
            field("password"),
            email,
            form.get("otp")
                .map(String::as_str)
                .filter(|o| !o.is_empty()),
        )
        .await
    {
        Ok(user) => html(StatusCode::OK, web::logged_in(&user.name)),
        Err(airlock_registry::RegistryError::NotFound(_)) => {
            html(StatusCode::NOT_FOUND, web::expired())
        }
        Err(e) => {
            let message = e.to_string();
            let status = ApiError::from(e).into_response().status();
            let offer_signup = registry.web_login_page(login_id).await.unwrap_or(false);
            html(
                status,
                web::login_form(
                    &format!("/-/web/login/{login_id}"),
                    offer_signup,
                    Some(&message),
                ),
            )
        }
    }
}
