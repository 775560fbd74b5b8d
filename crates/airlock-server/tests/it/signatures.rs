//! Registry signatures (protocol §6): `dist.signatures` on every live version, the keys
//! document, a rotation while the registry runs, and signing versions that have none.

use std::sync::Arc;
use std::time::Duration;

use airlock_registry::rotate_keyring;
use airlock_store::{KeyringFile, NewVersion, Packages, PublishPlan, SqliteStore, parse_time};
use airlock_testkit::PublishBody;
use airlock_trust::{PublicKey, signature_message};
use axum::http::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::{Req, TestApp};

const CORGI_ACCEPT: &str = "application/vnd.npm.install-v1+json";

async fn keys(app: &TestApp) -> Value {
    let r = app.send(Req::get("/-/npm/v1/keys")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// Why npm would refuse one signature, or `None` when it accepts it: pacote's checks in its
/// order (a listed key, `time[version]` before the key's expiry, then ECDSA over
/// `name@version:integrity`).
fn npm_refusal(
    name: &str,
    version: &str,
    integrity: &str,
    time: &str,
    signature: &Value,
    keys: &Value,
) -> Option<String> {
    let keyid = signature["keyid"].as_str().unwrap();
    let Some(key) = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == keyid)
    else {
        return Some(format!("EMISSINGSIGNATUREKEY {keyid}"));
    };
    if let Some(expires) = key["expires"].as_str()
        && parse_time(time).unwrap() >= parse_time(expires).unwrap()
    {
        return Some(format!("EEXPIREDSIGNATUREKEY {keyid}"));
    }
    let public = PublicKey::from_spki_base64(key["key"].as_str().unwrap()).unwrap();
    assert_eq!(
        public.keyid().as_str(),
        keyid,
        "a keyid is its key's fingerprint"
    );
    let message = signature_message(name, version, integrity);
    match public.verify(message.as_bytes(), signature["sig"].as_str().unwrap()) {
        Ok(()) => None,
        Err(e) => Some(format!("EINTEGRITYSIGNATURE {e}")),
    }
}

/// Asserts every live version of `doc` (a full packument) carries exactly one signature npm
/// accepts with the registry's current keys document; returns the keyid of each version.
pub(crate) async fn assert_signed(app: &TestApp, doc: &Value) -> Vec<(String, String)> {
    let keys = keys(app).await;
    let name = doc["name"].as_str().unwrap();
    let mut keyids = Vec::new();
    for (version, manifest) in doc["versions"].as_object().unwrap() {
        let dist = &manifest["dist"];
        let signatures = dist["signatures"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}@{version} is not signed: {dist}"));
        assert_eq!(signatures.len(), 1, "{dist}");
        let integrity = dist["integrity"].as_str().unwrap();
        let time = doc["time"][version].as_str().unwrap();
        assert_eq!(
            npm_refusal(name, version, integrity, time, &signatures[0], &keys),
            None,
            "{name}@{version}"
        );
        keyids.push((
            version.clone(),
            signatures[0]["keyid"].as_str().unwrap().to_owned(),
        ));
    }
    keyids
}

fn redact_keys(mut doc: Value) -> Value {
    for key in doc["keys"].as_array_mut().unwrap() {
        let keyid = key["keyid"].as_str().unwrap();
        assert!(keyid.starts_with("SHA256:") && keyid.len() == 50, "{keyid}");
        key["keyid"] = "[keyid]".into();
        PublicKey::from_spki_base64(key["key"].as_str().unwrap()).unwrap();
        key["key"] = "[base64 SPKI]".into();
    }
    doc
}

#[tokio::test]
async fn the_keys_document_has_npms_shape_and_needs_no_token() {
    let app = TestApp::new().await;
    let doc = keys(&app).await;
    insta::assert_json_snapshot!(redact_keys(doc.clone()), @r#"
    {
      "keys": [
        {
          "expires": null,
          "keyid": "[keyid]",
          "keytype": "ecdsa-sha2-nistp256",
          "scheme": "ecdsa-sha2-nistp256",
          "key": "[base64 SPKI]"
        }
      ]
    }
    "#);
    // The key is the one in the data directory's keyring.
    let keyring = airlock_registry::read_keyring(&KeyringFile::in_data_dir(app.data_dir()))
        .unwrap()
        .unwrap();
    assert_eq!(
        doc["keys"][0]["keyid"],
        keyring.signing_key().keyid().as_str()
    );
    // HEAD works; a write does not.
    let head = app.send(Req::new(Method::HEAD, "/-/npm/v1/keys")).await;
    assert_eq!(head.status, StatusCode::OK);
    let post = app.send(Req::new(Method::POST, "/-/npm/v1/keys")).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_published_version_is_signed_in_both_documents() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("@acme/signed", "1.0.0"))
        .await;
    app.published(&alice, &PublishBody::new("@acme/signed", "1.1.0"))
        .await;

    let full = app.packument("@acme/signed").await.json();
    let signed = assert_signed(&app, &full).await;
    assert_eq!(signed.len(), 2);
    let corgi = app
        .send(Req::get("/@acme%2fsigned").header("accept", CORGI_ACCEPT))
        .await
        .json();
    for (version, manifest) in full["versions"].as_object().unwrap() {
        assert_eq!(
            corgi["versions"][version]["dist"]["signatures"],
            manifest["dist"]["signatures"]
        );
    }

    // A changed integrity, version or name no longer verifies.
    let keys = keys(&app).await;
    let dist = &full["versions"]["1.0.0"]["dist"];
    let integrity = dist["integrity"].as_str().unwrap();
    let time = full["time"]["1.0.0"].as_str().unwrap();
    let sig = &dist["signatures"][0];
    let other_integrity = full["versions"]["1.1.0"]["dist"]["integrity"]
        .as_str()
        .unwrap();
    for (name, version, integrity) in [
        ("@acme/signed", "1.0.0", other_integrity),
        ("@acme/signed", "1.1.0", integrity),
        ("@acme/other", "1.0.0", integrity),
    ] {
        let refusal = npm_refusal(name, version, integrity, time, sig, &keys).unwrap();
        assert!(refusal.starts_with("EINTEGRITYSIGNATURE"), "{refusal}");
    }
}

#[tokio::test]
async fn a_rotation_is_used_without_restart_and_old_signatures_stay_valid() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("rotated", "1.0.0"))
        .await;
    let before = keys(&app).await["keys"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_owned();

    app.advance(Duration::from_secs(60));
    let rotated_at =
        OffsetDateTime::from_unix_timestamp(i64::try_from(app.registry_now()).unwrap()).unwrap();
    rotate_keyring(&KeyringFile::in_data_dir(app.data_dir()), rotated_at).unwrap();
    app.advance(Duration::from_secs(60));
    app.published(&alice, &PublishBody::new("rotated", "1.1.0"))
        .await;

    let keys = keys(&app).await;
    let listed: Vec<(&str, &Value)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["keyid"].as_str().unwrap(), &k["expires"]))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].1, &Value::Null);
    assert_eq!(
        (listed[1].0, listed[1].1),
        (
            before.as_str(),
            &Value::from(airlock_store::format_time(rotated_at))
        )
    );
    let after = listed[0].0.to_owned();
    assert_ne!(after, before);

    let doc = app.packument("rotated").await.json();
    assert_eq!(
        assert_signed(&app, &doc).await,
        [("1.0.0".to_owned(), before), ("1.1.0".to_owned(), after)]
    );
    // Nothing needed re-signing: the old signature is valid for a version from before.
    assert_eq!(app.registry.refresh_signatures().await.unwrap(), 0);
}

#[tokio::test]
async fn a_signature_by_a_key_that_expired_before_its_version_is_replaced() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("raced", "1.0.0"))
        .await;
    let published_at =
        OffsetDateTime::from_unix_timestamp(i64::try_from(app.registry_now()).unwrap()).unwrap();
    // As if the rotation had been written a moment before a publish that still signed with
    // the old key.
    rotate_keyring(
        &KeyringFile::in_data_dir(app.data_dir()),
        published_at - Duration::from_millis(1),
    )
    .unwrap();
    let keys_now = keys(&app).await;
    let doc = app.packument("raced").await.json();
    let dist = &doc["versions"]["1.0.0"]["dist"];
    let refusal = npm_refusal(
        "raced",
        "1.0.0",
        dist["integrity"].as_str().unwrap(),
        doc["time"]["1.0.0"].as_str().unwrap(),
        &dist["signatures"][0],
        &keys_now,
    );
    assert!(refusal.unwrap().starts_with("EEXPIREDSIGNATUREKEY"));

    assert_eq!(app.registry.refresh_signatures().await.unwrap(), 1);
    let doc = app.packument("raced").await.json();
    let signed = assert_signed(&app, &doc).await;
    assert_eq!(signed[0].1, keys_now["keys"][0]["keyid"].as_str().unwrap());
    assert_eq!(app.registry.refresh_signatures().await.unwrap(), 0);
}

#[tokio::test]
async fn versions_from_before_the_registry_had_a_key_are_signed() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("old", "1.0.0"))
        .await;
    // A version stored unsigned, as by a version of Airlock without signatures.
    let store = Arc::new(
        SqliteStore::open(&app.data_dir().join("airlock.db"))
            .await
            .unwrap(),
    );
    let state = store.package("old").await.unwrap().unwrap();
    let alice_id = state.maintainers[0].id;
    let integrity = "sha512-AAAA".to_owned();
    store
        .publish(PublishPlan {
            name: "old".into(),
            scope: None,
            expected_rev: Some(state.rev),
            claim_scope: None,
            access: None,
            version: NewVersion {
                version: "0.9.0".into(),
                manifest: serde_json::from_value(
                    serde_json::json!({ "name": "old", "version": "0.9.0" }),
                )
                .unwrap(),
                integrity: integrity.clone(),
                shasum: "0".repeat(40),
                sha512_hex: "0".repeat(128),
                size: 1,
                file_count: 1,
                unpacked_size: 1,
                publisher_id: alice_id,
                provenance: None,
            },
            tag: "legacy".into(),
            description: None,
            keywords: vec![],
            now: state.modified_at,
            signature: None,
        })
        .await
        .unwrap();
    let unsigned = store.package("old").await.unwrap().unwrap();
    assert!(unsigned.versions.iter().any(|v| v.signature.is_none()));

    assert_eq!(app.registry.sign_versions().await.unwrap(), 1);
    // The cached documents were dropped: the new signature shows at once.
    let doc = app.packument("old").await.json();
    assert_eq!(assert_signed(&app, &doc).await.len(), 2);
    assert_eq!(doc["versions"]["0.9.0"]["dist"]["integrity"], integrity);
    assert_eq!(app.registry.sign_versions().await.unwrap(), 0);
}
