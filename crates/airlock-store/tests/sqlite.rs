//! The storage contract, run against SQLite. Every method is one transaction; these tests pin
//! what callers rely on: optimistic revisions, version numbers never reused, one-shot logins.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_store::{
    Accounts, NewToken, NewUser, NewVersion, PackageChange, Packages, PublishPlan, SqliteStore,
    StoreError, TokenRecord, VersionSignature, WebLoginRedeem,
};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

async fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

async fn user(store: &SqliteStore, name: &str) -> i64 {
    store
        .create_user(NewUser {
            name: name.into(),
            email: format!("{name}@example.com"),
            password_hash: "x".into(),
            is_admin: false,
            now: now(),
        })
        .await
        .unwrap()
        .id
}

fn plan(name: &str, version: &str, publisher_id: i64, expected_rev: Option<i64>) -> PublishPlan {
    PublishPlan {
        name: name.into(),
        scope: None,
        expected_rev,
        claim_scope: None,
        access: None,
        version: NewVersion {
            version: version.into(),
            manifest: serde_json::Map::new(),
            integrity: "sha512-x".into(),
            shasum: "0".repeat(40),
            sha512_hex: "a".repeat(128),
            size: 1,
            file_count: 1,
            unpacked_size: 1,
            publisher_id,
            provenance: None,
        },
        tag: "latest".into(),
        description: None,
        keywords: vec![],
        now: now(),
        signature: None,
    }
}

#[tokio::test]
async fn publish_is_guarded_by_the_revision() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let rev = store
        .publish(plan("pkg", "1.0.0", alice, None))
        .await
        .unwrap();
    // A second "new package" publish loses: the package exists now.
    assert!(matches!(
        store.publish(plan("pkg", "1.1.0", alice, None)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .publish(plan("pkg", "1.1.0", alice, Some(rev + 7)))
            .await,
        Err(StoreError::Conflict)
    ));
    let rev2 = store
        .publish(plan("pkg", "1.1.0", alice, Some(rev)))
        .await
        .unwrap();
    assert!(rev2 > rev);
    let state = store.package("pkg").await.unwrap().unwrap();
    assert_eq!(state.versions.len(), 2);
    assert_eq!(
        state.dist_tags.get("latest").map(String::as_str),
        Some("1.1.0")
    );
    assert_eq!(state.maintainers.len(), 1);
}

fn signature(keyid: &str, sig: &str) -> VersionSignature {
    VersionSignature {
        keyid: keyid.into(),
        sig: sig.into(),
    }
}

#[tokio::test]
async fn version_signatures_are_stored_found_and_replaced() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let rev = store
        .publish(PublishPlan {
            signature: Some(signature("SHA256:a", "sig-a")),
            ..plan("pkg", "1.0.0", alice, None)
        })
        .await
        .unwrap();
    let rev = store
        .publish(plan("pkg", "1.1.0", alice, Some(rev)))
        .await
        .unwrap();
    store
        .publish(plan("gone", "1.0.0", alice, None))
        .await
        .unwrap();
    let gone_rev = store.package("gone").await.unwrap().unwrap().rev;
    store
        .update_package(
            "gone",
            gone_rev,
            PackageChange::UnpublishPackage,
            alice,
            now(),
        )
        .await
        .unwrap();

    let state = store.package("pkg").await.unwrap().unwrap();
    assert_eq!(
        state.versions[0].signature,
        Some(signature("SHA256:a", "sig-a"))
    );
    assert_eq!(state.versions[1].signature, None);

    // Unsigned and other-key versions are listed; unpublished ones never are.
    let listed = |keyid: &'static str| {
        let store = store.clone();
        async move {
            store
                .versions_not_signed_by(keyid)
                .await
                .unwrap()
                .into_iter()
                .map(|v| (v.package, v.version, v.signature.map(|s| s.keyid)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("SHA256:a").await,
        [("pkg".to_owned(), "1.1.0".to_owned(), None)]
    );
    assert_eq!(
        listed("SHA256:b").await,
        [
            (
                "pkg".to_owned(),
                "1.0.0".to_owned(),
                Some("SHA256:a".to_owned())
            ),
            ("pkg".to_owned(), "1.1.0".to_owned(), None),
        ]
    );

    let to_sign = store.versions_not_signed_by("SHA256:b").await.unwrap();
    assert_eq!(to_sign[0].published_at, now());
    assert_eq!(to_sign[0].integrity, "sha512-x");
    let mut stale = to_sign[0].clone();
    stale.integrity = "sha512-other".into();
    store
        .set_version_signatures(&[
            (to_sign[0].clone(), signature("SHA256:b", "sig-b0")),
            (to_sign[1].clone(), signature("SHA256:b", "sig-b1")),
        ])
        .await
        .unwrap();
    // A signature of other bytes than the row holds is not stored.
    store
        .set_version_signatures(&[(stale, signature("SHA256:c", "sig-c"))])
        .await
        .unwrap();
    assert!(listed("SHA256:b").await.is_empty());
    let state = store.package("pkg").await.unwrap().unwrap();
    assert_eq!(
        state.versions[0].signature,
        Some(signature("SHA256:b", "sig-b0"))
    );
    assert_eq!(
        state.versions[1].signature,
        Some(signature("SHA256:b", "sig-b1"))
    );
    // Signing is not a change of the package.
    assert_eq!(state.rev, rev);
}

#[tokio::test]
async fn unpublished_versions_keep_their_number() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let rev = store
        .publish(plan("pkg", "1.0.0", alice, None))
        .await
        .unwrap();
    let rev = store
        .update_package("pkg", rev, PackageChange::UnpublishPackage, alice, now())
        .await
        .unwrap();
    let state = store.package("pkg").await.unwrap().unwrap();
    assert!(state.unpublished_at.is_some());
    assert!(state.versions.iter().all(|v| !v.is_live()));
    assert!(state.dist_tags.is_empty());
    assert!(
        matches!(store.publish(plan("pkg", "1.0.0", alice, Some(rev))).await, Err(StoreError::VersionExists(v)) if v == "1.0.0")
    );
    // Nothing of the refused publish stuck.
    assert_eq!(store.package("pkg").await.unwrap().unwrap().rev, rev);
}

#[tokio::test]
async fn concurrent_publishes_of_one_version_let_exactly_one_win() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let rev = store
        .publish(plan("pkg", "1.0.0", alice, None))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.publish(plan("pkg", "2.0.0", alice, Some(rev))).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict | StoreError::VersionExists(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn a_scope_is_claimed_once() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let mut first = plan("@s/a", "1.0.0", alice, None);
    first.claim_scope = Some("s".into());
    store.publish(first).await.unwrap();
    let mut second = plan("@s/b", "1.0.0", bob, None);
    second.claim_scope = Some("s".into());
    assert!(matches!(
        store.publish(second).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.package("@s/b").await.unwrap().is_none(),
        "the losing publish left nothing behind"
    );
    let owners = store.scope_owners("s").await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].user_id, alice);
}

#[tokio::test]
async fn dist_tag_and_maintainer_changes() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let rev = store
        .publish(plan("pkg", "1.0.0", alice, None))
        .await
        .unwrap();
    let rev = store
        .update_package(
            "pkg",
            rev,
            PackageChange::SetDistTag {
                tag: "beta".into(),
                version: "1.0.0".into(),
            },
            alice,
            now(),
        )
        .await
        .unwrap();
    let rev = store
        .update_package(
            "pkg",
            rev,
            PackageChange::SetMaintainers(vec![alice, bob]),
            alice,
            now(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_package(
                "pkg",
                rev - 1,
                PackageChange::RemoveDistTag("beta".into()),
                alice,
                now()
            )
            .await,
        Err(StoreError::Conflict)
    ));
    let mut deprecations = BTreeMap::new();
    deprecations.insert("1.0.0".to_owned(), Some("old".to_owned()));
    store
        .update_package(
            "pkg",
            rev,
            PackageChange::SetDeprecations(deprecations),
            bob,
            now(),
        )
        .await
        .unwrap();
    let state = store.package("pkg").await.unwrap().unwrap();
    assert_eq!(
        state
            .maintainers
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(
        state.dist_tags.get("beta").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(state.versions[0].deprecated.as_deref(), Some("old"));
}

fn token(key: &str, user_id: i64, expires_at: Option<OffsetDateTime>) -> NewToken {
    NewToken {
        record: TokenRecord {
            key: key.into(),
            user_id,
            display: "airlock_abcd".into(),
            name: None,
            description: None,
            readonly: false,
            cidr_whitelist: Some(vec!["10.0.0.0/8".into()]),
            packages: None,
            created_at: now(),
            expires_at,
        },
        hash: format!("hash-{key}"),
    }
}

#[tokio::test]
async fn tokens_expire_and_revoke() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    store
        .insert_token(token("k1", alice, Some(now() + Duration::from_secs(60))))
        .await
        .unwrap();
    let (record, owner) = store
        .token_by_hash("hash-k1", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.name, "alice");
    assert_eq!(record.cidr_whitelist, Some(vec!["10.0.0.0/8".to_owned()]));
    assert!(
        store
            .token_by_hash("hash-k1", now() + Duration::from_secs(61))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete_token("k1").await.unwrap());
    assert!(!store.delete_token("k1").await.unwrap());
    assert!(
        store
            .token_by_hash("hash-k1", now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_web_login_is_redeemed_once() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    let later = now() + Duration::from_secs(600);
    store
        .create_web_login("login-1", "done-1", false, now(), later)
        .await
        .unwrap();
    assert!(matches!(
        store
            .redeem_web_login("done-1", token("k1", 0, None), now())
            .await
            .unwrap(),
        WebLoginRedeem::Pending
    ));
    assert!(
        store
            .complete_web_login("login-1", alice, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_web_login("login-1", alice, now())
            .await
            .unwrap(),
        "completing twice"
    );
    match store
        .redeem_web_login("done-1", token("k2", 0, None), now())
        .await
        .unwrap()
    {
        WebLoginRedeem::Redeemed(user) => assert_eq!(user.id, alice),
        _ => panic!("expected the token"),
    }
    assert_eq!(
        store
            .token_by_hash("hash-k2", now())
            .await
            .unwrap()
            .unwrap()
            .0
            .user_id,
        alice
    );
    assert!(matches!(
        store
            .redeem_web_login("done-1", token("k3", 0, None), now())
            .await
            .unwrap(),
        WebLoginRedeem::Unknown
    ));
    // An expired login cannot be completed or redeemed.
    store
        .create_web_login("login-2", "done-2", false, now(), later)
        .await
        .unwrap();
    assert!(
        !store
            .complete_web_login("login-2", alice, later)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn user_names_are_unique() {
    let (store, _dir) = store().await;
    user(&store, "alice").await;
    let again = store
        .create_user(NewUser {
            name: "alice".into(),
            email: "x@example.com".into(),
            password_hash: "x".into(),
            is_admin: false,
            now: now(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(_))));
}
