//! Provenance over HTTP: npm's `NAME-VERSION.sigstore` attachment verified at publish and at
//! stage against a test Sigstore instance (the testkit's own Fulcio-like CA, CT log and
//! Rekor-like log, whose trusted root the registry is given), served at
//! `/-/npm/v1/attestations/NAME@VERSION` and in `dist.attestations`, tied to the package's
//! trusted publisher, and downgrade protection (refused on publish, escalated on stage).
//!
//! npm's own `--provenance-file` check needs the Sigstore TUF CDN (protocol §3.1), which cannot
//! be reached here, so these tests send npm's exact publish body: `PublishBody` plus the
//! `.sigstore` attachment in npm's shape (`npm_provenance_attachment`).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use airlock_registry::{JwksFetcher, OidcSettings, Registry, RegistryConfig, TrustedPublishing};
use airlock_store::SqliteStore;
use airlock_testkit::sigstore::{
    Breakage, BundleOptions, BundleVersion, CiIdentity, SLSA_PROVENANCE_V1, TestSigstore,
    npm_provenance_attachment,
};
use airlock_testkit::{PublishBody, escaped_name};
use airlock_trust::sigstore::{Artifact, SignerPolicy, TrustedRoots};
use airlock_trust::{TOTP_STEP_SECS, TotpSecret};
use axum::http::{Method, StatusCode};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use crate::app::{BASE, Req, Response, TestApp};
use crate::second_factor::enable_for;

const REPO: &str = "acme/widget";
const REPO_ID: u64 = 4242;
const OWNER_ID: u64 = 77;
const WORKFLOW: &str = "release.yml";

fn ci() -> CiIdentity {
    CiIdentity::github(REPO, REPO_ID, OWNER_ID, WORKFLOW)
}

/// Key sets are never fetched here (no OIDC exchange): trust configurations only.
struct NoJwks;

impl JwksFetcher for NoJwks {
    fn fetch_jwks<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move { Err(format!("no key sets in these tests ({issuer})")) })
    }
}

struct Ctx {
    app: TestApp,
    sigstore: TestSigstore,
}

/// A registry trusting the public-good root and the test instance's root, as the binary does
/// with `[provenance] trusted_roots = [...]`, with trusted publishing on.
async fn setup() -> Ctx {
    let sigstore = TestSigstore::new();
    let root = sigstore.trusted_root_json().to_string();
    let app = TestApp::with_setup(
        RegistryConfig::default(),
        move |registry: Registry, store: Arc<SqliteStore>| {
            let roots = TrustedRoots::public_good()
                .unwrap()
                .with_json("the test Sigstore root", &root)
                .unwrap();
            registry
                .with_provenance_roots(roots)
                .with_trusted_publishing(TrustedPublishing::new(
                    store,
                    OidcSettings::default(),
                    Arc::new(NoJwks),
                ))
        },
    )
    .await;
    Ctx { app, sigstore }
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[track_caller]
fn assert_status(r: &Response, status: StatusCode) {
    assert_eq!(r.status, status, "{}", text(r));
}

impl Ctx {
    fn bundle(&self, body: &PublishBody, identity: &CiIdentity, options: &BundleOptions) -> Value {
        self.sigstore.npm_provenance_bundle(
            &body.name,
            &body.version,
            &body.tarball,
            identity,
            options,
        )
    }

    /// npm's publish body with `bundle` as its `.sigstore` attachment.
    fn body_with(&self, body: &PublishBody, bundle: Option<&Value>) -> Value {
        let mut json = body.to_json(BASE);
        if let Some(bundle) = bundle {
            let (key, attachment) = npm_provenance_attachment(&body.name, &body.version, bundle);
            json["_attachments"][key] = attachment;
        }
        json
    }

    async fn publish(&self, token: &str, body: &PublishBody, bundle: Option<&Value>) -> Response {
        self.app
            .send(
                Req::new(Method::PUT, &body.path())
                    .token(token)
                    .json(&self.body_with(body, bundle)),
            )
            .await
    }

    async fn stage(&self, token: &str, body: &PublishBody, bundle: Option<&Value>) -> Response {
        self.app
            .send(
                Req::new(
                    Method::POST,
                    &format!("/-/stage/package/{}", escaped_name(&body.name)),
                )
                .token(token)
                .json(&self.body_with(body, bundle)),
            )
            .await
    }

    async fn attestations(&self, name: &str, version: &str) -> Response {
        self.app
            .send(Req::get(&format!(
                "/-/npm/v1/attestations/{}@{version}",
                escaped_name(name)
            )))
            .await
    }

    /// A refused publish left nothing behind: no version, no attestation.
    async fn assert_not_published(&self, name: &str, version: &str) {
        let r = self.app.packument(name).await;
        if r.status == StatusCode::OK {
            assert!(
                r.json()["versions"].get(version).is_none(),
                "{name}@{version} was stored: {}",
                text(&r)
            );
        } else {
            assert_status(&r, StatusCode::NOT_FOUND);
        }
        let r = self.attestations(name, version).await;
        assert_status(&r, StatusCode::NOT_FOUND);
    }
}

/// A user with TOTP (auth-only: publishing needs no code; policy changes and approvals do).
struct Maintainer {
    token: String,
    secret: TotpSecret,
    last_step: Cell<u64>,
}

impl Maintainer {
    async fn new(app: &TestApp, name: &str) -> Maintainer {
        let token = app.user(name).await;
        let (secret, _) = enable_for(app, name, &token, "auth-only").await;
        Maintainer {
            token,
            secret,
            last_step: Cell::new(app.registry_now() / TOTP_STEP_SECS),
        }
    }

    /// A code the server has not seen from this user yet (moving the clock on when needed).
    fn otp(&self, app: &TestApp) -> String {
        let now = app.registry_now() / TOTP_STEP_SECS;
        let step = (self.last_step.get() + 1).max(now - 1);
        if step > now + 1 {
            app.advance(Duration::from_secs((step - 1 - now) * TOTP_STEP_SECS));
        }
        self.last_step.set(step);
        self.secret.code_at_step(step)
    }

    async fn set_policy(&self, app: &TestApp, subject: &str, policy: &Value) -> Response {
        let code = self.otp(app);
        app.send(
            Req::new(
                Method::PUT,
                &format!("/-/airlock/v1/policy/{}", escaped_name(subject)),
            )
            .token(&self.token)
            .header("npm-otp", &code)
            .json(policy),
        )
        .await
    }
}

#[tokio::test]
async fn valid_provenance_is_verified_stored_and_served() {
    let ctx = setup().await;
    let alice = ctx.app.user("alice").await;
    let body = PublishBody::new("@acme/widget", "1.0.0");
    let bundle = ctx.bundle(&body, &ci(), &BundleOptions::default());
    let r = ctx.publish(&alice, &body, Some(&bundle)).await;
    assert_status(&r, StatusCode::CREATED);

    // The packument points npm at the attestations, as npmjs does.
    let doc = ctx.app.packument("@acme/widget").await.json();
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["attestations"],
        json!({
            "url": format!("{BASE}-/npm/v1/attestations/@acme%2fwidget@1.0.0"),
            "provenance": { "predicateType": SLSA_PROVENANCE_V1 },
        })
    );
    // The abbreviated document too (npmjs keeps `dist` whole there).
    let corgi = ctx
        .app
        .send(
            Req::get(&format!("/{}", escaped_name("@acme/widget")))
                .header("accept", "application/vnd.npm.install-v1+json"),
        )
        .await
        .json();
    assert_eq!(
        corgi["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]["predicateType"],
        SLSA_PROVENANCE_V1
    );

    // The endpoint answers in npm's shape, under both spellings of the scoped name.
    for path in [
        "/-/npm/v1/attestations/@acme%2fwidget@1.0.0",
        "/-/npm/v1/attestations/@acme/widget@1.0.0",
    ] {
        let r = ctx.app.send(Req::get(path)).await;
        assert_status(&r, StatusCode::OK);
        let served = r.json();
        let list = served["attestations"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["predicateType"], SLSA_PROVENANCE_V1);
        assert_eq!(list[0]["bundle"], bundle, "the bundle is served as sent");
    }

    // What is served verifies again, independently of the registry, for these exact bytes.
    let served = ctx.attestations("@acme/widget", "1.0.0").await.json();
    let served_bundle = served["attestations"][0]["bundle"].to_string();
    let roots = TrustedRoots::from_json("test root", &ctx.sigstore.trusted_root_json().to_string())
        .unwrap();
    let sha512: [u8; 64] = Sha512::digest(&body.tarball).into();
    let verified = roots
        .verify(
            served_bundle.as_bytes(),
            Artifact::Bytes(&body.tarball),
            &SignerPolicy::AnyCertificate,
        )
        .unwrap();
    verified
        .check_npm_subject("@acme/widget", "1.0.0", &sha512)
        .unwrap();
    let certificate = verified.certificate().unwrap();
    assert_eq!(
        certificate.source_repository_uri.as_deref(),
        Some("https://github.com/acme/widget")
    );

    // A version without provenance has no attestations and no `dist.attestations`; a version
    // that does not exist is a plain 404.
    let plain = PublishBody::new("plain-pkg", "1.0.0");
    ctx.app.published(&alice, &plain).await;
    let doc = ctx.app.packument("plain-pkg").await.json();
    assert!(
        doc["versions"]["1.0.0"]["dist"]
            .get("attestations")
            .is_none()
    );
    let r = ctx.attestations("plain-pkg", "1.0.0").await;
    assert_status(&r, StatusCode::NOT_FOUND);
    assert!(r.error().contains("without provenance"), "{}", r.error());
    let r = ctx.attestations("@acme/widget", "9.9.9").await;
    assert_status(&r, StatusCode::NOT_FOUND);
    let r = ctx
        .app
        .send(Req::get(
            "/-/npm/v1/attestations/@acme%2fwidget@not-a-version",
        ))
        .await;
    assert!(r.status.is_client_error(), "{}", text(&r));
}

#[tokio::test]
async fn every_bundle_version_npm_may_send_is_accepted() {
    let ctx = setup().await;
    let alice = ctx.app.user("alice").await;
    for (i, version) in [
        BundleVersion::V0_1,
        BundleVersion::V0_2,
        BundleVersion::V0_3,
        BundleVersion::V0_3AltMediaType,
    ]
    .into_iter()
    .enumerate()
    {
        let body = PublishBody::new("versions-pkg", &format!("1.0.{i}"));
        let bundle = ctx.bundle(&body, &ci(), &BundleOptions::version(version));
        let r = ctx.publish(&alice, &body, Some(&bundle)).await;
        assert_status(&r, StatusCode::CREATED);
        let r = ctx.attestations("versions-pkg", &body.version).await;
        assert_status(&r, StatusCode::OK);
    }
}

#[tokio::test]
async fn broken_or_foreign_bundles_are_refused_and_nothing_is_stored() {
    let ctx = setup().await;
    let alice = ctx.app.user("alice").await;
    let cases: Vec<(BundleOptions, &str)> = vec![
        (
            BundleOptions::broken(Breakage::OtherPackageName("other-pkg".into())),
            "the provenance is for `pkg:npm/other-pkg@1.0.0`, not for `pkg:npm/%40acme/refused@1.0.0`",
        ),
        (
            BundleOptions::broken(Breakage::OtherTarball),
            "does not describe this artifact",
        ),
        (
            BundleOptions::broken(Breakage::BadSignature),
            "signature does not verify",
        ),
        (
            BundleOptions::broken(Breakage::ExpiredCertificate),
            "signing certificate is not trusted",
        ),
        (
            BundleOptions::broken(Breakage::CorruptedInclusionProof),
            "transparency log entry does not prove",
        ),
        (
            BundleOptions::broken(Breakage::WrongCheckpointSignature),
            "transparency log entry does not prove",
        ),
        (
            BundleOptions::broken(Breakage::UntrustedCa),
            "signing certificate is not trusted",
        ),
    ];
    for (options, expected) in cases {
        let body = PublishBody::new("@acme/refused", "1.0.0");
        let bundle = ctx.bundle(&body, &ci(), &options);
        let r = ctx.publish(&alice, &body, Some(&bundle)).await;
        assert_status(&r, StatusCode::BAD_REQUEST);
        let error = r.error();
        assert!(
            error.starts_with(
                "the provenance bundle attached to `@acme/refused@1.0.0` was refused: "
            ),
            "{options:?}: {error}"
        );
        assert!(error.contains(expected), "{options:?}: {error}");
        ctx.assert_not_published("@acme/refused", "1.0.0").await;

        // A stage checks the same, before anything is stored.
        let r = ctx.stage(&alice, &body, Some(&bundle)).await;
        assert_status(&r, StatusCode::BAD_REQUEST);
        assert!(r.error().contains(expected), "{options:?}: {}", r.error());
    }

    // Garbage in the attachment is refused the same way.
    let body = PublishBody::new("@acme/refused", "1.0.0");
    let r = ctx
        .publish(
            &alice,
            &body,
            Some(&json!({ "mediaType": "application/json" })),
        )
        .await;
    assert_status(&r, StatusCode::BAD_REQUEST);
    ctx.assert_not_published("@acme/refused", "1.0.0").await;

    // Finally the good bundle goes through, so the refusals above were about the bundles.
    let bundle = ctx.bundle(&body, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice, &body, Some(&bundle)).await,
        StatusCode::CREATED,
    );
}

#[tokio::test]
async fn a_bundle_from_a_sigstore_the_registry_does_not_trust_is_refused() {
    // The default registry trusts only the public-good root.
    let app = TestApp::new().await;
    let sigstore = TestSigstore::new();
    let alice = app.user("alice").await;
    let body = PublishBody::new("unknown-root", "1.0.0");
    let bundle = sigstore.npm_provenance_bundle(
        &body.name,
        &body.version,
        &body.tarball,
        &ci(),
        &BundleOptions::default(),
    );
    let mut json = body.to_json(BASE);
    let (key, attachment) = npm_provenance_attachment(&body.name, &body.version, &bundle);
    json["_attachments"][key] = attachment;
    let r = app
        .send(
            Req::new(Method::PUT, &body.path())
                .token(&alice)
                .json(&json),
        )
        .await;
    assert_status(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.error()
            .contains("transparency log that no trusted root lists"),
        "{}",
        r.error()
    );
}

/// `npm trust github NAME --repository acme/widget --file release.yml`, plus Airlock's pinned
/// numeric repository id.
async fn trust(ctx: &Ctx, token: &str, name: &str, claims: Value) {
    let r = ctx
        .app
        .send(
            Req::new(
                Method::POST,
                &format!("/-/package/{}/trust", escaped_name(name)),
            )
            .token(token)
            .json(
                &json!([{ "type": "github", "claims": claims, "permissions": ["createPackage"] }]),
            ),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
}

#[tokio::test]
async fn provenance_must_come_from_the_trusted_publisher() {
    let ctx = setup().await;
    let alice = ctx.app.user("alice").await;
    ctx.app
        .published(&alice, &PublishBody::new("trusted-pkg", "0.1.0"))
        .await;
    trust(
        &ctx,
        &alice,
        "trusted-pkg",
        json!({ "repository": REPO, "workflow_ref": { "file": WORKFLOW }, "repository_id": REPO_ID.to_string() }),
    )
    .await;

    let mut other_repository = ci();
    other_repository.repository = "mallory/widget".into();
    other_repository.repository_id = 666;
    let mut recreated = ci();
    recreated.repository_id = 9999;
    let mut other_workflow = ci();
    other_workflow.workflow_path = ".github/workflows/sneaky.yml".into();
    let mut other_issuer = ci();
    other_issuer.issuer = "https://gitlab.com".into();
    for (identity, expected) in [
        (
            other_repository,
            "the source repository must be `acme/widget`, the signing certificate says `mallory/widget`",
        ),
        (
            recreated,
            "the repository id must be `4242`, the signing certificate says `9999`",
        ),
        (
            other_workflow,
            "the workflow must be `.github/workflows/release.yml`, the signing certificate says `.github/workflows/sneaky.yml`",
        ),
        (
            other_issuer,
            "the OIDC issuer must be `https://token.actions.githubusercontent.com`",
        ),
    ] {
        let body = PublishBody::new("trusted-pkg", "1.0.0");
        let bundle = ctx.bundle(&body, &identity, &BundleOptions::default());
        let r = ctx.publish(&alice, &body, Some(&bundle)).await;
        assert_status(&r, StatusCode::FORBIDDEN);
        assert!(
            r.error().starts_with(
                "the provenance of `trusted-pkg` was not built by its trusted publisher: "
            ),
            "{}",
            r.error()
        );
        assert!(r.error().contains(expected), "{}", r.error());
        ctx.assert_not_published("trusted-pkg", "1.0.0").await;
    }

    let body = PublishBody::new("trusted-pkg", "1.0.0");
    let bundle = ctx.bundle(&body, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice, &body, Some(&bundle)).await,
        StatusCode::CREATED,
    );
}

#[tokio::test]
async fn a_provenance_downgrade_is_refused_unless_declared() {
    let ctx = setup().await;
    let alice = Maintainer::new(&ctx.app, "alice").await;
    let first = PublishBody::new("guarded", "1.0.0");
    let bundle = ctx.bundle(&first, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice.token, &first, Some(&bundle)).await,
        StatusCode::CREATED,
    );

    // No provenance after a version with provenance: the stolen-token fingerprint.
    let next = PublishBody::new("guarded", "1.1.0");
    let r = ctx.publish(&alice.token, &next, None).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert_eq!(
        r.error(),
        "`guarded@1.0.0` was published with provenance from https://github.com/acme/widget (.github/workflows/release.yml), but this version has none, which is how a publish with a stolen token looks. Publish from that workflow with `npm publish --provenance`; if dropping provenance is intended, a maintainer must first declare it with `airlock policy set guarded --allow-missing-provenance` (needs a second factor)"
    );
    ctx.assert_not_published("guarded", "1.1.0").await;

    // Provenance from another repository, or another workflow of the same one.
    let mut moved = ci();
    moved.repository = "acme-org/widget".into();
    moved.repository_id = 5000;
    let mut renamed = ci();
    renamed.workflow_path = ".github/workflows/publish.yml".into();
    for identity in [&moved, &renamed] {
        let bundle = ctx.bundle(&next, identity, &BundleOptions::default());
        let r = ctx.publish(&alice.token, &next, Some(&bundle)).await;
        assert_status(&r, StatusCode::FORBIDDEN);
        assert!(
            r.error().starts_with(
                "`guarded@1.0.0` was built by https://github.com/acme/widget (.github/workflows/release.yml), but this version's provenance names "
            ),
            "{}",
            r.error()
        );
        assert!(
            r.error()
                .contains("airlock policy set guarded --expected-repository"),
            "{}",
            r.error()
        );
        ctx.assert_not_published("guarded", "1.1.0").await;
    }

    // The same builder is fine.
    let bundle = ctx.bundle(&next, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice.token, &next, Some(&bundle)).await,
        StatusCode::CREATED,
    );

    // A declared move (owner + second factor) lets exactly that move through.
    let r = alice
        .set_policy(
            &ctx.app,
            "guarded",
            &json!({ "provenance_change": { "expected_repository": "acme-org/widget" } }),
        )
        .await;
    assert_status(&r, StatusCode::OK);
    let v120 = PublishBody::new("guarded", "1.2.0");
    let bundle = ctx.bundle(&v120, &moved, &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice.token, &v120, Some(&bundle)).await,
        StatusCode::CREATED,
    );
    let summary = ctx.attestations("guarded", "1.2.0").await;
    assert_status(&summary, StatusCode::OK);

    // Dropping provenance needs its own declaration.
    let v130 = PublishBody::new("guarded", "1.3.0");
    let r = ctx.publish(&alice.token, &v130, None).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(
        r.error().starts_with(
            "`guarded@1.2.0` was published with provenance from https://github.com/acme-org/widget"
        ),
        "{}",
        r.error()
    );
    // A policy change without a second factor is refused; with it, accepted.
    let r = ctx
        .app
        .send(
            Req::new(Method::PUT, "/-/airlock/v1/policy/guarded")
                .token(&alice.token)
                .json(&json!({ "provenance_change": { "allow_missing": true } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
    let r = alice
        .set_policy(
            &ctx.app,
            "guarded",
            &json!({ "provenance_change": { "allow_missing": true } }),
        )
        .await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["effective"]["downgrade_protection"], true);
    assert_eq!(
        r.json()["effective"]["provenance_change"],
        json!({ "allow_missing": true })
    );
    assert_status(
        &ctx.publish(&alice.token, &v130, None).await,
        StatusCode::CREATED,
    );

    // A declaration is per package: not for a scope or the registry.
    let r = alice
        .set_policy(
            &ctx.app,
            "@acme",
            &json!({ "provenance_change": { "allow_missing": true } }),
        )
        .await;
    assert_status(&r, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn required_provenance_refuses_a_publish_without_it() {
    let ctx = setup().await;
    let alice = Maintainer::new(&ctx.app, "alice").await;
    ctx.app
        .published(&alice.token, &PublishBody::new("strict", "1.0.0"))
        .await;
    let r = alice
        .set_policy(&ctx.app, "strict", &json!({ "require_provenance": true }))
        .await;
    assert_status(&r, StatusCode::OK);
    let body = PublishBody::new("strict", "1.1.0");
    let r = ctx.publish(&alice.token, &body, None).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert_eq!(
        r.error(),
        "`strict` requires provenance: publish from CI with `npm publish --provenance` (or `npm stage publish --provenance`)"
    );
    let r = ctx.stage(&alice.token, &body, None).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    let bundle = ctx.bundle(&body, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice.token, &body, Some(&bundle)).await,
        StatusCode::CREATED,
    );
}

#[tokio::test]
async fn a_downgrade_on_a_staged_package_is_escalated_and_staged_provenance_goes_live() {
    let ctx = setup().await;
    let alice = Maintainer::new(&ctx.app, "alice").await;
    let bob = Maintainer::new(&ctx.app, "bob").await;
    let first = PublishBody::new("gated", "1.0.0");
    let bundle = ctx.bundle(&first, &ci(), &BundleOptions::default());
    assert_status(
        &ctx.publish(&alice.token, &first, Some(&bundle)).await,
        StatusCode::CREATED,
    );
    // bob maintains it too.
    let doc = ctx.app.packument("gated").await.json();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    let r = ctx
        .app
        .send(
            Req::new(Method::PUT, &format!("/gated/-rev/{rev}"))
                .token(&alice.token)
                .json(&json!({ "_id": "gated", "_rev": rev, "maintainers": [
                    { "name": "alice", "email": "alice@example.com" },
                    { "name": "bob", "email": "bob@example.com" },
                ] })),
        )
        .await;
    assert!(r.status.is_success(), "{}", text(&r));
    let r = alice
        .set_policy(&ctx.app, "gated", &json!({ "publish": "staged" }))
        .await;
    assert_status(&r, StatusCode::OK);

    // A stage with provenance from the same builder: one approval, and its bundle is served
    // once it is live.
    let v110 = PublishBody::new("gated", "1.1.0");
    let bundle = ctx.bundle(&v110, &ci(), &BundleOptions::default());
    let r = ctx.stage(&alice.token, &v110, Some(&bundle)).await;
    assert_status(&r, StatusCode::CREATED);
    let id = r.json()["stageId"].as_str().unwrap().to_owned();
    let view = ctx
        .app
        .send(Req::get(&format!("/-/stage/{id}")).token(&alice.token))
        .await
        .json();
    assert_eq!(view["approvals"], "0 of 1");
    let r = ctx.attestations("gated", "1.1.0").await;
    assert_status(&r, StatusCode::NOT_FOUND);
    let code = alice.otp(&ctx.app);
    let r = ctx
        .app
        .send(
            Req::new(Method::POST, &format!("/-/stage/{id}/approve"))
                .token(&alice.token)
                .header("npm-otp", &code),
        )
        .await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "live", "{}", text(&r));
    let r = ctx.attestations("gated", "1.1.0").await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["attestations"][0]["bundle"], bundle);
    let doc = ctx.app.packument("gated").await.json();
    assert!(doc["versions"]["1.1.0"]["dist"]["attestations"]["url"].is_string());

    // Without provenance: not refused, but escalated to one more approver, and the stage says why.
    let v120 = PublishBody::new("gated", "1.2.0");
    let r = ctx.stage(&alice.token, &v120, None).await;
    assert_status(&r, StatusCode::CREATED);
    let id = r.json()["stageId"].as_str().unwrap().to_owned();
    let view = ctx
        .app
        .send(Req::get(&format!("/-/stage/{id}")).token(&alice.token))
        .await
        .json();
    assert_eq!(view["approvals"], "0 of 2");
    let policy = view["policy"].as_str().unwrap();
    assert!(policy.contains("ProvenanceDowngrade"), "{policy}");
    // With two approvals needed the stager does not count: bob's approval is not enough.
    let code = bob.otp(&ctx.app);
    let r = ctx
        .app
        .send(
            Req::new(Method::POST, &format!("/-/stage/{id}/approve"))
                .token(&bob.token)
                .header("npm-otp", &code),
        )
        .await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "staged", "{}", text(&r));
    assert_eq!(r.json()["approvals"], "1 of 2");
    let doc = ctx.app.packument("gated").await.json();
    assert!(doc["versions"].get("1.2.0").is_none());

    // Provenance from another repository on a stage: escalated the same way.
    let v130 = PublishBody::new("gated", "1.3.0");
    let mut moved = ci();
    moved.repository = "acme-org/widget".into();
    let bundle = ctx.bundle(&v130, &moved, &BundleOptions::default());
    let r = ctx.stage(&alice.token, &v130, Some(&bundle)).await;
    assert_status(&r, StatusCode::CREATED);
    let id = r.json()["stageId"].as_str().unwrap().to_owned();
    let view = ctx
        .app
        .send(Req::get(&format!("/-/stage/{id}")).token(&alice.token))
        .await
        .json();
    assert_eq!(view["approvals"], "0 of 2");
    assert!(
        view["policy"]
            .as_str()
            .unwrap()
            .contains("ProvenanceIdentityChanged"),
        "{view}"
    );
}
