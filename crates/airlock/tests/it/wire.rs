//! HTTP-level behaviour installers rely on: representations, ETags, 304, gzip, `time`, and the
//! three spellings of scoped names.

use airlock_testkit::PublishBody;
use serde_json::json;

use crate::common::*;

const CORGI: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

#[test]
fn etags_differ_per_representation_and_revalidate() {
    let w = world();
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("etag-pkg", "1.0.0"),
    )
    .assert_success();
    let full = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", "application/json")
        .send();
    full.assert_status(200);
    let corgi = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", CORGI)
        .send();
    corgi.assert_status(200);
    let full_etag = full
        .header("etag")
        .unwrap_or_else(|| panic!("full packument has an ETag: {full:?}"))
        .to_owned();
    let corgi_etag = corgi
        .header("etag")
        .unwrap_or_else(|| panic!("corgi has an ETag: {corgi:?}"))
        .to_owned();
    assert_ne!(full_etag, corgi_etag, "one ETag per representation");
    assert!(
        corgi
            .header("content-type")
            .is_some_and(|c| c.contains("application/vnd.npm.install-v1+json")),
        "corgi content-type: {corgi:?}"
    );
    assert!(
        full.header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept")),
        "Vary: Accept: {full:?}"
    );

    // Each revalidates with its own ETag…
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", "application/json")
        .header("if-none-match", &full_etag)
        .send();
    r.assert_status(304);
    assert!(r.body.is_empty());
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", CORGI)
        .header("if-none-match", &corgi_etag)
        .send();
    r.assert_status(304);
    // …and not with the other's.
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", "application/json")
        .header("if-none-match", &corgi_etag)
        .send();
    r.assert_status(200);
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", CORGI)
        .header("if-none-match", &full_etag)
        .send();
    r.assert_status(200);
    // `?write=true` reads revalidate the same way.
    let r = w
        .server
        .http("GET", "/etag-pkg?write=true")
        .header("accept", "application/json")
        .header("if-none-match", &full_etag)
        .send();
    r.assert_status(304);

    // A write changes the ETag and the old one no longer matches.
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("etag-pkg", "1.1.0"),
    )
    .assert_success();
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", "application/json")
        .header("if-none-match", &full_etag)
        .send();
    r.assert_status(200);
    assert_eq!(versions_of(&r.json()), ["1.0.0", "1.1.0"]);
    assert_ne!(r.header("etag"), Some(full_etag.as_str()));
    let r = w
        .server
        .http("GET", "/etag-pkg")
        .header("accept", CORGI)
        .header("if-none-match", &corgi_etag)
        .send();
    r.assert_status(200);
    assert_eq!(versions_of(&r.json()), ["1.0.0", "1.1.0"]);
}

#[test]
fn packuments_are_gzipped_when_asked() {
    let w = world();
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("gzip-pkg", "1.0.0"),
    )
    .assert_success();
    for accept in ["application/json", CORGI] {
        let plain = w
            .server
            .http("GET", "/gzip-pkg")
            .header("accept", accept)
            .send();
        plain.assert_status(200);
        assert!(
            plain.header("content-encoding").is_none(),
            "no gzip unless asked: {plain:?}"
        );
        let zipped = w
            .server
            .http("GET", "/gzip-pkg")
            .header("accept", accept)
            .header("accept-encoding", "gzip,deflate")
            .send();
        zipped.assert_status(200);
        assert_eq!(
            zipped.header("content-encoding"),
            Some("gzip"),
            "{zipped:?}"
        );
        assert_eq!(
            zipped.json(),
            plain.json(),
            "same document once decompressed"
        );
        // pnpm asks for zstd first; gzip is still what it gets.
        let pnpm = w
            .server
            .http("GET", "/gzip-pkg")
            .header("accept", accept)
            .header("accept-encoding", "zstd,gzip,deflate")
            .send();
        pnpm.assert_status(200);
        assert_ne!(pnpm.header("content-encoding"), Some("zstd"));
        assert_eq!(pnpm.json(), plain.json());
    }
}

#[test]
fn scoped_names_work_in_all_three_spellings() {
    let w = world();
    let body = PublishBody::new("@spell/lib", "1.0.0");
    publish_raw(&w.server, Some(&w.alice), &body).assert_success();
    let reference = packument_json(&w.server, "@spell/lib");
    for path in ["/@spell%2flib", "/@spell%2Flib", "/@spell/lib"] {
        let r = w
            .server
            .http("GET", path)
            .header("accept", "application/json")
            .send();
        r.assert_status(200);
        assert_eq!(r.json(), reference, "packument at {path}");
    }
    for path in [
        "/@spell%2flib/-/lib-1.0.0.tgz",
        "/@spell%2Flib/-/lib-1.0.0.tgz",
        "/@spell/lib/-/lib-1.0.0.tgz",
    ] {
        let r = w.server.get(path);
        r.assert_status(200);
        assert_eq!(r.body, body.tarball, "tarball bytes at {path}");
    }
    // Write routes too: dist-tags under each spelling.
    for (i, path) in [
        "/-/package/@spell%2flib/dist-tags",
        "/-/package/@spell%2Flib/dist-tags",
        "/-/package/@spell/lib/dist-tags",
    ]
    .iter()
    .enumerate()
    {
        let tag = format!("t{i}");
        w.server
            .http("PUT", &format!("{path}/{tag}"))
            .bearer(&w.alice)
            .json(&json!("1.0.0"))
            .send()
            .assert_success();
        let tags = w.server.get(path);
        tags.assert_status(200);
        assert_eq!(tags.json()[&tag], "1.0.0");
    }
}

#[test]
fn time_is_complete_and_modified_is_accurate() {
    let w = world();
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("timed-pkg", "1.0.0"),
    )
    .assert_success();
    std::thread::sleep(std::time::Duration::from_millis(50));
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("timed-pkg", "1.1.0"),
    )
    .assert_success();
    let doc = packument_json(&w.server, "timed-pkg");
    let time = doc["time"].as_object().expect("time");
    let mut keys: Vec<_> = time.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["1.0.0", "1.1.0", "created", "modified"], "{time:#?}");
    for (k, v) in time {
        assert!(
            v.as_str().is_some_and(is_timestamp),
            "time[{k}] is an ISO timestamp: {v}"
        );
    }
    let t = |k: &str| time[k].as_str().expect("string").to_owned();
    assert!(t("created") <= t("1.0.0"), "created is the first publish");
    assert!(t("1.0.0") < t("1.1.0"));
    assert!(
        t("modified") >= t("1.1.0"),
        "modified covers the last publish"
    );
    let corgi = w
        .server
        .http("GET", "/timed-pkg")
        .header("accept", CORGI)
        .send()
        .json();
    assert_eq!(
        corgi["modified"], doc["time"]["modified"],
        "corgi `modified` is the same instant"
    );

    // Changing the package moves `modified` (and the document).
    let before = t("modified");
    std::thread::sleep(std::time::Duration::from_millis(50));
    w.server
        .http("PUT", "/-/package/timed-pkg/dist-tags/old")
        .bearer(&w.alice)
        .json(&json!("1.0.0"))
        .send()
        .assert_success();
    let after = packument_json(&w.server, "timed-pkg");
    assert!(
        after["time"]["modified"].as_str().expect("modified") > before.as_str(),
        "{:#}",
        after["time"]
    );
    assert_eq!(
        after["time"]["1.0.0"], doc["time"]["1.0.0"],
        "version times never move"
    );
}

#[test]
fn tarballs_have_validators_and_long_caching() {
    let w = world();
    let body = PublishBody::new("cache-pkg", "1.0.0");
    publish_raw(&w.server, Some(&w.alice), &body).assert_success();
    let r = w.server.get("/cache-pkg/-/cache-pkg-1.0.0.tgz");
    r.assert_status(200);
    assert_eq!(r.body, body.tarball);
    let etag = r
        .header("etag")
        .unwrap_or_else(|| panic!("tarball ETag: {r:?}"))
        .to_owned();
    let again = w
        .server
        .http("GET", "/cache-pkg/-/cache-pkg-1.0.0.tgz")
        .header("if-none-match", &etag)
        .send();
    again.assert_status(304);
    let pk = w.server.get("/cache-pkg");
    assert!(
        pk.header("cache-control").is_some(),
        "packuments say how long to cache: {pk:?}"
    );
}
