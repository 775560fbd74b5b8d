//! `airlock serve`: the ready line, graceful shutdown, configuration sources, restarts.

use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_testkit::{PublishBody, Running, ServerOptions};

use crate::common::*;

#[test]
fn serve_prints_ready_line_and_answers_ping() {
    let server = server();
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "url: {}",
        server.url()
    );
    assert!(server.url().ends_with('/'));
    let r = server.get("/-/ping");
    r.assert_success();
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let mut server = server();
    server.get("/-/ping").assert_success();
    let status = server.terminate().expect("server stops on SIGTERM");
    assert!(
        status.success(),
        "SIGTERM should be a clean exit, got {status}; stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn serve_takes_data_dir_and_listen_from_env() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("from-env");
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .env("AIRLOCK_DATA_DIR", &data)
        .env("AIRLOCK_LISTEN", "127.0.0.1:0")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_PUBLIC_URL")
        .stdin(Stdio::null());
    let mut running = Running::spawn(cmd).expect("spawn airlock serve");
    let out = running
        .wait_for_text(
            "airlock: serving http://127.0.0.1:",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        out.contains(&format!("(data dir {})", data.display())),
        "the ready line names the data dir from AIRLOCK_DATA_DIR: {out}"
    );
    assert!(
        data.is_dir(),
        "the data dir from AIRLOCK_DATA_DIR is created"
    );
    assert!(
        std::fs::read_dir(&data)
            .expect("read data dir")
            .next()
            .is_some(),
        "and used"
    );
    running.kill();
}

#[test]
fn public_url_flag_is_used_in_dist_tarball() {
    let server = server_with(
        ServerOptions::new()
            .serve_arg("--public-url")
            .serve_arg("http://registry.example.test:8080/"),
    );
    let alice = server.user_with_token("alice");
    publish_raw(
        &server,
        Some(&alice),
        &PublishBody::new("public-url-pkg", "1.0.0"),
    )
    .assert_success();
    let doc = packument_json(&server, "public-url-pkg");
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://registry.example.test:8080/public-url-pkg/-/public-url-pkg-1.0.0.tgz"
    );
}

#[test]
fn public_url_from_env_is_used_in_dist_tarball() {
    let server =
        server_with(ServerOptions::new().env("AIRLOCK_PUBLIC_URL", "http://env.example.test/"));
    let alice = server.user_with_token("alice");
    publish_raw(
        &server,
        Some(&alice),
        &PublishBody::new("@env/pkg", "1.0.0"),
    )
    .assert_success();
    let doc = packument_json(&server, "@env/pkg");
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://env.example.test/@env/pkg/-/pkg-1.0.0.tgz"
    );
}

#[test]
fn config_file_sets_public_url() {
    let server = server_with(
        ServerOptions::new().config("public_url = \"http://from-config.example.test/\"\n"),
    );
    let alice = server.user_with_token("alice");
    publish_raw(
        &server,
        Some(&alice),
        &PublishBody::new("config-pkg", "1.0.0"),
    )
    .assert_success();
    let doc = packument_json(&server, "config-pkg");
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://from-config.example.test/config-pkg/-/config-pkg-1.0.0.tgz"
    );
}

#[test]
fn data_survives_a_restart() {
    let mut server = server();
    let alice = server.user_with_token("alice");
    let body = PublishBody::new("durable-pkg", "1.0.0");
    publish_raw(&server, Some(&alice), &body).assert_success();
    server.restart().expect("restart");
    let bytes = download_verified(&server, "durable-pkg", "1.0.0");
    assert_eq!(bytes, body.tarball);
    server
        .http("GET", "/-/whoami")
        .bearer(&alice)
        .send()
        .assert_status(200);
}
