//! Webhooks end to end: a real receiver on loopback (a tiny `TcpListener` server) hears a
//! spawned `airlock serve` announce a staged release, signed with the hook's secret, and is
//! retried when it first fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use airlock_testkit::PublishBody;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{publish_raw, server};

/// One request as the receiver saw it.
struct Received {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Accepts connections on 127.0.0.1:0 and answers each request with the next of `statuses`
/// (the last one repeats), passing what arrived to the returned channel.
fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("the bound address")
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a read timeout");
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            let status = statuses[n.min(statuses.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if tx.send(request).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// HMAC-SHA256 (RFC 2104) in lower-case hex, computed here rather than trusted from Airlock.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[track_caller]
fn next(rx: &mpsc::Receiver<Received>, what: &str) -> Received {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no webhook delivery ({what}) within 30 s: {e}"))
}

#[test]
fn a_staged_release_reaches_a_real_receiver_signed_and_retried() {
    let server = server();
    let alice = server.user_with_token("alice");
    publish_raw(&server, Some(&alice), &PublishBody::new("wh-demo", "1.0.0")).assert_success();

    // The receiver fails the first time, then accepts.
    let (url, deliveries) = receiver(vec![503, 204]);
    let r = server
        .http("POST", "/-/airlock/v1/hooks")
        .bearer(&alice)
        .json(&json!({ "target": "wh-demo", "url": url }))
        .send();
    r.assert_status(201);
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let hook_id = created["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let staged = PublishBody::new("wh-demo", "1.1.0");
    let r = server
        .http("POST", "/-/stage/package/wh-demo")
        .bearer(&alice)
        .json(&staged.to_json(server.url()))
        .send();
    r.assert_status(201);
    let stage_id = r.json()["stageId"].as_str().unwrap().to_owned();

    let first = next(&deliveries, "first attempt");
    let second = next(&deliveries, "retry after the 503");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the retry waits its backoff"
    );
    for request in [&first, &second] {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hook");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["x-airlock-event"], "staged");
        assert_eq!(
            request.headers["x-airlock-signature"],
            format!(
                "sha256={}",
                hmac_sha256_hex(secret.as_bytes(), &request.body)
            ),
            "signed over the exact body with the secret handed out at creation"
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["event"], "staged");
        assert_eq!(body["package"], "wh-demo");
        assert_eq!(body["version"], "1.1.0");
        assert_eq!(body["stageId"], stage_id);
        assert_eq!(body["actor"], "alice");
    }
    assert_eq!(
        first.headers["x-airlock-delivery"], second.headers["x-airlock-delivery"],
        "a retry is the same delivery"
    );
    assert_eq!(first.body, second.body);

    // The registry recorded the delivery as done, after two attempts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = server
            .http("GET", "/-/airlock/v1/hooks?target=wh-demo")
            .bearer(&alice)
            .send();
        listed.assert_status(200);
        let listed = listed.json();
        assert_eq!(listed["hooks"][0]["id"], hook_id);
        assert!(listed["hooks"][0].get("secret").is_none());
        let delivery = &listed["hooks"][0]["deliveries"][0];
        if delivery["deliveredAt"].is_string() {
            assert_eq!(delivery["attempts"], 2);
            assert_eq!(delivery["lastError"], Value::Null);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery was never marked delivered: {listed:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
