//! Installing from a clean project with npm, pnpm and yarn 4 gets exactly the published bytes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use airlock_testkit::{PackageDir, index_js};
use serde_json::{Value, json};

use crate::common::*;

/// Publishes `plain-dep@1.0.0`, `plain-dep@1.1.0` and `@acme/util@2.0.0` (which depends on
/// `plain-dep@^1.0.0`) with npm; returns the full packuments of both.
fn publish_fixture(w: &World) -> (Value, Value) {
    let mut plain = PackageDir::new("plain-dep", "1.0.0");
    w.npm.npm_in(plain.path(), &["publish"]).assert_ok();
    plain.set_version("1.1.0");
    w.npm.npm_in(plain.path(), &["publish"]).assert_ok();
    let mut util = PackageDir::new("@acme/util", "2.0.0");
    util.dependency("plain-dep", "^1.0.0");
    w.npm.npm_in(util.path(), &["publish"]).assert_ok();
    (
        packument_json(&w.server, "plain-dep"),
        packument_json(&w.server, "@acme/util"),
    )
}

fn consumer(w: &World, dir: &str) -> std::path::PathBuf {
    let project = w.npm.project(dir);
    let pj = json!({"name": dir, "version": "1.0.0", "private": true, "dependencies": {"@acme/util": "^2.0.0"}});
    fs::write(
        project.join("package.json"),
        serde_json::to_string_pretty(&pj).expect("json"),
    )
    .expect("write");
    project
}

#[track_caller]
fn assert_file(path: &Path, expected: &str) {
    let got =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(got, expected, "{}", path.display());
}

fn integrity(doc: &Value, version: &str) -> String {
    doc["versions"][version]["dist"]["integrity"]
        .as_str()
        .expect("integrity")
        .to_owned()
}

#[test]
fn npm_install_gets_the_published_bytes() {
    let w = world();
    let (plain, util) = publish_fixture(&w);
    let project = consumer(&w, "npm-consumer");
    w.npm.npm_in(&project, &["install"]).assert_ok();
    assert_file(
        &project.join("node_modules/@acme/util/index.js"),
        &index_js("@acme/util", "2.0.0"),
    );
    assert_file(
        &project.join("node_modules/plain-dep/index.js"),
        &index_js("plain-dep", "1.1.0"),
    );
    let lock: Value = serde_json::from_str(
        &fs::read_to_string(project.join("package-lock.json")).expect("lockfile"),
    )
    .expect("json");
    let util_lock = &lock["packages"]["node_modules/@acme/util"];
    assert_eq!(util_lock["version"], "2.0.0");
    assert_eq!(util_lock["integrity"], integrity(&util, "2.0.0"));
    assert_eq!(
        util_lock["resolved"],
        util["versions"]["2.0.0"]["dist"]["tarball"]
    );
    assert_eq!(
        lock["packages"]["node_modules/plain-dep"]["integrity"],
        integrity(&plain, "1.1.0")
    );
}

#[test]
fn pnpm_install_gets_the_published_bytes() {
    let w = world();
    let (plain, util) = publish_fixture(&w);
    let project = consumer(&w, "pnpm-consumer");
    w.npm.pnpm(&project, &["install"]).assert_ok();
    assert_file(
        &project.join("node_modules/@acme/util/index.js"),
        &index_js("@acme/util", "2.0.0"),
    );
    assert_file(
        &project.join("node_modules/.pnpm/plain-dep@1.1.0/node_modules/plain-dep/index.js"),
        &index_js("plain-dep", "1.1.0"),
    );
    let lock = fs::read_to_string(project.join("pnpm-lock.yaml")).expect("pnpm-lock.yaml");
    assert!(
        lock.contains(&integrity(&util, "2.0.0")),
        "pnpm recorded the registry's integrity:\n{lock}"
    );
    assert!(lock.contains(&integrity(&plain, "1.1.0")), "{lock}");
}

#[test]
fn yarn_install_gets_the_published_bytes() {
    let w = world();
    publish_fixture(&w);
    let project = consumer(&w, "yarn-consumer");
    w.npm.yarn(&project, &["install"]).assert_ok();
    assert_file(
        &project.join("node_modules/@acme/util/index.js"),
        &index_js("@acme/util", "2.0.0"),
    );
    assert_file(
        &project.join("node_modules/plain-dep/index.js"),
        &index_js("plain-dep", "1.1.0"),
    );
    let lock = fs::read_to_string(project.join("yarn.lock")).expect("yarn.lock");
    assert!(
        lock.contains("\"@acme/util@npm:2.0.0\"") || lock.contains("@acme/util@npm:2.0.0"),
        "{lock}"
    );
    assert!(lock.contains("plain-dep@npm:1.1.0"), "{lock}");
}

#[test]
fn npm_install_before_a_date_picks_the_older_version() {
    let w = world();
    let mut pkg = PackageDir::new("dated-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    std::thread::sleep(Duration::from_millis(1500));
    pkg.set_version("1.1.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let doc = packument_json(&w.server, "dated-pkg");
    let t1 = doc["time"]["1.0.0"]
        .as_str()
        .expect("time[1.0.0]")
        .to_owned();
    let t2 = doc["time"]["1.1.0"]
        .as_str()
        .expect("time[1.1.0]")
        .to_owned();
    assert!(
        t1 < t2,
        "versions published 1.5 s apart have increasing times: {t1} {t2}"
    );

    let project = w.npm.project("before-consumer");
    w.npm
        .npm_in(
            &project,
            &["install", "dated-pkg", &format!("--before={t1}")],
        )
        .assert_ok();
    assert_file(
        &project.join("node_modules/dated-pkg/index.js"),
        &index_js("dated-pkg", "1.0.0"),
    );

    let project = w.npm.project("now-consumer");
    w.npm
        .npm_in(&project, &["install", "dated-pkg"])
        .assert_ok();
    assert_file(
        &project.join("node_modules/dated-pkg/index.js"),
        &index_js("dated-pkg", "1.1.0"),
    );
}
