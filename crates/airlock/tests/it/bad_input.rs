//! Bad input over raw HTTP: each gets the right status, a JSON `error`, and stores nothing.

use std::path::Path;

use airlock_testkit::{HttpResponse, PublishBody, ServerOptions, gzip, npm_tarball, raw_tarball};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::common::*;

fn put_json(w: &World, path: &str, body: &Value) -> HttpResponse {
    w.server
        .http("PUT", path)
        .bearer(&w.alice)
        .json(body)
        .send()
}

/// PUTs `body` (built from a valid publish of `name@1.0.0` and then broken by `break_it`), expects
/// `status` with an error, and checks that `name` was not stored.
#[track_caller]
fn rejected(w: &World, name: &str, status: u16, break_it: impl FnOnce(&mut Value)) -> String {
    let good = PublishBody::new(name, "1.0.0");
    let mut body = good.to_json(w.server.url());
    break_it(&mut body);
    let r = put_json(w, &good.path(), &body);
    let msg = assert_error(&r, status);
    assert_not_stored(&w.server, name);
    msg
}

/// The one attachment object of a body.
fn attachment(body: &mut Value) -> &mut Value {
    let atts = body["_attachments"].as_object_mut().expect("attachments");
    let key = atts.keys().next().expect("one attachment").clone();
    atts.get_mut(&key).expect("attachment")
}

/// Replaces the attachment data with `tgz` and makes `dist` agree with it, so only the tarball's
/// content is wrong.
fn set_tarball(body: &mut Value, tgz: &[u8]) {
    let version = body["versions"]
        .as_object()
        .and_then(|m| m.keys().next())
        .expect("a version")
        .clone();
    body["versions"][&version]["dist"]["integrity"] = json!(airlock_testkit::integrity_of(tgz));
    body["versions"][&version]["dist"]["shasum"] = json!(airlock_testkit::sha1_hex(tgz));
    let att = attachment(body);
    att["data"] = json!(BASE64.encode(tgz));
    att["length"] = json!(tgz.len());
}

#[test]
fn invalid_package_names_are_rejected() {
    let w = world();
    let long = "a".repeat(215);
    let names = [
        "UpperCase",
        ".leading-dot",
        "_leading-underscore",
        "has space",
        "caf\u{e9}",
        "colon:name",
        "node_modules",
        "favicon.ico",
        long.as_str(),
        "@Scope/lib",
        "@scope/.dot",
        "@/lib",
        "@scope/",
        " leading-space",
    ];
    for name in names {
        let body = PublishBody::new(name, "1.0.0");
        let path = format!("/{}", encode_name(name));
        let r = w
            .server
            .http("PUT", &path)
            .bearer(&w.alice)
            .json(&body.to_json(w.server.url()))
            .send();
        assert_eq!(
            r.status, 400,
            "invalid name {name:?} must be refused with 400: {r:?}"
        );
        r.error_message();
        let get = w.server.get(&path);
        assert!(
            !(200..300).contains(&get.status),
            "nothing stored for {name:?}: {get:?}"
        );
        get.error_message();
    }
    let r = put_json(
        &w,
        &format!("/{}", encode_name("UpperCase")),
        &PublishBody::new("UpperCase", "1.0.0").to_json(w.server.url()),
    );
    insta::assert_json_snapshot!("error_invalid_name", r.json());
}

#[test]
fn malformed_json_is_rejected() {
    let w = world();
    let r = w
        .server
        .http("PUT", "/broken-json")
        .bearer(&w.alice)
        .header("content-type", "application/json")
        .body(r#"{"name": "broken-json", "versions": {"#)
        .send();
    assert_error(&r, 400);
    assert_not_stored(&w.server, "broken-json");
}

#[test]
fn a_body_of_the_wrong_shape_is_rejected() {
    let w = world();
    for body in [
        json!([]),
        json!("a string"),
        json!({"name": "shapeless"}),
        json!({"name": "shapeless", "versions": {}, "_attachments": {}}),
    ] {
        let r = put_json(&w, "/shapeless", &body);
        assert_error(&r, 400);
    }
    assert_not_stored(&w.server, "shapeless");
}

#[test]
fn bad_base64_is_rejected() {
    let w = world();
    rejected(&w, "bad-base64", 400, |b| {
        attachment(b)["data"] = json!("!!!this is not base64@@@")
    });
}

#[test]
fn a_missing_attachment_is_rejected() {
    let w = world();
    rejected(&w, "no-attachment", 400, |b| b["_attachments"] = json!({}));

    // Without `_attachments` a PUT looks like a metadata update (npm deprecate sends those); it
    // must still never add a version that has no bytes.
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("no-bytes", "1.0.0"),
    )
    .assert_success();
    let mut body = PublishBody::new("no-bytes", "1.0.1").to_json(w.server.url());
    body.as_object_mut().expect("object").remove("_attachments");
    let r = put_json(&w, "/no-bytes", &body);
    assert_client_error(&r);
    let doc = packument_json(&w.server, "no-bytes");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
}

#[test]
fn extra_attachments_are_rejected() {
    let w = world();
    rejected(&w, "extra-attachment", 400, |b| {
        let copy = attachment(b).clone();
        b["_attachments"]["extra-attachment-2.0.0.tgz"] = copy;
    });
}

#[test]
fn an_attachment_for_another_version_is_rejected() {
    let w = world();
    rejected(&w, "misnamed-attachment", 400, |b| {
        let copy = attachment(b).clone();
        b["_attachments"] = json!({"misnamed-attachment-9.9.9.tgz": copy});
    });
}

#[test]
fn an_integrity_mismatch_is_rejected() {
    let w = world();
    let other = airlock_testkit::integrity_of(b"some other bytes");
    rejected(&w, "integrity-mismatch", 400, |b| {
        b["versions"]["1.0.0"]["dist"]["integrity"] = json!(other)
    });
    rejected(&w, "shasum-mismatch", 400, |b| {
        b["versions"]["1.0.0"]["dist"]["shasum"] =
            json!("0000000000000000000000000000000000000000");
    });
    rejected(&w, "integrity-garbage", 400, |b| {
        b["versions"]["1.0.0"]["dist"]["integrity"] = json!("sha512-???")
    });
}

#[test]
fn a_tarball_that_is_not_gzip_is_rejected() {
    let w = world();
    rejected(&w, "not-gzip", 400, |b| {
        set_tarball(b, b"plain text, not a tarball")
    });
}

#[test]
fn a_gzip_that_is_not_a_tar_is_rejected() {
    let w = world();
    rejected(&w, "not-tar", 400, |b| {
        set_tarball(b, &gzip(b"gzip of plain text, not a tar archive"))
    });
}

#[test]
fn a_tarball_without_package_json_is_rejected() {
    let w = world();
    let tgz = raw_tarball(&[("package/index.js".to_owned(), b"module.exports = 1;\n")]);
    rejected(&w, "no-package-json", 400, |b| set_tarball(b, &tgz));
}

#[test]
fn a_tarball_whose_package_json_disagrees_is_rejected() {
    let w = world();
    let wrong_name = npm_tarball(
        &json!({"name": "someone-else", "version": "1.0.0"}),
        &[("index.js", b"1")],
    );
    let msg = rejected(&w, "disagree-name", 400, |b| set_tarball(b, &wrong_name));
    assert!(
        msg.contains("name") || msg.contains("someone-else"),
        "the error says what disagrees: {msg}"
    );
    let wrong_version = npm_tarball(
        &json!({"name": "disagree-version", "version": "6.6.6"}),
        &[("index.js", b"1")],
    );
    rejected(&w, "disagree-version", 400, |b| {
        set_tarball(b, &wrong_version)
    });
}

#[test]
fn a_body_naming_another_package_than_the_url_is_rejected() {
    let w = world();
    let body = PublishBody::new("body-name", "1.0.0").to_json(w.server.url());
    let r = put_json(&w, "/url-name", &body);
    assert_error(&r, 400);
    assert_not_stored(&w.server, "url-name");
    assert_not_stored(&w.server, "body-name");
}

#[test]
fn version_problems_are_rejected() {
    let w = world();
    // Not semver.
    let bad = PublishBody::new("bad-version", "1.0");
    let r = put_json(&w, &bad.path(), &bad.to_json(w.server.url()));
    assert_error(&r, 400);
    assert_not_stored(&w.server, "bad-version");
    // Two versions in one publish.
    rejected(&w, "two-versions", 400, |b| {
        let mut copy = b["versions"]["1.0.0"].clone();
        copy["version"] = json!("1.0.1");
        b["versions"]["1.0.1"] = copy;
    });
    // The dist-tag points at a version that is not being published.
    rejected(&w, "tag-elsewhere", 400, |b| {
        b["dist-tags"] = json!({"latest": "9.9.9"})
    });
    // A tag that is a valid semver range.
    rejected(&w, "semver-tag", 400, |b| {
        b["dist-tags"] = json!({"1.0.0": "1.0.0"})
    });
    // The version object disagrees with its key.
    rejected(&w, "key-disagrees", 400, |b| {
        b["versions"]["1.0.0"]["version"] = json!("1.0.1")
    });
}

#[test]
fn bodies_over_the_limit_are_rejected() {
    let w = world_with(ServerOptions::new().config("max_body_bytes = 200000\n"));
    // Just under: fine.
    let small = PublishBody::with_payload("small-enough", "1.0.0", 1, 50_000);
    publish_raw(&w.server, Some(&w.alice), &small).assert_success();
    // Over: 413 with an error.
    let big = PublishBody::with_payload("too-big", "1.0.0", 2, 190_000);
    let r = publish_raw(&w.server, Some(&w.alice), &big);
    assert_error(&r, 413);
    assert_not_stored(&w.server, "too-big");
}

#[test]
fn path_traversal_is_rejected_everywhere() {
    let w = world();
    let body = PublishBody::new("victim", "1.0.0");
    publish_raw(&w.server, Some(&w.alice), &body).assert_success();

    // Names that climb out.
    for path in [
        "/..%2fescape",
        "/%2e%2e%2fescape",
        "/@scope%2f..%2fescape",
        "/@..%2fescape",
        "/..%2F..%2Fescape",
    ] {
        let mut evil = PublishBody::new("escape", "1.0.0").to_json(w.server.url());
        evil["name"] = json!("../escape");
        evil["_id"] = json!("../escape");
        let r = put_json(&w, path, &evil);
        assert!(r.status == 400 || r.status == 404, "PUT {path}: {r:?}");
        r.error_message();
    }
    // An attachment filename that climbs out.
    rejected(&w, "escape-attachment", 400, |b| {
        let copy = attachment(b).clone();
        b["_attachments"] = json!({"../../escape-attachment-1.0.0.tgz": copy});
    });
    // Tarball downloads that climb out.
    for path in [
        "/victim/-/..%2f..%2fairlock.db",
        "/victim/-/../../etc/passwd",
        "/victim/-/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/victim/-/victim-1.0.0.tgz%2f..%2f..%2f..%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let r = w.server.get(path);
        assert!(r.status == 400 || r.status == 404, "GET {path}: {r:?}");
        r.error_message();
        assert!(!r.text().contains("root:"), "{path} leaked a file: {r:?}");
    }
    // Nothing named `escape*` appeared anywhere near the data directory.
    let root = w.server.temp_dir();
    let found = find_files(root, "escape");
    assert!(
        found.is_empty(),
        "files written outside the store: {found:?}"
    );
    assert_not_stored(&w.server, "escape");
    download_verified(&w.server, "victim", "1.0.0");
}

fn find_files(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(needle))
        {
            out.push(p.display().to_string());
        }
        if p.is_dir() {
            out.extend(find_files(&p, needle));
        }
    }
    out
}

#[test]
fn unknown_routes_answer_json_errors() {
    let w = world();
    for (method, path) in [
        ("GET", "/-/no-such-route"),
        ("POST", "/-/v1/nope"),
        ("GET", "/-/npm/v1/nope"),
        ("DELETE", "/-/whatever/else"),
        ("GET", "/some-pkg/-/some-pkg-1.0.0.tgz"),
        ("GET", "/no-such-package"),
        ("PATCH", "/no-such-package"),
    ] {
        let r = w.server.http(method, path).bearer(&w.alice).send();
        assert!(r.status == 404 || r.status == 405, "{method} {path}: {r:?}");
        r.error_message();
    }
    let r = w.server.get("/-/no-such-route");
    insta::assert_json_snapshot!("error_unknown_route", r.json());
}

#[test]
fn the_default_body_limit_is_100_mib() {
    let w = world();
    // Only the head claims the size: a registry must refuse on Content-Length alone, before it
    // reads (or buffers) a byte of such a body.
    let r = w
        .server
        .http("PUT", "/huge-pkg")
        .bearer(&w.alice)
        .header("content-type", "application/json")
        .header("content-length", &(100 * 1024 * 1024 + 1).to_string())
        .body("{")
        .timeout(std::time::Duration::from_secs(20))
        .send();
    assert_error(&r, 413);
    assert_not_stored(&w.server, "huge-pkg");
}
