//! Package management through npm: unpublish, deprecate, dist-tag, owner, access, search, ping,
//! view, and the bulk-advisory endpoint.

use airlock_testkit::{PackageDir, gzip};
use serde_json::json;

use crate::common::*;

/// Publishes `name` at each version (in order) with npm as alice; returns the package dir.
fn publish_versions(w: &World, name: &str, versions: &[&str]) -> PackageDir {
    let mut pkg = PackageDir::new(name, versions[0]);
    for v in versions {
        pkg.set_version(v);
        w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    }
    pkg
}

#[test]
fn npm_unpublish_one_version() {
    let w = world();
    publish_versions(&w, "unpub-pkg", &["1.0.0", "1.1.0"]);
    let tarball = path_of(
        &w.server,
        packument_json(&w.server, "unpub-pkg")["versions"]["1.1.0"]["dist"]["tarball"]
            .as_str()
            .expect("tarball"),
    );
    let out = w.npm.npm(&["unpublish", "unpub-pkg@1.1.0"]);
    out.assert_ok();
    out.assert_contains("- unpub-pkg@1.1.0");
    let doc = packument_json(&w.server, "unpub-pkg");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(
        doc["dist-tags"],
        json!({"latest": "1.0.0"}),
        "latest moves back"
    );
    assert!(
        doc["time"].get("1.1.0").is_none(),
        "time[v] goes with the version: {:#}",
        doc["time"]
    );
    assert_eq!(w.server.get(&tarball).status, 404, "the tarball is gone");
    download_verified(&w.server, "unpub-pkg", "1.0.0");
}

#[test]
fn npm_unpublish_whole_package() {
    let w = world();
    publish_versions(&w, "@acme/unpub-all", &["1.0.0", "1.0.1"]);
    let tarball = path_of(
        &w.server,
        packument_json(&w.server, "@acme/unpub-all")["versions"]["1.0.0"]["dist"]["tarball"]
            .as_str()
            .expect("tarball"),
    );
    let out = w.npm.npm(&["unpublish", "@acme/unpub-all", "--force"]);
    out.assert_ok();
    assert_not_stored(&w.server, "@acme/unpub-all");
    assert_eq!(w.server.get(&tarball).status, 404);
    let view = w.npm.npm(&["view", "@acme/unpub-all"]);
    view.assert_failed();
    view.assert_contains("404");
}

#[test]
fn npm_deprecate_and_undeprecate() {
    let w = world();
    publish_versions(&w, "old-pkg", &["1.0.0", "1.1.0", "2.0.0"]);
    w.npm
        .npm(&["deprecate", "old-pkg@<2", "use v2"])
        .assert_ok();
    let doc = packument_json(&w.server, "old-pkg");
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], "use v2");
    assert_eq!(doc["versions"]["1.1.0"]["deprecated"], "use v2");
    assert!(
        doc["versions"]["2.0.0"].get("deprecated").is_none(),
        "{doc:#}"
    );
    // Installers see it too (the corgi carries `deprecated`).
    let corgi = w
        .server
        .http("GET", "/old-pkg")
        .header("accept", "application/vnd.npm.install-v1+json")
        .send()
        .json();
    assert_eq!(corgi["versions"]["1.0.0"]["deprecated"], "use v2");
    let project = w.npm.project("consumer");
    let install = w.npm.npm_in(&project, &["install", "old-pkg@1.0.0"]);
    install.assert_ok();
    install.assert_contains("deprecated old-pkg@1.0.0: use v2");

    w.npm.npm(&["undeprecate", "old-pkg@<2"]).assert_ok();
    let doc = packument_json(&w.server, "old-pkg");
    for v in ["1.0.0", "1.1.0", "2.0.0"] {
        let dep = &doc["versions"][v]["deprecated"];
        assert!(
            dep.is_null() || dep == "",
            "{v} is no longer deprecated: {dep}"
        );
    }
    // Nothing else changed.
    assert_eq!(versions_of(&doc), ["1.0.0", "1.1.0", "2.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "2.0.0"}));
    download_verified(&w.server, "old-pkg", "1.1.0");
}

#[test]
fn npm_dist_tag_add_ls_rm() {
    let w = world();
    publish_versions(&w, "tag-pkg", &["1.0.0", "2.0.0"]);
    w.npm
        .npm(&["dist-tag", "add", "tag-pkg@1.0.0", "legacy"])
        .assert_ok()
        .assert_contains("legacy: tag-pkg@1.0.0");
    let ls = w.npm.npm(&["dist-tag", "ls", "tag-pkg"]);
    ls.assert_ok();
    assert_eq!(ls.stdout.trim(), "latest: 2.0.0\nlegacy: 1.0.0");
    let r = w.server.get("/-/package/tag-pkg/dist-tags");
    r.assert_status(200);
    assert_eq!(r.json(), json!({"latest": "2.0.0", "legacy": "1.0.0"}));
    assert_eq!(
        packument_json(&w.server, "tag-pkg")["dist-tags"]["legacy"],
        "1.0.0"
    );

    w.npm
        .npm(&["dist-tag", "rm", "tag-pkg", "legacy"])
        .assert_ok();
    let ls = w.npm.npm(&["dist-tag", "ls", "tag-pkg"]);
    ls.assert_ok();
    assert_eq!(ls.stdout.trim(), "latest: 2.0.0");
    assert_eq!(
        packument_json(&w.server, "tag-pkg")["dist-tags"],
        json!({"latest": "2.0.0"})
    );
}

#[test]
fn dist_tag_to_a_missing_version_is_refused() {
    let w = world();
    publish_versions(&w, "tag-missing", &["1.0.0"]);
    let r = w
        .server
        .http("PUT", "/-/package/tag-missing/dist-tags/next")
        .bearer(&w.alice)
        .json(&json!("9.9.9"))
        .send();
    assert_client_error(&r);
    assert_eq!(
        packument_json(&w.server, "tag-missing")["dist-tags"],
        json!({"latest": "1.0.0"})
    );
}

#[test]
fn npm_owner_add_ls_rm() {
    let w = world();
    let (_bob_token, bob) = w.user("bob");
    let mut pkg = publish_versions(&w, "owned-pkg", &["1.0.0"]);
    let ls = w.npm.npm(&["owner", "ls", "owned-pkg"]);
    ls.assert_ok();
    assert_eq!(ls.stdout.trim(), "alice <alice@example.com>");

    w.npm.npm(&["owner", "add", "bob", "owned-pkg"]).assert_ok();
    let ls = w.npm.npm(&["owner", "ls", "owned-pkg"]);
    ls.assert_ok();
    assert!(
        ls.stdout.contains("alice <alice@example.com>")
            && ls.stdout.contains("bob <bob@example.com>"),
        "{ls:?}"
    );
    // Bob may now publish.
    pkg.set_version("1.0.1");
    bob.npm_in(pkg.path(), &["publish"]).assert_ok();
    assert_eq!(
        packument_json(&w.server, "owned-pkg")["versions"]["1.0.1"]["_npmUser"]["name"],
        "bob"
    );

    w.npm.npm(&["owner", "rm", "bob", "owned-pkg"]).assert_ok();
    let ls = w.npm.npm(&["owner", "ls", "owned-pkg"]);
    ls.assert_ok();
    assert_eq!(ls.stdout.trim(), "alice <alice@example.com>");
    pkg.set_version("1.0.2");
    let refused = bob.npm_in(pkg.path(), &["publish"]);
    refused.assert_failed();
    refused.assert_contains("403");
    assert_eq!(
        versions_of(&packument_json(&w.server, "owned-pkg")),
        ["1.0.0", "1.0.1"]
    );
}

#[test]
fn owner_add_of_unknown_user_fails() {
    let w = world();
    publish_versions(&w, "owned-alone", &["1.0.0"]);
    let out = w.npm.npm(&["owner", "add", "nobody-here", "owned-alone"]);
    out.assert_failed();
    assert_eq!(
        packument_json(&w.server, "owned-alone")["maintainers"],
        json!([{"name": "alice", "email": "alice@example.com"}])
    );
}

#[test]
fn npm_access_get_status() {
    let w = world();
    publish_versions(&w, "@acme/visible", &["1.0.0"]);
    let out = w.npm.npm(&["access", "get", "status", "@acme/visible"]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "@acme/visible: public");
    let r = w.server.get("/-/package/@acme%2fvisible/visibility");
    r.assert_status(200);
    assert_eq!(r.json(), json!({"public": true}));
}

#[test]
fn npm_search() {
    let w = world();
    let mut a = PackageDir::new("frob-widget", "1.2.0");
    a.description("a frobnicating widget")
        .set("keywords", json!(["frobnicate", "widget"]));
    w.npm.npm_in(a.path(), &["publish"]).assert_ok();
    let mut b = PackageDir::new("unrelated-thing", "1.0.0");
    b.description("nothing to see");
    w.npm.npm_in(b.path(), &["publish"]).assert_ok();

    let out = w.npm.npm(&["search", "frobnicate"]);
    out.assert_ok();
    out.assert_contains("frob-widget");
    assert!(!out.stdout.contains("unrelated-thing"), "{out:?}");
    let out = w.npm.npm(&["search", "frob-widget"]);
    out.assert_ok();
    out.assert_contains("frob-widget");
    let none = w.npm.npm(&["search", "zzzznomatch"]);
    none.assert_ok();
    none.assert_contains("No matches found");

    let r = w.server.get(
        "/-/v1/search?text=frobnicate&size=20&from=0&quality=0.65&popularity=0.98&maintenance=0.5",
    );
    r.assert_status(200);
    let mut body = normalize(&w.server, &r.json());
    // Scores are the server's business; the shape is what npm reads.
    if let Some(objs) = body["objects"].as_array_mut() {
        for o in objs {
            if o.get("score").is_some() {
                o["score"] = json!("[score]");
            }
            if o.get("searchScore").is_some() {
                o["searchScore"] = json!("[score]");
            }
        }
    }
    insta::assert_json_snapshot!("search", body);
}

#[test]
fn npm_ping() {
    let w = world();
    let out = w.npm.npm(&["ping"]);
    out.assert_ok();
    out.assert_contains("PONG");
}

#[test]
fn npm_view() {
    let w = world();
    let mut pkg = PackageDir::new("viewed-pkg", "1.0.0");
    pkg.description("a package to look at")
        .dependency("demo-pkg", "^1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    pkg.set_version("1.1.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();

    let out = w.npm.npm(&["view", "viewed-pkg"]);
    out.assert_ok();
    for needle in [
        "viewed-pkg@1.1.0",
        "a package to look at",
        "latest: 1.1.0",
        "demo-pkg: ^1.0.0",
        "alice",
    ] {
        out.assert_contains(needle);
    }
    let versions = w.npm.npm(&["view", "viewed-pkg", "versions", "--json"]);
    versions.assert_ok();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&versions.stdout).expect("json"),
        json!(["1.0.0", "1.1.0"])
    );
    let one = w.npm.npm(&["view", "viewed-pkg@1.0.0", "dist.integrity"]);
    one.assert_ok();
    let doc = packument_json(&w.server, "viewed-pkg");
    assert_eq!(
        one.stdout.trim(),
        doc["versions"]["1.0.0"]["dist"]["integrity"]
            .as_str()
            .expect("integrity")
    );
}

#[test]
fn bulk_advisory_endpoint_answers_empty_object() {
    let w = world();
    let body = gzip(br#"{"demo-pkg":["1.0.0"]}"#);
    let r = w
        .server
        .http("POST", "/-/npm/v1/security/advisories/bulk")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send();
    r.assert_status(200);
    assert_eq!(r.json(), json!({}));

    // npm's own audit after install is happy with it.
    publish_versions(&w, "audited-pkg", &["1.0.0"]);
    let npm = airlock_testkit::NpmEnv::new(&w.server)
        .with_token(&w.alice)
        .with_audit();
    let project = npm.project("audited");
    let out = npm.npm_in(&project, &["install", "audited-pkg"]);
    out.assert_ok();
    out.assert_contains("found 0 vulnerabilities");
}

#[test]
fn a_metadata_put_changes_nothing_but_deprecation() {
    // npm deprecate PUTs the whole packument back; nothing else in it may take effect.
    let w = world();
    let (_bob, _bob_npm) = w.user("bob");
    publish_versions(&w, "meta-pkg", &["1.0.0", "1.1.0"]);
    let before = packument_json(&w.server, "meta-pkg");
    let mut doc = w
        .server
        .http("GET", "/meta-pkg?write=true")
        .bearer(&w.alice)
        .send()
        .json();
    doc["versions"]["1.0.0"]["deprecated"] = json!("old");
    doc["versions"]["1.0.0"]["dist"]["integrity"] = json!("sha512-AAAA");
    doc["versions"]["1.0.0"]["dist"]["tarball"] = json!("http://evil.example/x.tgz");
    doc["versions"]["1.1.0"]["dependencies"] = json!({"evil": "*"});
    doc["versions"]["6.6.6"] = doc["versions"]["1.0.0"].clone();
    doc["versions"]["6.6.6"]["version"] = json!("6.6.6");
    doc["dist-tags"]["latest"] = json!("6.6.6");
    doc["maintainers"] = json!([{"name": "bob", "email": "bob@example.com"}]);
    doc["time"]["1.0.0"] = json!("2000-01-01T00:00:00.000Z");
    let r = w
        .server
        .http("PUT", "/meta-pkg")
        .bearer(&w.alice)
        .json(&doc)
        .send();
    let after = packument_json(&w.server, "meta-pkg");
    if (200..300).contains(&r.status) {
        assert_eq!(after["versions"]["1.0.0"]["deprecated"], "old");
    } else {
        assert_client_error(&r);
    }
    // Whatever the answer, only `deprecated` may have changed.
    assert_eq!(versions_of(&after), ["1.0.0", "1.1.0"]);
    assert_eq!(after["dist-tags"], before["dist-tags"]);
    assert_eq!(after["maintainers"], before["maintainers"]);
    assert_eq!(after["time"]["1.0.0"], before["time"]["1.0.0"]);
    assert_eq!(
        after["versions"]["1.0.0"]["dist"],
        before["versions"]["1.0.0"]["dist"]
    );
    assert_eq!(after["versions"]["1.1.0"], before["versions"]["1.1.0"]);
    download_verified(&w.server, "meta-pkg", "1.0.0");
}
