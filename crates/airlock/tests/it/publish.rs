//! `npm publish`: unscoped, scoped, tags, prereleases, version reuse, retries, packument shapes.

use airlock_testkit::{PackageDir, PublishBody};
use serde_json::json;

use crate::common::*;

#[test]
fn npm_publish_unscoped() {
    let w = world();
    let pkg = PackageDir::new("demo-pkg", "1.0.0");
    let out = w.npm.npm_in(pkg.path(), &["publish"]);
    out.assert_ok();
    out.assert_contains("+ demo-pkg@1.0.0");

    let doc = packument_json(&w.server, "demo-pkg");
    assert_eq!(doc["name"], "demo-pkg");
    assert_eq!(doc["_id"], "demo-pkg");
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    let v = &doc["versions"]["1.0.0"];
    assert_eq!(v["name"], "demo-pkg");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(
        v["_npmUser"]["name"], "alice",
        "Airlock records who published: {v:#}"
    );
    assert_eq!(v["_npmUser"]["email"], "alice@example.com");
    assert_eq!(
        doc["maintainers"],
        json!([{"name": "alice", "email": "alice@example.com"}])
    );
    assert_eq!(
        v["dist"]["tarball"],
        format!("{}demo-pkg/-/demo-pkg-1.0.0.tgz", w.server.url())
    );
    assert!(
        doc["time"]["1.0.0"].as_str().is_some_and(is_timestamp),
        "{doc:#}"
    );
    let bytes = download_verified(&w.server, "demo-pkg", "1.0.0");
    assert!(!bytes.is_empty());
}

#[test]
fn npm_publish_scoped() {
    let w = world();
    let pkg = PackageDir::new("@acme/widget", "1.0.0");
    let out = w.npm.npm_in(pkg.path(), &["publish"]);
    out.assert_ok();
    out.assert_contains("+ @acme/widget@1.0.0");
    let doc = packument_json(&w.server, "@acme/widget");
    assert_eq!(doc["name"], "@acme/widget");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        format!("{}@acme/widget/-/widget-1.0.0.tgz", w.server.url()),
        "the server computes its own tarball URL"
    );
    download_verified(&w.server, "@acme/widget", "1.0.0");
}

#[test]
fn npm_publish_with_tag() {
    let w = world();
    let mut pkg = PackageDir::new("tagged-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    pkg.set_version("2.0.0");
    w.npm
        .npm_in(pkg.path(), &["publish", "--tag", "next"])
        .assert_ok();
    let doc = packument_json(&w.server, "tagged-pkg");
    assert_eq!(
        doc["dist-tags"],
        json!({"latest": "1.0.0", "next": "2.0.0"})
    );
    assert_eq!(versions_of(&doc), ["1.0.0", "2.0.0"]);
}

#[test]
fn npm_publish_prerelease() {
    let w = world();
    let mut pkg = PackageDir::new("pre-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    pkg.set_version("1.1.0-beta.1");
    w.npm
        .npm_in(pkg.path(), &["publish", "--tag", "beta"])
        .assert_ok();
    let doc = packument_json(&w.server, "pre-pkg");
    assert_eq!(
        doc["dist-tags"],
        json!({"latest": "1.0.0", "beta": "1.1.0-beta.1"})
    );
    download_verified(&w.server, "pre-pkg", "1.1.0-beta.1");
    let view = w.npm.npm(&["view", "pre-pkg@beta", "version"]);
    view.assert_ok();
    assert_eq!(view.stdout.trim(), "1.1.0-beta.1");
}

#[test]
fn republishing_a_version_is_refused_naming_it() {
    let w = world();
    let first = PublishBody::new("once-pkg", "1.0.0");
    publish_raw(&w.server, Some(&w.alice), &first).assert_success();
    // Same version, different bytes.
    let mut second = PublishBody::new("once-pkg", "1.0.0");
    second.manifest["description"] = json!("sneaky replacement");
    let second = second.with_files(&[("index.js", b"module.exports = 'evil';\n")]);
    let r = publish_raw(&w.server, Some(&w.alice), &second);
    let msg = assert_error(&r, 403);
    assert!(msg.contains("1.0.0"), "the error names the version: {msg}");
    insta::assert_json_snapshot!("error_republish", r.json());
    assert_eq!(
        download_verified(&w.server, "once-pkg", "1.0.0"),
        first.tarball,
        "bytes unchanged"
    );
}

#[test]
fn npm_republishing_a_prerelease_is_refused_by_the_server() {
    // npm's own pre-check skips prereleases, so this reaches the registry: a rebuilt package
    // (different bytes) under a version that exists.
    let w = world();
    let mut pkg = PackageDir::new("pre-again", "3.0.0-beta.1");
    w.npm
        .npm_in(pkg.path(), &["publish", "--tag", "beta"])
        .assert_ok();
    let published = download_verified(&w.server, "pre-again", "3.0.0-beta.1");
    pkg.description("rebuilt with other contents");
    let again = w.npm.npm_in(pkg.path(), &["publish", "--tag", "beta"]);
    again.assert_failed();
    again.assert_contains("403");
    again.assert_contains("3.0.0-beta.1");
    let now = download_verified(&w.server, "pre-again", "3.0.0-beta.1");
    assert_eq!(now, published, "bytes unchanged");
}

#[test]
fn republishing_after_unpublish_is_refused() {
    let w = world();
    let mut pkg = PackageDir::new("gone-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    pkg.set_version("1.1.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    w.npm.npm(&["unpublish", "gone-pkg@1.1.0"]).assert_ok();
    let again = w.npm.npm_in(pkg.path(), &["publish"]);
    again.assert_failed();
    again.assert_contains("403");
    again.assert_contains("1.1.0");
    let doc = packument_json(&w.server, "gone-pkg");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
}

#[test]
fn republishing_after_whole_package_unpublish_is_refused() {
    let w = world();
    let pkg = PackageDir::new("gone-whole", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    w.npm
        .npm(&["unpublish", "gone-whole", "--force"])
        .assert_ok();
    assert_not_stored(&w.server, "gone-whole");
    let again = w.npm.npm_in(pkg.path(), &["publish"]);
    again.assert_failed();
    again.assert_contains("403");
    again.assert_contains("1.0.0");
    assert_not_stored(&w.server, "gone-whole");
}

#[test]
fn an_identical_retried_put_corrupts_nothing() {
    let w = world();
    let body = PublishBody::new("retry-pkg", "1.0.0");
    publish_raw(&w.server, Some(&w.alice), &body).assert_success();
    let again = publish_raw(&w.server, Some(&w.alice), &body);
    if !(200..300).contains(&again.status) {
        let msg = assert_client_error(&again);
        assert!(
            again.status == 403 || again.status == 409,
            "a repeat is 2xx, 403 or 409: {again:?}"
        );
        assert!(msg.contains("1.0.0"), "{msg}");
    }
    let doc = packument_json(&w.server, "retry-pkg");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["integrity"],
        body.tarball().integrity()
    );
    assert_eq!(
        download_verified(&w.server, "retry-pkg", "1.0.0"),
        body.tarball
    );
}

/// Two versions (the second with a dependency and a `beta` tag) published with fixed bytes, so
/// the packument is the same on every run once times and URLs are normalised.
fn publish_fixture(w: &World) {
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("shape-pkg", "1.0.0"),
    )
    .assert_success();
    let mut two = PublishBody::new("shape-pkg", "1.1.0-beta.0").tag("beta");
    two.manifest["dependencies"] = json!({"demo-pkg": "^1.0.0"});
    two.manifest["bin"] = json!({"shape": "index.js"});
    two.manifest["engines"] = json!({"node": ">=18"});
    let two = two.with_files(&[("index.js", b"#!/usr/bin/env node\nmodule.exports = 2;\n")]);
    publish_raw(&w.server, Some(&w.alice), &two).assert_success();
}

#[test]
fn full_packument_shape() {
    let w = world();
    publish_fixture(&w);
    let r = packument(&w.server, "shape-pkg", None);
    r.assert_status(200);
    insta::assert_json_snapshot!("packument_full", normalize(&w.server, &r.json()));
}

#[test]
fn abbreviated_packument_shape() {
    let w = world();
    publish_fixture(&w);
    let r = w
        .server
        .http("GET", "/shape-pkg")
        .header(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .send();
    r.assert_status(200);
    let doc = r.json();
    assert!(
        doc.get("readme").is_none(),
        "the corgi leaves out the readme"
    );
    assert!(
        doc["modified"].as_str().is_some_and(is_timestamp),
        "corgi has `modified`: {doc:#}"
    );
    insta::assert_json_snapshot!("packument_abbreviated", normalize(&w.server, &doc));
}
