use std::time::Duration;

use airlock_registry::{CreateTokenRequest, RegistryConfig};
use airlock_testkit::PublishBody;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{BASE, Req, TestApp};

const CORGI_ACCEPT: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

fn redact(mut doc: Value) -> Value {
    fn walk(v: &mut Value, key: Option<&str>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    walk(child, Some(k));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, key)),
            Value::String(s) => match key {
                Some("integrity") => {
                    assert!(s.starts_with("sha512-"), "integrity {s}");
                    *s = "[integrity]".into();
                }
                Some("shasum") => {
                    assert_eq!(s.len(), 40, "shasum {s}");
                    *s = "[shasum]".into();
                }
                Some("_rev") => {
                    assert!(s.contains('-'), "rev {s}");
                    *s = "[rev]".into();
                }
                // A registry signature: a new key per data directory, a random nonce per
                // signature (checked in `signatures.rs`).
                Some("keyid") => {
                    assert!(s.starts_with("SHA256:") && s.len() == 50, "keyid {s}");
                    *s = "[keyid]".into();
                }
                Some("sig") => {
                    assert!(s.len() > 80 && s.starts_with("ME"), "sig {s}");
                    *s = "[sig]".into();
                }
                _ => {}
            },
            _ => {}
        }
    }
    walk(&mut doc, None);
    doc
}

#[tokio::test]
async fn packuments_have_npm_shape() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let mut body = PublishBody::new("@acme/widget", "1.0.0");
    body.manifest["dependencies"] = json!({ "left-pad": "^1.0.0" });
    body.manifest["scripts"] = json!({ "postinstall": "node setup.js", "test": "true" });
    body.manifest["keywords"] = json!(["widget"]);
    let body = body
        .clone()
        .with_files(&[("index.js", b"module.exports = 1;\n")]);
    app.published(&alice, &body).await;

    let full = app.packument("@acme/widget").await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.header("content-type"), Some("application/json"));
    insta::assert_json_snapshot!("full_packument", redact(full.json()));

    let corgi = app
        .send(Req::get("/@acme%2Fwidget").header("accept", CORGI_ACCEPT))
        .await;
    assert_eq!(corgi.status, StatusCode::OK);
    assert_eq!(
        corgi.header("content-type"),
        Some("application/vnd.npm.install-v1+json")
    );
    insta::assert_json_snapshot!("abbreviated_packument", redact(corgi.json()));
}

/// Installers read trust evidence from `_npmUser` (pnpm's `trustPolicy`: `approver` for a
/// staged publish, `trustedPublisher` for OIDC); a publisher cannot claim either.
#[tokio::test]
async fn a_publish_cannot_claim_an_approver_or_a_trusted_publisher() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let mut body = PublishBody::new("forged-evidence", "1.0.0");
    body.manifest["_npmUser"] = json!({
        "name": "alice",
        "email": "alice@example.com",
        "approver": { "name": "bob", "email": "bob@example.com" },
        "trustedPublisher": { "id": "github", "oidcConfigId": "oidc:forged" }
    });
    app.published(&alice, &body).await;
    let doc = app.packument("forged-evidence").await.json();
    assert_eq!(
        doc["versions"]["1.0.0"]["_npmUser"],
        json!({ "name": "alice", "email": "alice@example.com" }),
        "{doc:#}"
    );
}

#[tokio::test]
async fn etags_are_per_representation_and_revalidate() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("etag-demo", "1.0.0"))
        .await;

    let full = app.packument("etag-demo").await;
    let corgi = app
        .send(Req::get("/etag-demo").header("accept", CORGI_ACCEPT))
        .await;
    let full_etag = full.header("etag").unwrap().to_owned();
    let corgi_etag = corgi.header("etag").unwrap().to_owned();
    assert_ne!(full_etag, corgi_etag);
    assert_eq!(
        full.header("vary").unwrap(),
        "Accept, Accept-Encoding, Authorization"
    );
    assert!(full.header("last-modified").is_some());

    let again = app
        .send(Req::get("/etag-demo").header("if-none-match", &full_etag))
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    // The full document's ETag does not validate the corgi.
    let cross = app
        .send(
            Req::get("/etag-demo")
                .header("accept", CORGI_ACCEPT)
                .header("if-none-match", &full_etag),
        )
        .await;
    assert_eq!(cross.status, StatusCode::OK);

    // A write changes the document and its ETag.
    app.published(&alice, &PublishBody::new("etag-demo", "1.1.0"))
        .await;
    let changed = app
        .send(Req::get("/etag-demo").header("if-none-match", &full_etag))
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag").unwrap(), full_etag);
    assert!(changed.json()["versions"]["1.1.0"].is_object());
}

#[tokio::test]
async fn gzip_is_served_when_asked() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("gz-demo", "1.0.0"))
        .await;
    let plain = app.packument("gz-demo").await;
    let gz = app
        .send(Req::get("/gz-demo").header("accept-encoding", "gzip"))
        .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gz.body[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, plain.body);
    // A strong validator differs per encoding, and each revalidates.
    let gz_etag = gz.header("etag").unwrap().to_owned();
    assert_ne!(gz_etag, plain.header("etag").unwrap());
    let again = app
        .send(
            Req::get("/gz-demo")
                .header("accept-encoding", "gzip")
                .header("if-none-match", &gz_etag),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let refused = app
        .send(Req::get("/gz-demo").header("accept-encoding", "gzip;q=0, identity"))
        .await;
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.body, plain.body);
}

#[tokio::test]
async fn tarballs_under_every_scoped_spelling() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let body = PublishBody::new("@acme/lib", "2.0.0");
    app.published(&alice, &body).await;
    for path in [
        "/@acme/lib/-/lib-2.0.0.tgz",
        "/@acme%2flib/-/lib-2.0.0.tgz",
        "/@acme%2Flib/-/lib-2.0.0.tgz",
    ] {
        let r = app.send(Req::get(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(&r.body[..], &body.tarball[..], "{path}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31557600, immutable")
        );
    }
    let dist = &app.packument("@acme/lib").await.json()["versions"]["2.0.0"]["dist"];
    assert_eq!(dist["tarball"], format!("{BASE}@acme/lib/-/lib-2.0.0.tgz"));
    assert_eq!(
        app.send(Req::get("/@acme/lib/-/lib-9.9.9.tgz"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(Req::get("/@acme/lib/-/other-2.0.0.tgz"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn versions_are_never_reused() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("once", "1.0.0"))
        .await;
    app.published(&alice, &PublishBody::new("once", "1.1.0"))
        .await;

    // Other bytes under the same version.
    let mut other = PublishBody::new("once", "1.0.0");
    other.manifest["description"] = json!("different");
    let other = other.clone().with_files(&[("index.js", b"changed")]);
    let r = app.publish(&alice, &other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"You cannot publish over the previously published versions: 1.0.0.");

    // Unpublish 1.1.0 the way npm does, then try to bring it back.
    let doc = app.packument("once").await.json();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    let mut without = doc.clone();
    without["versions"].as_object_mut().unwrap().remove("1.1.0");
    let r = app
        .send(
            Req::new(Method::PUT, &format!("/once/-rev/{rev}"))
                .token(&alice)
                .json(&without),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let after = app.packument("once").await.json();
    assert_eq!(after["dist-tags"]["latest"], "1.0.0");
    assert!(after["versions"].get("1.1.0").is_none());
    assert!(after["time"].get("1.1.0").is_none());
    assert_eq!(
        app.send(Req::get("/once/-/once-1.1.0.tgz")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .publish(&alice, &PublishBody::new("once", "1.1.0"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.error().contains("1.1.0"));

    // Whole-package unpublish keeps every number taken, and the name with its maintainers.
    let rev = app.packument("once").await.json()["_rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send(Req::new(Method::DELETE, &format!("/once/-rev/{rev}")).token(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.packument("once").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.publish(&alice, &PublishBody::new("once", "1.0.0"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mallory = app.user("mallory").await;
    assert_eq!(
        app.publish(&mallory, &PublishBody::new("once", "2.0.0"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    app.published(&alice, &PublishBody::new("once", "2.0.0"))
        .await;
}

#[tokio::test]
async fn an_identical_retry_is_not_an_error() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let body = PublishBody::new("retry-demo", "1.0.0");
    assert_eq!(app.publish(&alice, &body).await.status, StatusCode::CREATED);
    let before = app.packument("retry-demo").await.json();
    let again = app.publish(&alice, &body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        app.packument("retry-demo").await.json(),
        before,
        "a retry must change nothing"
    );
    // Long after, the same bytes are an attempt to republish, not a retry.
    app.advance(Duration::from_secs(3600));
    assert_eq!(
        app.publish(&alice, &body).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn restricted_packages_do_not_exist_for_others() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let body = PublishBody::new("@secret/thing", "1.0.0");
    let mut json = body.to_json(BASE);
    json["access"] = json!("restricted");
    let r = app
        .send(
            Req::new(Method::PUT, &body.path())
                .token(&alice)
                .json(&json),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    assert_eq!(
        app.send(Req::get("/@secret%2fthing").token(&alice))
            .await
            .status,
        StatusCode::OK
    );
    for req in [
        Req::get("/@secret%2fthing"),
        Req::get("/@secret%2fthing").token(&bob),
    ] {
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.error(), "package `@secret/thing` was not found");
    }
    assert_eq!(
        app.send(Req::get("/@secret/thing/-/thing-1.0.0.tgz").token(&bob))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(Req::get("/-/package/@secret%2fthing/visibility").token(&bob))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Publishing over it does not reveal it either.
    assert_eq!(
        app.publish(&bob, &PublishBody::new("@secret/thing", "2.0.0"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .send(Req::get("/-/package/@secret%2fthing/visibility").token(&alice))
        .await;
    assert_eq!(r.json(), json!({ "public": false }));
    assert_eq!(r.header("cache-control"), None);
    let doc = app.send(Req::get("/@secret%2fthing").token(&alice)).await;
    assert_eq!(doc.header("cache-control"), Some("private, max-age=300"));
}

#[tokio::test]
async fn read_only_and_package_limited_tokens() {
    let app = TestApp::new().await;
    let read_only = app
        .user_with(
            "alice",
            CreateTokenRequest {
                readonly: Some(true),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .publish(&read_only, &PublishBody::new("ro-demo", "1.0.0"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"this token is read-only: create a read-write token with `npm token create`");

    let limited = app
        .user_with(
            "alice",
            CreateTokenRequest {
                packages: Some(vec!["allowed".into()]),
                scopes: Some(vec!["@mine".into()]),
                ..Default::default()
            },
        )
        .await;
    app.published(&limited, &PublishBody::new("allowed", "1.0.0"))
        .await;
    app.published(&limited, &PublishBody::new("@mine/x", "1.0.0"))
        .await;
    let r = app
        .publish(&limited, &PublishBody::new("other", "1.0.0"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"this token is limited to allowed, @mine; it may not change `other`");
}

#[tokio::test]
async fn another_users_token_cannot_touch_my_package() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.published(&alice, &PublishBody::new("alices", "1.0.0"))
        .await;
    let r = app
        .publish(&bob, &PublishBody::new("alices", "1.1.0"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"you are not a maintainer of `alices`: ask one of its maintainers to run `npm owner add bob alices`");
    let r = app
        .send(
            Req::new(Method::PUT, "/-/package/alices/dist-tags/evil")
                .token(&bob)
                .json(&json!("1.0.0")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let doc = app.packument("alices").await.json();
    let rev = doc["_rev"].as_str().unwrap();
    let owners = json!({ "_id": "alices", "_rev": rev, "maintainers": [{ "name": "bob", "email": "bob@example.com" }] });
    let r = app
        .send(
            Req::new(Method::PUT, &format!("/alices/-rev/{rev}"))
                .token(&bob)
                .json(&owners),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .send(Req::new(Method::DELETE, &format!("/alices/-rev/{rev}")).token(&bob))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let anon = app
        .send(
            Req::new(Method::PUT, "/alices")
                .json(&PublishBody::new("alices", "2.0.0").to_json(BASE)),
        )
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.packument("alices").await.json()["maintainers"],
        json!([{ "name": "alice", "email": "alice@example.com" }])
    );
}

#[tokio::test]
async fn scopes_belong_to_their_first_publisher_unless_assigned() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.published(&alice, &PublishBody::new("@acme/one", "1.0.0"))
        .await;
    let r = app
        .publish(&bob, &PublishBody::new("@acme/two", "1.0.0"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.error().contains("airlock scope assign @acme bob"),
        "{}",
        r.error()
    );
    // An admin gives bob the scope too.
    let bob_user = app.registry.user_by_name("bob").await.unwrap().unwrap();
    app.registry.assign_scope("@acme", &bob_user).await.unwrap();
    app.published(&bob, &PublishBody::new("@acme/two", "1.0.0"))
        .await;
    // A scope assigned before anyone published is not up for grabs.
    app.registry
        .assign_scope("@reserved", &bob_user)
        .await
        .unwrap();
    assert_eq!(
        app.publish(&alice, &PublishBody::new("@reserved/x", "1.0.0"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_stale_revision_is_a_conflict() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("rev-demo", "1.0.0"))
        .await;
    app.published(&alice, &PublishBody::new("rev-demo", "1.1.0"))
        .await;
    let stale = app.packument("rev-demo").await.json();
    let rev = stale["_rev"].as_str().unwrap().to_owned();
    app.published(&alice, &PublishBody::new("rev-demo", "1.2.0"))
        .await;
    let mut without = stale.clone();
    without["versions"].as_object_mut().unwrap().remove("1.0.0");
    let r = app
        .send(
            Req::new(Method::PUT, &format!("/rev-demo/-rev/{rev}"))
                .token(&alice)
                .json(&without),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    insta::assert_snapshot!(r.error(), @"`rev-demo` changed since you read it: run the command again");
    // Nothing was removed, 1.2.0 included.
    let versions = app.packument("rev-demo").await.json()["versions"]
        .as_object()
        .unwrap()
        .len();
    assert_eq!(versions, 3);
}

#[tokio::test]
async fn dist_tags_and_deprecation() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("tags", "1.0.0"))
        .await;
    app.published(
        &alice,
        &PublishBody::new("tags", "2.0.0-beta.1").tag("next"),
    )
    .await;
    let r = app.send(Req::get("/-/package/tags/dist-tags")).await;
    assert_eq!(
        r.json(),
        json!({ "latest": "1.0.0", "next": "2.0.0-beta.1" })
    );

    let put = |tag: &str, body: Value| {
        Req::new(Method::PUT, &format!("/-/package/tags/dist-tags/{tag}"))
            .token(&alice)
            .json(&body)
    };
    assert_eq!(
        app.send(put("legacy", json!("1.0.0"))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.send(put("legacy", json!("9.9.9"))).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(put("1.x", json!("1.0.0"))).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.send(put("legacy", json!({ "v": 1 }))).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = app
        .send(Req::new(Method::DELETE, "/-/package/tags/dist-tags/latest").token(&alice))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send(Req::new(Method::DELETE, "/-/package/tags/dist-tags/legacy").token(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // npm deprecate: the whole document back with `deprecated` set; "" undeprecates.
    let mut doc = app.packument("tags").await.json();
    doc["versions"]["1.0.0"]["deprecated"] = json!("use 2");
    doc["versions"]["1.0.0"]["dependencies"] = json!({ "sneaky": "*" });
    let r = app
        .send(Req::new(Method::PUT, "/tags").token(&alice).json(&doc))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = app.packument("tags").await.json();
    assert_eq!(after["versions"]["1.0.0"]["deprecated"], "use 2");
    assert!(
        after["versions"]["1.0.0"].get("dependencies").is_none(),
        "only `deprecated` is taken from the document"
    );
    let corgi = app
        .send(Req::get("/tags").header("accept", CORGI_ACCEPT))
        .await
        .json();
    assert_eq!(corgi["versions"]["1.0.0"]["deprecated"], "use 2");
    let mut doc = after.clone();
    doc["versions"]["1.0.0"]["deprecated"] = json!("");
    app.send(Req::new(Method::PUT, "/tags").token(&alice).json(&doc))
        .await;
    assert!(
        app.packument("tags").await.json()["versions"]["1.0.0"]
            .get("deprecated")
            .is_none()
    );
}

#[tokio::test]
async fn unpublishing_latest_moves_it_to_the_highest_release() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    for v in ["1.0.0", "1.2.0", "1.10.0"] {
        app.published(&alice, &PublishBody::new("moving", v)).await;
    }
    app.published(
        &alice,
        &PublishBody::new("moving", "2.0.0-rc.1").tag("next"),
    )
    .await;
    let doc = app.packument("moving").await.json();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    // npm's last step: DELETE the tarball; the version goes with it.
    let r = app
        .send(
            Req::new(
                Method::DELETE,
                &format!("/moving/-/moving-1.10.0.tgz/-rev/{rev}"),
            )
            .token(&alice),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = app.packument("moving").await.json();
    assert_eq!(
        after["dist-tags"],
        json!({ "latest": "1.2.0", "next": "2.0.0-rc.1" })
    );
}

#[tokio::test]
async fn private_registry_needs_a_token_to_read() {
    let app = TestApp::with_config(RegistryConfig {
        read_requires_auth: true,
        ..Default::default()
    })
    .await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("internal", "1.0.0"))
        .await;
    let r = app.packument("internal").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        app.send(Req::get("/internal/-/internal-1.0.0.tgz"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(Req::get("/-/v1/search?text=internal"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let ok = app.send(Req::get("/internal").token(&alice)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("cache-control"), Some("private, max-age=300"));
}

#[tokio::test]
async fn search_finds_public_packages_only() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let mut body = PublishBody::new("fast-widget", "1.0.0");
    body.manifest["keywords"] = json!(["Rocket"]);
    app.published(&alice, &body).await;
    let hidden = PublishBody::new("@quiet/widget", "1.0.0");
    let mut json = hidden.to_json(BASE);
    json["access"] = json!("restricted");
    app.send(
        Req::new(Method::PUT, &hidden.path())
            .token(&alice)
            .json(&json),
    )
    .await;

    let r = app
        .send(Req::get("/-/v1/search?text=widget&size=20&from=0"))
        .await
        .json();
    assert_eq!(r["total"], 1);
    let package = &r["objects"][0]["package"];
    assert_eq!(package["name"], "fast-widget");
    assert_eq!(package["publisher"]["username"], "alice");
    assert_eq!(package["maintainers"][0]["username"], "alice");
    assert_eq!(
        app.send(Req::get("/-/v1/search?text=rocket")).await.json()["total"],
        1
    );
    assert_eq!(
        app.send(Req::get("/-/v1/search?text=nothing-like-it"))
            .await
            .json()["objects"],
        json!([])
    );
    assert_eq!(
        app.send(Req::get("/-/v1/search?text=x&size=many"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

/// With no memory for the read cache, every read loads and renders afresh: the answers must
/// not change, small and large tarballs (streamed in chunks) included.
#[tokio::test]
async fn reads_are_right_without_any_cache_budget() {
    let app = TestApp::with_config(RegistryConfig {
        cache_bytes: 0,
        ..Default::default()
    })
    .await;
    let alice = app.user("alice").await;
    let small = PublishBody::new("uncached", "1.0.0");
    let large = PublishBody::with_payload("uncached", "2.0.0", 7, 3 * 1024 * 1024);
    app.published(&alice, &small).await;
    app.published(&alice, &large).await;
    for _ in 0..2 {
        for body in [&small, &large] {
            let r = app.send(Req::get(&body.tarball_path())).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(&r.body[..], &body.tarball[..]);
            let length = body.tarball.len().to_string();
            assert_eq!(r.header("content-length"), Some(length.as_str()));
        }
        let full = app.packument("uncached").await.json();
        assert_eq!(full["dist-tags"]["latest"], "2.0.0");
        let corgi = app
            .send(Req::get("/uncached").header("accept", CORGI_ACCEPT))
            .await
            .json();
        assert_eq!(
            corgi["versions"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["1.0.0", "2.0.0"]
        );
    }
    app.published(&alice, &PublishBody::new("uncached", "2.1.0"))
        .await;
    assert_eq!(
        app.packument("uncached").await.json()["dist-tags"]["latest"],
        "2.1.0"
    );
}
