//! Durability: concurrent publishes, and SIGKILL in the middle of a publish.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use airlock_testkit::{HttpRequest, PublishBody};

use crate::common::*;

#[test]
fn concurrent_publishes_of_one_version_let_exactly_one_win() {
    let w = world();
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let bodies: Vec<PublishBody> = (0..N)
        .map(|i| {
            // Different bytes per contender, so the winner can be identified.
            PublishBody::with_payload("race-pkg", "1.0.0", i as u64, 10_000)
        })
        .collect();
    let handles: Vec<_> = bodies
        .iter()
        .map(|body| {
            let json = body.to_json(w.server.url());
            let req = HttpRequest::new(w.server.host_port(), "PUT", &body.path())
                .bearer(&w.alice)
                .json(&json);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                req.send()
            })
        })
        .collect();
    let responses: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let winners: Vec<usize> = (0..N)
        .filter(|&i| (200..300).contains(&responses[i].status))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one publish succeeds: {responses:#?}"
    );
    for (i, r) in responses.iter().enumerate() {
        if i != winners[0] {
            assert!(
                r.status == 403 || r.status == 409,
                "the others get a clear conflict: {r:?}"
            );
            r.error_message();
        }
    }
    let winner = &bodies[winners[0]];
    let doc = packument_json(&w.server, "race-pkg");
    assert_eq!(versions_of(&doc), ["1.0.0"]);
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["integrity"],
        winner.tarball().integrity()
    );
    assert_eq!(
        download_verified(&w.server, "race-pkg", "1.0.0"),
        winner.tarball
    );
}

#[test]
fn concurrent_publishes_of_different_versions_all_land() {
    let w = world();
    publish_raw(
        &w.server,
        Some(&w.alice),
        &PublishBody::new("many-pkg", "0.1.0"),
    )
    .assert_success();
    const N: usize = 6;
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let body = PublishBody::new("many-pkg", &format!("1.0.{i}")).tag(&format!("t{i}"));
            let req = HttpRequest::new(w.server.host_port(), "PUT", &body.path())
                .bearer(&w.alice)
                .json(&body.to_json(w.server.url()));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                req.send()
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread").assert_success();
    }
    let doc = packument_json(&w.server, "many-pkg");
    let mut versions = versions_of(&doc);
    versions.sort();
    assert_eq!(
        versions,
        [
            "0.1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5"
        ],
        "no lost update"
    );
    for i in 0..N {
        assert_eq!(
            doc["dist-tags"][format!("t{i}")],
            format!("1.0.{i}"),
            "{:#}",
            doc["dist-tags"]
        );
        download_verified(&w.server, "many-pkg", &format!("1.0.{i}"));
    }
}

/// SIGKILL the server at spread-out moments during a large publish; after each restart the version
/// is either fully there (packument + tarball with matching integrity) or fully absent (and can
/// then be published).
#[test]
fn a_publish_killed_at_any_moment_is_all_or_nothing() {
    let mut w = world();
    const ITERATIONS: u64 = 20;
    const SIZE: usize = 3 * 1024 * 1024;

    // Measure how long one publish of this size takes, to spread the kills over it.
    let probe = PublishBody::with_payload("kill-probe", "1.0.0", 999, SIZE);
    let probe_json = probe.to_json(w.server.url());
    let started = Instant::now();
    w.server
        .http("PUT", &probe.path())
        .bearer(&w.alice)
        .json(&probe_json)
        .send()
        .assert_success();
    let publish_time = started.elapsed().max(Duration::from_millis(20));

    let mut present = 0;
    let mut absent = 0;
    for i in 0..ITERATIONS {
        let version = format!("1.0.{i}");
        let body = PublishBody::with_payload("kill-pkg", &version, i, SIZE);
        let json = body.to_json(w.server.url());
        // Delays from 0 to 1.2× the publish time, in even steps.
        let delay = publish_time.mul_f64(1.2 * i as f64 / (ITERATIONS - 1) as f64);
        let req = HttpRequest::new(w.server.host_port(), "PUT", &body.path())
            .bearer(&w.alice)
            .json(&json)
            .timeout(Duration::from_secs(30));
        let sender = std::thread::spawn(move || req.try_send());
        std::thread::sleep(delay);
        w.server.kill();
        let sent = sender.join().expect("sender thread");
        w.server
            .restart()
            .unwrap_or_else(|e| panic!("restart after kill #{i} failed: {e:#}"));

        let doc = packument(&w.server, "kill-pkg", None);
        let has_version = doc.status == 200 && doc.json()["versions"].get(&version).is_some();
        if has_version {
            present += 1;
            let doc = doc.json();
            assert_eq!(
                doc["versions"][&version]["dist"]["integrity"],
                body.tarball().integrity(),
                "kill #{i}"
            );
            assert!(
                doc["time"].get(&version).is_some(),
                "kill #{i}: time[{version}] present: {doc:#}"
            );
            assert_eq!(
                download_verified(&w.server, "kill-pkg", &version),
                body.tarball,
                "kill #{i}: bytes"
            );
        } else {
            absent += 1;
            assert!(doc.status == 200 || doc.status == 404, "kill #{i}: {doc:?}");
            if let Ok(resp) = &sent {
                assert!(
                    !(200..300).contains(&resp.status),
                    "kill #{i}: a 2xx publish must survive the kill: {resp:?}"
                );
            }
            let tarball = w.server.get(&body.tarball_path());
            assert_eq!(
                tarball.status, 404,
                "kill #{i}: no tarball for an absent version"
            );
            // The version was never published, so it can be now.
            let r = w
                .server
                .http("PUT", &body.path())
                .bearer(&w.alice)
                .json(&body.to_json(w.server.url()))
                .send();
            r.assert_success();
            assert_eq!(
                download_verified(&w.server, "kill-pkg", &version),
                body.tarball,
                "kill #{i}: republished bytes"
            );
        }
    }
    eprintln!(
        "kill test: publish takes {publish_time:?}; {present} present, {absent} absent after kill"
    );
    // Everything published is still consistent at the end.
    let doc = packument_json(&w.server, "kill-pkg");
    assert_eq!(versions_of(&doc).len(), ITERATIONS as usize);
    download_verified(&w.server, "kill-probe", "1.0.0");
}
