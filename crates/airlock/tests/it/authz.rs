//! Authorization: who may change what, scopes, and private (read-requires-auth) registries.

use airlock_testkit::{NpmEnv, PackageDir, PublishBody, ServerOptions, index_js};
use serde_json::json;

use crate::common::*;

#[test]
fn anonymous_requests_cannot_write() {
    let w = world();
    let body = PublishBody::new("anon-pkg", "1.0.0");
    let r = publish_raw(&w.server, None, &body);
    assert_error(&r, 401);
    assert_not_stored(&w.server, "anon-pkg");

    // And cannot change an existing package.
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("anon-target", "1.0.0"),
    )
    .assert_success();
    let tag = w
        .server
        .http("PUT", "/-/package/anon-target/dist-tags/evil")
        .json(&json!("1.0.0"))
        .send();
    assert_client_error(&tag);
    let del = w.server.http("DELETE", "/anon-target/-rev/whatever").send();
    assert_client_error(&del);
    let next = publish_raw(&w.server, None, &PublishBody::new("anon-target", "1.0.1"));
    assert_error(&next, 401);
    let doc = packument_json(&w.server, "anon-target");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));

    // npm itself refuses to publish without credentials.
    let npm = NpmEnv::new(&w.server);
    let pkg = PackageDir::new("anon-npm", "1.0.0");
    let out = npm.npm_in(pkg.path(), &["publish"]);
    out.assert_failed();
    out.assert_contains("ENEEDAUTH");
    assert_not_stored(&w.server, "anon-npm");
}

#[test]
fn read_only_tokens_cannot_write() {
    let w = world();
    let mut pkg = PackageDir::new("ro-target", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let ro = w.server.create_read_only_token("alice");
    let npm = NpmEnv::new(&w.server).with_token(&ro);

    // Reading works.
    let who = npm.npm(&["whoami"]);
    who.assert_ok();
    assert_eq!(who.stdout.trim(), "alice");
    npm.npm(&["view", "ro-target", "version"]).assert_ok();

    pkg.set_version("1.0.1");
    let out = npm.npm_in(pkg.path(), &["publish"]);
    out.assert_failed();
    out.assert_contains("403");
    npm.npm(&["dist-tag", "add", "ro-target@1.0.0", "evil"])
        .assert_failed();
    npm.npm(&["deprecate", "ro-target", "pwned"])
        .assert_failed();
    let fresh = publish_raw(&w.server, Some(&ro), &PublishBody::new("ro-new", "1.0.0"));
    assert_error(&fresh, 403);
    assert_not_stored(&w.server, "ro-new");

    let doc = packument_json(&w.server, "ro-target");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    assert!(
        doc["versions"]["1.0.0"].get("deprecated").is_none(),
        "{doc:#}"
    );
}

#[test]
fn another_users_token_cannot_touch_my_package() {
    let w = world();
    let (bob_token, bob) = w.user("bob");
    let mut pkg = PackageDir::new("alices-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let before = packument_json(&w.server, "alices-pkg");

    pkg.set_version("1.0.1");
    let out = bob.npm_in(pkg.path(), &["publish"]);
    out.assert_failed();
    out.assert_contains("403");
    bob.npm(&["dist-tag", "add", "alices-pkg@1.0.0", "evil"])
        .assert_failed();
    bob.npm(&["deprecate", "alices-pkg", "pwned"])
        .assert_failed();
    bob.npm(&["owner", "add", "bob", "alices-pkg"])
        .assert_failed();
    // npm reports unpublish 404s as success, so judge by the registry's state, not npm's exit.
    let _ = bob.npm(&["unpublish", "alices-pkg@1.0.0", "--force"]);
    let _ = bob.npm(&["unpublish", "alices-pkg", "--force"]);
    let raw_delete = w
        .server
        .http("DELETE", "/alices-pkg/-rev/anything")
        .bearer(&bob_token)
        .send();
    assert_client_error(&raw_delete);
    let raw_owner = w
        .server
        .http("PUT", "/alices-pkg/-rev/anything")
        .bearer(&bob_token)
        .json(&json!({"_id": "alices-pkg", "maintainers": [{"name": "bob", "email": "bob@example.com"}]}))
        .send();
    assert_client_error(&raw_owner);

    let after = packument_json(&w.server, "alices-pkg");
    assert_eq!(after, before, "bob changed nothing");
    download_verified(&w.server, "alices-pkg", "1.0.0");
}

#[test]
fn the_first_publisher_of_a_scope_owns_it() {
    let w = world();
    let (_bob_token, bob) = w.user("bob");
    let first = PackageDir::new("@alpha/one", "1.0.0");
    w.npm.npm_in(first.path(), &["publish"]).assert_ok();

    let bobs = PackageDir::new("@alpha/two", "1.0.0");
    let out = bob.npm_in(bobs.path(), &["publish"]);
    out.assert_failed();
    out.assert_contains("403");
    assert_not_stored(&w.server, "@alpha/two");

    // Alice, the scope's owner, can add packages to it; bob keeps his own scope.
    w.npm.npm_in(bobs.path(), &["publish"]).assert_ok();
    let own = PackageDir::new("@bobs/thing", "1.0.0");
    bob.npm_in(own.path(), &["publish"]).assert_ok();
}

#[test]
fn an_admin_assigned_scope_belongs_to_its_assignee() {
    let w = world();
    w.server.add_user("root", "root-password-1", true);
    let (_bob_token, bob) = w.user("bob");
    w.server
        .admin(&["scope", "assign", "@beta", "bob"], None)
        .assert_ok();

    let pkg = PackageDir::new("@beta/lib", "1.0.0");
    let out = w.npm.npm_in(pkg.path(), &["publish"]);
    out.assert_failed();
    out.assert_contains("403");
    assert_not_stored(&w.server, "@beta/lib");
    bob.npm_in(pkg.path(), &["publish"]).assert_ok();
    assert_eq!(
        packument_json(&w.server, "@beta/lib")["versions"]["1.0.0"]["_npmUser"]["name"],
        "bob"
    );
}

#[test]
fn read_requires_auth_makes_every_read_need_a_token() {
    let w = world_with(ServerOptions::new().config("read_requires_auth = true\n"));
    let pkg = PackageDir::new("@corp/private", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let doc = {
        let r = packument(&w.server, "@corp/private", Some(&w.alice));
        r.assert_status(200);
        r.json()
    };
    let tarball = path_of(
        &w.server,
        doc["versions"]["1.0.0"]["dist"]["tarball"]
            .as_str()
            .expect("tarball"),
    );

    // Anonymous: refused, and an existing package looks the same as a missing one.
    let existing = packument(&w.server, "@corp/private", None);
    let missing = packument(&w.server, "@corp/nothing-here", None);
    let msg = assert_error(&existing, 401);
    assert_eq!(
        missing.status, existing.status,
        "no existence leak: {missing:?}"
    );
    assert!(
        !msg.contains("@corp/private"),
        "the error does not reveal the package: {msg}"
    );
    missing.error_message();
    assert_error(&w.server.get(&tarball), 401);
    assert_error(&w.server.get("/-/v1/search?text=private"), 401);

    // With a token: reads work, and npm installs.
    w.server
        .http("GET", &tarball)
        .bearer(&w.alice)
        .send()
        .assert_status(200);
    let project = w.npm.project("private-consumer");
    w.npm
        .npm_in(&project, &["install", "@corp/private"])
        .assert_ok();
    let installed = std::fs::read_to_string(project.join("node_modules/@corp/private/index.js"))
        .expect("installed");
    assert_eq!(installed, index_js("@corp/private", "1.0.0"));
    let missing = packument(&w.server, "@corp/nothing-here", Some(&w.alice));
    assert_error(&missing, 404);

    // Without a token, npm cannot install.
    let anon = NpmEnv::new(&w.server);
    let project = anon.project("anon-consumer");
    anon.npm_in(&project, &["install", "@corp/private"])
        .assert_failed();
}

#[test]
fn reading_is_anonymous_by_default() {
    let w = world();
    let pkg = PackageDir::new("open-pkg", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let anon = NpmEnv::new(&w.server);
    let project = anon.project("anon-consumer");
    anon.npm_in(&project, &["install", "open-pkg"]).assert_ok();
    let installed =
        std::fs::read_to_string(project.join("node_modules/open-pkg/index.js")).expect("installed");
    assert_eq!(installed, index_js("open-pkg", "1.0.0"));
}
