//! Trusted publishing end to end: a real OIDC issuer process (oauth2-mock-server on Node 22,
//! started by the testkit) signs GitHub-shaped ID tokens; the real npm CLI, in a simulated
//! GitHub Actions environment with no npm token, fetches one from `ACTIONS_ID_TOKEN_REQUEST_URL`,
//! exchanges it and publishes or stages. Trust configurations are made with `npm trust`.
//! The refusals are driven over raw HTTP with tokens minted to be wrong in exactly one way.

use std::time::Duration;

use airlock_testkit::{
    HttpResponse, JwtAlg, MintOptions, NpmEnv, OidcIssuer, PackageDir, PublishBody, Server,
    ServerOptions, escaped_name, github_claims,
};
use serde_json::{Value, json};

use crate::common::*;

const REPO: &str = "alice/demo";
const REPO_ID: u64 = 100_200;
const OWNER_ID: u64 = 300;
const WORKFLOW: &str = "publish.yml";

struct Ctx {
    issuer: OidcIssuer,
    server: Server,
    alice_token: String,
    alice: NpmEnv,
    pkg: PackageDir,
}

/// A server trusting `issuer` for `npm trust github` configurations, and `alice` owning
/// `name@1.0.0`.
fn setup(name: &str, extra_config: &str) -> Ctx {
    let issuer = OidcIssuer::start().unwrap();
    let config = format!(
        "[oidc]\ngithub_issuer = \"{}\"\n{extra_config}",
        issuer.issuer_url()
    );
    let server = server_with(ServerOptions::new().config(&config));
    let alice_token = server.user_with_token("alice");
    let alice = NpmEnv::new(&server).with_token(&alice_token);
    let pkg = PackageDir::new(name, "1.0.0");
    alice.npm_in(pkg.path(), &["publish"]).assert_ok();
    Ctx {
        issuer,
        server,
        alice_token,
        alice,
        pkg,
    }
}

impl Ctx {
    /// `npm trust github` by alice, as the CLI sends it.
    fn trust(&self, extra: &[&str]) {
        let name = self.pkg.name();
        let mut args = vec![
            "trust",
            "github",
            &name,
            "--repository",
            REPO,
            "--file",
            WORKFLOW,
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.alice.npm(&args).assert_ok();
    }

    /// An npm environment that looks like a GitHub Actions job of `REPO` (no npm token).
    fn ci(&self, claims: Value) -> NpmEnv {
        self.issuer.set_github_claims(claims);
        NpmEnv::new(&self.server).with_envs(self.issuer.github_actions_env())
    }

    fn exchange(&self, name: &str, id_token: &str) -> HttpResponse {
        self.server
            .http(
                "POST",
                &format!(
                    "/-/npm/v1/oidc/token/exchange/package/{}",
                    escaped_name(name)
                ),
            )
            .bearer(id_token)
            .send()
    }

    /// A token minted for this registry's audience with `claims` over the defaults.
    fn mint(&self, claims: Value) -> String {
        self.issuer
            .mint(MintOptions::new(claims).audience("npm:127.0.0.1"))
    }
}

fn good_claims() -> Value {
    github_claims(REPO, REPO_ID, OWNER_ID, WORKFLOW, "refs/heads/main", None)
}

/// The exchange's refusal: `status`, and the `message` npm logs.
fn refused(r: &HttpResponse, status: u16) -> String {
    r.assert_status(status);
    let body = r.json();
    assert!(
        body.get("error").is_none(),
        "the exchange answers `message`: {body}"
    );
    body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_owned()
}

#[test]
fn npm_publishes_and_stages_from_github_actions_without_a_token() {
    let mut ctx = setup("oidc-demo", "");
    ctx.trust(&["--allow-publish", "--allow-stage-publish"]);
    let listed = ctx.alice.npm(&["trust", "list", "oidc-demo"]);
    listed.assert_ok();
    assert!(listed.stdout.contains(REPO), "{}", listed.stdout);
    assert!(listed.stdout.contains(WORKFLOW), "{}", listed.stdout);
    assert!(
        listed.stdout.contains("publish, stage publish"),
        "{}",
        listed.stdout
    );

    let ci = ctx.ci(good_claims());
    ctx.pkg.set_version("1.1.0");
    let out = ci.npm_in(ctx.pkg.path(), &["publish", "--provenance=false"]);
    out.assert_ok();
    assert!(out.stdout.contains("+ oidc-demo@1.1.0"), "{out:?}");
    let requests = ctx.issuer.github_token_requests();
    assert_eq!(
        requests.last().and_then(|r| r.audience.as_deref()),
        Some("npm:127.0.0.1"),
        "npm asks for the registry's audience"
    );

    let doc = packument_json(&ctx.server, "oidc-demo");
    let user = &doc["versions"]["1.1.0"]["_npmUser"];
    assert_eq!(user["name"], "GitHub Actions", "{user}");
    assert_eq!(user["trustedPublisher"]["id"], "github", "{user}");
    let identity = &user["trustedPublisher"]["identity"];
    assert_eq!(identity["repository"], REPO);
    assert_eq!(identity["repository_id"], REPO_ID.to_string());
    assert_eq!(
        identity["workflow_ref"],
        format!("{REPO}/.github/workflows/{WORKFLOW}@refs/heads/main")
    );
    assert_eq!(doc["versions"]["1.0.0"]["_npmUser"]["name"], "alice");

    // Staging goes through the same exchange; the stage is the CI's, not alice's.
    ctx.pkg.set_version("1.2.0");
    let out = ci.npm_in(ctx.pkg.path(), &["stage", "publish", "--provenance=false"]);
    out.assert_ok();
    assert!(out.stdout.contains("staged with id"), "{out:?}");
    let list = ctx.alice.npm(&["stage", "list", "oidc-demo"]);
    list.assert_ok();
    assert!(
        list.stdout
            .contains(&format!("staged by: github:{REPO} (ci)")),
        "{}",
        list.stdout
    );
    assert!(
        !versions_of(&packument_json(&ctx.server, "oidc-demo")).contains(&"1.2.0".to_owned()),
        "a staged version stays invisible"
    );

    // Revoking the configuration ends publishing from CI.
    let id = ctx
        .server
        .http("GET", "/-/package/oidc-demo/trust")
        .bearer(&ctx.alice_token)
        .send()
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ctx.alice
        .npm(&["trust", "revoke", "oidc-demo", "--id", &id])
        .assert_ok();
    ctx.pkg.set_version("1.3.0");
    let out = ci.npm_in(ctx.pkg.path(), &["publish", "--provenance=false"]);
    assert!(!out.status.success(), "published after revoke: {out:?}");
    let empty = ctx.alice.npm(&["trust", "list", "oidc-demo"]);
    assert!(
        empty.stdout.contains("No trust configurations found"),
        "{empty:?}"
    );
}

#[test]
fn a_stage_only_publisher_cannot_publish_directly() {
    let mut ctx = setup("oidc-stage-only", "");
    ctx.trust(&["--allow-stage-publish"]);
    let ci = ctx.ci(good_claims());
    ctx.pkg.set_version("2.0.0");
    let out = ci.npm_in(ctx.pkg.path(), &["publish", "--provenance=false"]);
    assert!(
        !out.status.success(),
        "a stage-only publisher published: {out:?}"
    );
    assert!(out.stderr.contains("may only stage releases"), "{out:?}");
    ci.npm_in(ctx.pkg.path(), &["stage", "publish", "--provenance=false"])
        .assert_ok();
}

#[test]
fn the_credential_is_for_one_package_a_few_routes_and_a_short_time() {
    let ctx = setup("oidc-scoped", "credential_ttl_secs = 3\n");
    ctx.trust(&["--allow-publish"]);
    // A second package alice owns, which the credential must not reach.
    let other = PackageDir::new("oidc-other", "1.0.0");
    ctx.alice.npm_in(other.path(), &["publish"]).assert_ok();

    let r = ctx.exchange("oidc-scoped", &ctx.mint(good_claims()));
    r.assert_status(201);
    let credential = r.json()["token"].as_str().unwrap().to_owned();
    assert!(credential.starts_with("airlock_"), "{credential}");

    let r = publish_raw(
        &ctx.server,
        Some(&credential),
        &PublishBody::new("oidc-other", "2.0.0"),
    );
    let message = assert_error(&r, 403);
    assert!(message.contains("issued for `oidc-scoped`"), "{message}");

    for (method, path) in [
        ("GET", "/-/whoami"),
        ("GET", "/-/npm/v1/tokens"),
        ("GET", "/-/package/oidc-scoped/trust"),
        ("PUT", "/-/package/oidc-scoped/dist-tags/latest"),
    ] {
        let r = ctx
            .server
            .http(method, path)
            .bearer(&credential)
            .json(&json!("1.0.0"))
            .send();
        let message = assert_error(&r, 403);
        assert!(
            message.contains("may only publish or stage"),
            "{method} {path}: {message}"
        );
    }

    let r = publish_raw(
        &ctx.server,
        Some(&credential),
        &PublishBody::new("oidc-scoped", "2.0.0"),
    );
    r.assert_status(201);

    std::thread::sleep(Duration::from_secs(4));
    let r = publish_raw(
        &ctx.server,
        Some(&credential),
        &PublishBody::new("oidc-scoped", "2.1.0"),
    );
    assert_error(&r, 401);
}

#[test]
fn id_tokens_that_are_wrong_in_one_way_are_refused_with_a_reason() {
    let ctx = setup("oidc-neg", "");
    ctx.trust(&["--allow-publish", "--environment", "prod"]);
    let with_env = |claims: Value| {
        let mut c = claims;
        c["environment"] = json!("prod");
        c
    };

    // Without a trust configuration there is nothing to exchange for.
    let message = refused(
        &ctx.exchange("oidc-other-pkg", &ctx.mint(with_env(good_claims()))),
        404,
    );
    assert!(message.contains("no trusted publisher"), "{message}");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "wrong repository",
            ctx.mint(with_env(github_claims(
                "mallory/demo",
                REPO_ID,
                OWNER_ID,
                WORKFLOW,
                "refs/heads/main",
                None,
            ))),
            403,
            "the repository must be `alice/demo`",
        ),
        (
            "wrong workflow",
            ctx.mint(with_env(github_claims(
                REPO,
                REPO_ID,
                OWNER_ID,
                "other.yml",
                "refs/heads/main",
                None,
            ))),
            403,
            "the workflow must be",
        ),
        (
            "wrong environment",
            ctx.mint(github_claims(
                REPO,
                REPO_ID,
                OWNER_ID,
                WORKFLOW,
                "refs/heads/main",
                Some("staging"),
            )),
            403,
            "the environment must be `prod`",
        ),
        (
            "expired",
            ctx.issuer.mint(
                MintOptions::new(with_env(good_claims()))
                    .audience("npm:127.0.0.1")
                    .iat(airlock_testkit::unix_now() - 900)
                    .nbf(airlock_testkit::unix_now() - 900)
                    .exp(airlock_testkit::unix_now() - 600),
            ),
            401,
            "expired",
        ),
        (
            "wrong audience",
            ctx.issuer
                .mint(MintOptions::new(with_env(good_claims())).audience("npm:registry.npmjs.org")),
            401,
            "this registry needs `npm:127.0.0.1`",
        ),
        (
            "unknown issuer",
            ctx.mint({
                let mut c = with_env(good_claims());
                c["iss"] = json!("https://token.actions.example.com");
                c
            }),
            401,
            "accepts tokens from",
        ),
        (
            "HS256 keyed with the issuer's public key",
            ctx.issuer.mint(
                MintOptions::new(with_env(good_claims()))
                    .audience("npm:127.0.0.1")
                    .kid(&ctx.issuer.published_key(JwtAlg::Rs256).kid)
                    .hs256(&ctx.issuer.public_key_pem(JwtAlg::Rs256)),
            ),
            401,
            "only asymmetric algorithms",
        ),
        (
            "signed by a key the issuer does not publish",
            ctx.issuer.mint(
                MintOptions::new(with_env(good_claims()))
                    .audience("npm:127.0.0.1")
                    .unknown_key(),
            ),
            401,
            "publishes no key",
        ),
        (
            "forged signature under a published kid",
            ctx.issuer.mint(
                MintOptions::new(with_env(good_claims()))
                    .audience("npm:127.0.0.1")
                    .unknown_key()
                    .kid(&ctx.issuer.published_key(JwtAlg::Rs256).kid),
            ),
            401,
            "does not verify",
        ),
    ];
    for (what, token, status, needle) in &cases {
        let r = ctx.exchange("oidc-neg", token);
        let message = refused(&r, *status);
        assert!(message.contains(needle), "{what}: {message}");
    }

    // The good token works once, and pins the repository's numeric ids.
    let good = ctx.mint(with_env(good_claims()));
    ctx.exchange("oidc-neg", &good).assert_status(201);
    let message = refused(&ctx.exchange("oidc-neg", &good), 401);
    assert!(message.contains("already exchanged"), "{message}");

    // The repository deleted and re-created under the same name: new numeric id.
    let recreated = ctx.mint(with_env(github_claims(
        REPO,
        REPO_ID + 1,
        OWNER_ID,
        WORKFLOW,
        "refs/heads/main",
        None,
    )));
    let message = refused(&ctx.exchange("oidc-neg", &recreated), 403);
    assert!(message.contains("re-created"), "{message}");
    assert!(message.contains(&REPO_ID.to_string()), "{message}");
}

#[test]
fn trust_changes_need_a_maintainer_and_are_checked() {
    let ctx = setup("oidc-admin", "");
    let bob_token = ctx.server.user_with_token("bob");
    let body = json!([{"type":"github","claims":{"repository":REPO,"workflow_ref":{"file":WORKFLOW}},"permissions":["createPackage"]}]);
    let r = ctx
        .server
        .http("POST", "/-/package/oidc-admin/trust")
        .bearer(&bob_token)
        .json(&body)
        .send();
    assert_error(&r, 403);

    let r = ctx
        .server
        .http("POST", "/-/package/oidc-admin/trust")
        .bearer(&ctx.alice_token)
        .json(&json!([{"type":"github","claims":{"repository":"alice","workflow_ref":{"file":WORKFLOW}},"permissions":["createPackage"]}]))
        .send();
    let message = assert_error(&r, 400);
    assert!(message.contains("owner/repo"), "{message}");

    ctx.server
        .http("POST", "/-/package/oidc-admin/trust")
        .bearer(&ctx.alice_token)
        .json(&body)
        .send()
        .assert_status(201);
    let r = ctx
        .server
        .http("POST", "/-/package/oidc-admin/trust")
        .bearer(&ctx.alice_token)
        .json(&body)
        .send();
    let message = assert_error(&r, 409);
    assert!(message.contains("one per package"), "{message}");

    // A ref rule (Airlock's extension): only tags.
    let r = ctx
        .server
        .http("GET", "/-/package/oidc-admin/trust")
        .bearer(&ctx.alice_token)
        .send();
    let id = r.json()[0]["id"].as_str().unwrap().to_owned();
    ctx.server
        .http("DELETE", &format!("/-/package/oidc-admin/trust/{id}"))
        .bearer(&ctx.alice_token)
        .send()
        .assert_status(204);
    let mut tags_only = body.clone();
    tags_only[0]["claims"]["ref"] = json!("refs/tags/v*");
    ctx.server
        .http("POST", "/-/package/oidc-admin/trust")
        .bearer(&ctx.alice_token)
        .json(&tags_only)
        .send()
        .assert_status(201);
    let message = refused(&ctx.exchange("oidc-admin", &ctx.mint(good_claims())), 403);
    assert!(message.contains("refs/tags/v*"), "{message}");
    let tag = github_claims(REPO, REPO_ID, OWNER_ID, WORKFLOW, "refs/tags/v2.0.0", None);
    ctx.exchange("oidc-admin", &ctx.mint(tag))
        .assert_status(201);
}

#[test]
fn npm_trust_gitlab_and_circleci_round_trip() {
    let ctx = setup("oidc-gitlab", "");
    ctx.alice
        .npm(&[
            "trust",
            "gitlab",
            "oidc-gitlab",
            "--project",
            "group/sub/proj",
            "--file",
            ".gitlab-ci.yml",
            "--allow-publish",
            "--yes",
        ])
        .assert_ok();
    let listed = ctx.alice.npm(&["trust", "list", "oidc-gitlab"]);
    listed.assert_ok();
    assert!(listed.stdout.contains("group/sub/proj"), "{listed:?}");
    assert!(listed.stdout.contains(".gitlab-ci.yml"), "{listed:?}");

    let circle = PackageDir::new("oidc-circle", "1.0.0");
    ctx.alice.npm_in(circle.path(), &["publish"]).assert_ok();
    let org = "0b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d";
    ctx.alice
        .npm(&[
            "trust",
            "circleci",
            "oidc-circle",
            "--org-id",
            org,
            "--project-id",
            "1b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d",
            "--pipeline-definition-id",
            "2b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d",
            "--vcs-origin",
            "github.com/alice/demo",
            "--allow-stage-publish",
            "--yes",
        ])
        .assert_ok();
    let config = ctx
        .server
        .http("GET", "/-/package/oidc-circle/trust")
        .bearer(&ctx.alice_token)
        .send()
        .json();
    assert_eq!(config[0]["type"], "circleci", "{config}");
    assert_eq!(config[0]["permissions"], json!(["createStagedPackage"]));
    // CircleCI issues per organization.
    assert_eq!(
        config[0]["issuer"],
        format!("https://oidc.circleci.com/org/{org}")
    );
    let listed = ctx.alice.npm(&["trust", "list", "oidc-circle"]);
    listed.assert_ok();
    assert!(
        listed.stdout.contains("github.com/alice/demo"),
        "{listed:?}"
    );
    assert!(listed.stdout.contains("stage publish"), "{listed:?}");
}
