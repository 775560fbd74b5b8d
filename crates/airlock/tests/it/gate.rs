//! The release gate driven by the real npm CLI: `npm stage publish | list | view | download |
//! approve | reject`, policies set over Airlock's management API, second factors computed here
//! from the TOTP secret (and enrolled for real with `npm profile enable-2fa` on a pseudo-terminal),
//! cooling-off windows that end on their own, and `npm install` of what went live.
//!
//! TOTP codes are real-time: the server accepts the previous, current and next 30-second step,
//! and each step once per user. [`Authenticator::code`] hands out the next unused step the server
//! will accept and sleeps only when a user has used them all, so tests spread their approvals
//! over several users rather than waiting.

use std::cell::Cell;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airlock_testkit::{NpmEnv, PackageDir, Server, ServerOptions, escaped_name, index_js};
use airlock_trust::{TOTP_STEP_SECS, TotpSecret};
use serde_json::{Value, json};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
}

/// A TOTP authenticator app, for one user.
struct Authenticator {
    secret: TotpSecret,
    /// The last step a code was handed out for.
    last_step: Cell<u64>,
}

impl Authenticator {
    fn new(secret: TotpSecret, used_step: u64) -> Authenticator {
        Authenticator {
            secret,
            last_step: Cell::new(used_step),
        }
    }

    /// A code the server accepts once: the current step, or the next one if the current one is
    /// used up; if both are, waits for the clock to move on. Never a past step, so a code does
    /// not fall out of the accepted window on its way to the server.
    fn code(&self) -> String {
        loop {
            let now = unix_now().as_secs() / TOTP_STEP_SECS;
            let step = (self.last_step.get() + 1).max(now);
            if step <= now + 1 {
                self.last_step.set(step);
                return self.secret.code_at_step(step);
            }
            let at = Duration::from_secs((step - 1) * TOTP_STEP_SECS) + Duration::from_millis(200);
            std::thread::sleep(at.saturating_sub(unix_now()));
        }
    }

    /// The code of the step before the last one handed out: inside the server's window, but
    /// older than a step already used.
    fn older_code(&self) -> String {
        self.secret.code_at_step(self.last_step.get() - 1)
    }
}

/// A user with a token, an npm environment using it, and (once enrolled) an authenticator and
/// recovery codes.
struct User {
    name: String,
    token: String,
    npm: NpmEnv,
    auth: Option<Authenticator>,
    recovery: Vec<String>,
}

impl User {
    /// `airlock user add` + `airlock token create`, and an npm environment with the token.
    fn new(server: &Server, name: &str) -> User {
        let token = server.user_with_token(name);
        let npm = NpmEnv::new(server).with_token(&token);
        User {
            name: name.to_owned(),
            token,
            npm,
            auth: None,
            recovery: Vec::new(),
        }
    }

    /// Like [`User::new`], then enrols TOTP in `mode` over the profile API, as
    /// `npm profile enable-2fa` does.
    fn enrolled(server: &Server, name: &str, mode: &str) -> User {
        let mut user = User::new(server, name);
        let r = server
            .http("POST", "/-/npm/v1/user")
            .bearer(&user.token)
            .json(&json!({ "tfa": { "mode": mode, "password": password_of(name) } }))
            .send();
        r.assert_status(200);
        let secret = secret_of(r.json()["tfa"].as_str().expect("an otpauth:// URI"));
        let step = unix_now().as_secs() / TOTP_STEP_SECS;
        let r = server
            .http("POST", "/-/npm/v1/user")
            .bearer(&user.token)
            .json(&json!({ "tfa": [secret.code_at_step(step)] }))
            .send();
        r.assert_status(200);
        user.recovery = serde_json::from_value(r.json()["tfa"].clone()).expect("recovery codes");
        assert_eq!(user.recovery.len(), 10);
        user.auth = Some(Authenticator::new(secret, step));
        user
    }

    fn code(&self) -> String {
        self.auth
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no authenticator", self.name))
            .code()
    }

    /// A recovery code not used yet (for set-up steps, so TOTP steps stay free for the npm
    /// commands under test).
    fn recovery_code(&mut self) -> String {
        self.recovery.pop().expect("a recovery code left")
    }

    fn npm(&self, args: &[&str]) -> airlock_testkit::CmdOutput {
        self.npm.npm(args)
    }
}

/// The base32 secret of an `otpauth://` URI.
fn secret_of(uri: &str) -> TotpSecret {
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_else(|| panic!("no secret in {uri}"));
    TotpSecret::from_base32(secret).unwrap_or_else(|| panic!("bad secret in {uri}"))
}

/// `PUT /-/airlock/v1/policy/{subject}` with one of `who`'s recovery codes; panics unless 200.
fn set_policy(server: &Server, who: &mut User, subject: &str, policy: Value) {
    let code = who.recovery_code();
    server
        .http(
            "PUT",
            &format!("/-/airlock/v1/policy/{}", escaped_name(subject)),
        )
        .bearer(&who.token)
        .header("npm-otp", &code)
        .json(&policy)
        .send()
        .assert_status(200);
}

/// `airlock policy ARGS… --registry URL` in `who`'s npm environment (so the CLI finds their
/// token in the npm user config, as it does for a person).
fn airlock_policy(server: &Server, who: &User, args: &[&str]) -> std::process::Output {
    let mut cmd = who.npm.command(bin(), &who.npm.work_dir());
    cmd.arg("policy")
        .args(args)
        .args(["--registry", server.url()]);
    cmd.output().expect("running airlock policy")
}

/// `npm publish` of `name@1.0.0` by `owner`, then `npm owner add` for each of `others`.
fn package(name: &str, owner: &User, others: &[&User]) -> PackageDir {
    let pkg = PackageDir::new(name, "1.0.0");
    owner.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    for other in others {
        owner.npm(&["owner", "add", &other.name, name]).assert_ok();
    }
    pkg
}

/// `npm stage publish` in `pkg`; returns the stage id npm printed.
fn stage_publish(who: &User, pkg: &PackageDir) -> String {
    let out = who.npm.npm_in(pkg.path(), &["stage", "publish"]);
    out.assert_ok();
    let line = format!("+ {}@{} (staged with id ", pkg.name(), pkg.version());
    let id = out
        .stdout
        .split(&line)
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no stage id printed: {out:?}"))
        .to_owned();
    assert!(is_uuid(&id), "npm accepts only UUID stage ids: {id:?}");
    id
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `npm stage approve ID --otp CODE` with a fresh code; returns the output (not asserted).
fn approve(who: &User, id: &str) -> airlock_testkit::CmdOutput {
    let code = who.code();
    who.npm(&["stage", "approve", id, "--otp", &code])
}

#[track_caller]
fn assert_approved(out: &airlock_testkit::CmdOutput, id: &str) {
    out.assert_ok();
    out.assert_contains(&format!(
        "Staged package {id} approved and published successfully."
    ));
}

/// `GET /-/stage/{id}` as `who`.
fn stage_item(server: &Server, who: &User, id: &str) -> Value {
    let r = server
        .http("GET", &format!("/-/stage/{id}"))
        .bearer(&who.token)
        .send();
    r.assert_status(200);
    r.json()
}

/// Nobody sees `name@version`: not in the packument, tarball 404, and npm cannot find it.
#[track_caller]
fn assert_invisible(server: &Server, viewer: &User, name: &str, version: &str) {
    let r = packument(server, name, None);
    if r.status == 200 {
        let doc = r.json();
        assert!(doc["versions"].get(version).is_none(), "{doc:#}");
        assert!(doc["time"].get(version).is_none(), "{doc:#}");
        assert!(
            doc["dist-tags"]
                .as_object()
                .is_some_and(|t| t.values().all(|v| v != version)),
            "{doc:#}"
        );
    } else {
        r.assert_status(404);
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    for token in [None, Some(viewer.token.as_str())] {
        server
            .http("GET", &format!("/{name}/-/{base}-{version}.tgz"))
            .maybe_bearer(token)
            .send()
            .assert_status(404);
    }
    let spec = format!("{name}@{version}");
    let out = viewer.npm(&["view", &spec, "version"]);
    assert!(
        out.stdout.trim().is_empty(),
        "npm view must not find {spec}: {out:?}"
    );
}

/// `name@version` is public: listed with `time`, and its tarball verifies.
#[track_caller]
fn assert_live(server: &Server, name: &str, version: &str) -> Value {
    let doc = packument_json(server, name);
    assert!(doc["versions"].get(version).is_some(), "{doc:#}");
    assert!(doc["time"][version].as_str().is_some_and(is_timestamp));
    download_verified(server, name, version);
    doc
}

/// An ISO timestamp from the registry.
#[track_caller]
fn iso(v: &Value) -> time::OffsetDateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Polls until `name@version` is in the packument (or panics after `timeout`).
fn wait_until_live(server: &Server, name: &str, version: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = packument(server, name, None);
        if r.status == 200 && r.json()["versions"].get(version).is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}@{version} did not go live within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Installs `spec` into a fresh project of a fresh npm environment; returns the project dir's
/// installed `index.js`.
fn install_fresh(server: &Server, spec: &str, name: &str) -> String {
    let npm = NpmEnv::new(server);
    let project = npm.project("consumer");
    npm.npm_in(&project, &["install", spec]).assert_ok();
    fs::read_to_string(project.join("node_modules").join(name).join("index.js"))
        .expect("installed index.js")
}

/// The files of a `.tgz`, by path.
fn tgz_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    archive
        .entries()
        .expect("tar entries")
        .map(|e| {
            let mut e = e.expect("tar entry");
            let path = e.path().expect("entry path").display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("entry data");
            (path, data)
        })
        .collect()
}

#[test]
fn a_token_stages_a_maintainer_approves_with_otp_and_npm_installs_it() {
    let server = server();
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let mut pkg = package("gate-demo", &alice, &[]);
    set_policy(
        &server,
        &mut alice,
        "gate-demo",
        json!({ "publish": "staged" }),
    );

    pkg.set_version("1.1.0");
    // A plain automation token stages: no second factor needed.
    let ci = NpmEnv::new(&server).with_token(&server.create_token("alice"));
    let staged = ci.npm_in(pkg.path(), &["stage", "publish"]);
    staged.assert_ok();
    let id = staged
        .stdout
        .split("(staged with id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{staged:?}"))
        .to_owned();
    assert!(is_uuid(&id), "{id}");
    staged.assert_contains(&format!("+ gate-demo@1.1.0 (staged with id {id})"));
    assert_invisible(&server, &alice, "gate-demo", "1.1.0");

    let list = alice.npm(&["stage", "list", "gate-demo"]);
    list.assert_ok();
    for line in [
        format!("id: {id}"),
        "package name: gate-demo".to_owned(),
        "version: 1.1.0".to_owned(),
        "tag: latest".to_owned(),
        "staged by: alice (user)".to_owned(),
        "state: staged".to_owned(),
        "approvals: 0 of 1".to_owned(),
    ] {
        list.assert_contains(&line);
    }
    let none = alice.npm(&["stage", "list", "something-else"]);
    none.assert_ok();
    none.assert_contains("No staged versions of package name \"something-else\".");

    let view = alice.npm(&["stage", "view", &id]);
    view.assert_ok();
    view.assert_contains(&format!("id: {id}"));
    view.assert_contains("package name: gate-demo");
    view.assert_contains("date staged: ");
    let json_view = alice.npm(&["stage", "view", &id, "--json"]);
    json_view.assert_ok();
    let item: Value = serde_json::from_str(&json_view.stdout).expect("stage view --json");
    assert_eq!(item["id"], id);
    assert_eq!(item["version"], "1.1.0");
    assert_eq!(item["actor"], "alice");
    assert_eq!(item["actorType"], "user");

    // What the approver gets to inspect is what was staged.
    let download = alice.npm(&["stage", "download", &id]);
    download.assert_ok();
    let file = alice
        .npm
        .work_dir()
        .join(format!("gate-demo-1.1.0-{id}.tgz"));
    let files = tgz_files(&file);
    let index = files
        .iter()
        .find(|(p, _)| p == "package/index.js")
        .unwrap_or_else(|| panic!("no index.js in {:?}", files.iter().map(|f| &f.0)));
    assert_eq!(index.1, index_js("gate-demo", "1.1.0").as_bytes());
    assert_eq!(
        airlock_testkit::sha1_hex(&fs::read(&file).unwrap()),
        item["shasum"].as_str().unwrap()
    );

    // Without a TTY npm cannot prompt for the code.
    let no_otp = alice.npm(&["stage", "approve", &id]);
    no_otp.assert_failed();
    no_otp.assert_contains("EOTP");
    assert_invisible(&server, &alice, "gate-demo", "1.1.0");

    let out = approve(&alice, &id);
    assert_approved(&out, &id);
    let doc = assert_live(&server, "gate-demo", "1.1.0");
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert!(
        doc["time"]["1.1.0"].as_str().unwrap() > item["createdAt"].as_str().unwrap(),
        "time[1.1.0] is the go-live moment, after staging: {doc:#}"
    );
    let view = alice.npm(&["view", "gate-demo", "version"]);
    assert_eq!(view.stdout.trim(), "1.1.0", "{view:?}");
    assert_eq!(
        install_fresh(&server, "gate-demo", "gate-demo"),
        index_js("gate-demo", "1.1.0")
    );
    let state = alice.npm(&["stage", "view", &id]);
    state.assert_contains("state: live");
}

#[test]
fn two_maintainers_must_approve_and_the_stager_cannot() {
    let server = server();
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let bob = User::enrolled(&server, "bob", "auth-only");
    let carol = User::enrolled(&server, "carol", "auth-only");
    let mut pkg = package("gate-dual", &alice, &[&bob, &carol]);
    let owners = alice.npm(&["owner", "ls", "gate-dual"]);
    owners.assert_contains("bob <bob@example.com>");
    owners.assert_contains("carol <carol@example.com>");
    set_policy(
        &server,
        &mut alice,
        "gate-dual",
        json!({ "publish": "staged", "approvals": 2 }),
    );

    pkg.set_version("2.0.0");
    let id = stage_publish(&alice, &pkg);
    alice
        .npm(&["stage", "view", &id])
        .assert_contains("approvals: 0 of 2");

    let own = approve(&alice, &id);
    own.assert_failed();
    own.assert_contains(
        "you staged this release; with 2 required approvals, two other maintainers must approve it",
    );

    let first = approve(&bob, &id);
    assert_approved(&first, &id);
    // npm says "approved and published" whatever happened; the notice tells the truth.
    first.assert_contains(
        "npm notice gate-dual@2.0.0: approvals 1 of 2; it stays staged until the rest approve",
    );
    let view = alice.npm(&["stage", "view", &id]);
    view.assert_contains("state: staged");
    view.assert_contains("approvals: 1 of 2");
    view.assert_contains("approvedBy: bob (one-time password)");
    assert_invisible(&server, &alice, "gate-dual", "2.0.0");

    let second = approve(&carol, &id);
    assert_approved(&second, &id);
    second.assert_contains("npm notice gate-dual@2.0.0 is live");
    assert_live(&server, "gate-dual", "2.0.0");
    assert_eq!(
        install_fresh(&server, "gate-dual@2.0.0", "gate-dual"),
        index_js("gate-dual", "2.0.0")
    );
    let events = server
        .http("GET", &format!("/-/stage/{id}/events"))
        .bearer(&bob.token)
        .send();
    events.assert_status(200);
    let kinds: Vec<(String, String)> = events.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("staged", "alice"),
            ("approve", "bob"),
            ("approve", "carol")
        ]
        .map(|(k, a)| (k.to_owned(), a.to_owned()))
    );
}

#[test]
fn npm_stage_reject_kills_the_release_and_keeps_the_number() {
    let server = server();
    let alice = User::enrolled(&server, "alice", "auth-only");
    let bob = User::enrolled(&server, "bob", "auth-only");
    let mut pkg = package("gate-reject", &alice, &[&bob]);
    pkg.set_version("1.1.0");
    let id = stage_publish(&alice, &pkg);

    let code = bob.code();
    let out = bob.npm(&["stage", "reject", &id, "--otp", &code]);
    out.assert_ok();
    out.assert_contains(&format!("Staged package {id} has been rejected."));
    let view = alice.npm(&["stage", "view", &id]);
    view.assert_contains("state: rejected");
    view.assert_contains("rejectedBy: bob");
    assert_invisible(&server, &alice, "gate-reject", "1.1.0");

    let late = approve(&alice, &id);
    late.assert_failed();
    late.assert_contains("rejected");
    assert_invisible(&server, &alice, "gate-reject", "1.1.0");

    // The number stays taken, for staging and publishing alike.
    let again = alice.npm.npm_in(pkg.path(), &["stage", "publish"]);
    again.assert_failed();
    again.assert_contains("403");
    let publish = alice.npm.npm_in(pkg.path(), &["publish"]);
    publish.assert_failed();
    publish.assert_contains("You cannot publish over the previously published versions: 1.1.0.");
    assert_invisible(&server, &alice, "gate-reject", "1.1.0");
}

/// The cooling-off of the release that gets vetoed: long enough for a few npm commands on a
/// loaded machine.
const VETO_WINDOW: Duration = Duration::from_secs(15);

#[test]
fn cooling_off_hides_the_release_a_veto_kills_it_and_otherwise_it_goes_live_alone() {
    let server = server_with(ServerOptions::new().config("gate_tick_ms = 100\n"));
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let bob = User::enrolled(&server, "bob", "auth-only");
    let carol = User::enrolled(&server, "carol", "auth-only");
    let mut pkg = package("gate-cool", &alice, &[&bob, &carol]);

    // The policy in force when a release is staged is the one it is held to. Set with the
    // admin CLI's client of the policy API, as the README shows.
    let code = alice.recovery_code();
    let set = airlock_policy(
        &server,
        &alice,
        &[
            "set",
            "gate-cool",
            "--publish",
            "staged",
            "--cooling-off",
            &format!("{}s", VETO_WINDOW.as_secs()),
            "--otp",
            &code,
        ],
    );
    assert!(set.status.success(), "{set:?}");
    pkg.set_version("1.1.0");
    let vetoed = stage_publish(&alice, &pkg);
    let code = alice.recovery_code();
    let set = airlock_policy(
        &server,
        &alice,
        &["set", "gate-cool", "--cooling-off", "2", "--otp", &code],
    );
    assert!(set.status.success(), "{set:?}");
    let show = airlock_policy(&server, &alice, &["show", "gate-cool"]);
    assert!(show.status.success(), "{show:?}");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains(r#"publish="staged""#) && shown.contains("cooling_off_seconds=2"),
        "{shown}"
    );
    pkg.set_version("1.2.0");
    let alone = stage_publish(&alice, &pkg);

    // 1.2.0 (2 s): approved, then left alone.
    assert_approved(&approve(&carol, &alone), &alone);

    // 1.1.0 (VETO_WINDOW): approved, invisible while it cools off, vetoed.
    assert_approved(&approve(&bob, &vetoed), &vetoed);
    let approved_at = Instant::now();
    let view = alice.npm(&["stage", "view", &vetoed]);
    view.assert_contains("state: cooling off");
    view.assert_contains("coolingOffUntil: ");
    assert_invisible(&server, &alice, "gate-cool", "1.1.0");
    // Any maintainer may veto during the cooling-off; the stager here.
    let code = alice.code();
    let veto = alice.npm(&["stage", "reject", &vetoed, "--otp", &code]);
    veto.assert_ok();
    assert!(
        approved_at.elapsed() < VETO_WINDOW,
        "the veto must land inside the window; the machine is too slow for this test"
    );

    // The other one goes live by itself, with nobody asking, once its window is over.
    wait_until_live(&server, "gate-cool", "1.2.0", Duration::from_secs(15));
    let doc = assert_live(&server, "gate-cool", "1.2.0");
    assert_eq!(doc["dist-tags"]["latest"], "1.2.0");
    let item = stage_item(&server, &alice, &alone);
    assert_eq!(item["state"], "live");
    assert_eq!(doc["time"]["1.2.0"], item["liveAt"]);
    let events = server
        .http("GET", &format!("/-/stage/{alone}/events"))
        .bearer(&alice.token)
        .send()
        .json();
    let approved = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "approve")
        .unwrap_or_else(|| panic!("no approve event: {events:#}"))["at"]
        .clone();
    let waited = iso(&item["liveAt"]) - iso(&approved);
    assert!(
        waited >= time::Duration::seconds(2),
        "live {waited} after the approval, before its 2 s cooling-off ended: {events:#}"
    );

    // Well past the vetoed one's window it is still nowhere.
    std::thread::sleep(VETO_WINDOW.saturating_sub(approved_at.elapsed()) + Duration::from_secs(1));
    assert_eq!(stage_item(&server, &alice, &vetoed)["state"], "rejected");
    assert_invisible(&server, &alice, "gate-cool", "1.1.0");
    assert_eq!(
        install_fresh(&server, "gate-cool", "gate-cool"),
        index_js("gate-cool", "1.2.0")
    );
}

#[test]
fn a_cooling_off_that_ends_while_the_server_is_down_promotes_after_restart() {
    let mut server = server_with(ServerOptions::new().config("gate_tick_ms = 100\n"));
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let mut pkg = package("gate-restart", &alice, &[]);
    set_policy(
        &server,
        &mut alice,
        "gate-restart",
        json!({ "publish": "staged", "cooling_off_seconds": 2 }),
    );
    pkg.set_version("1.1.0");
    let id = stage_publish(&alice, &pkg);
    assert_approved(&approve(&alice, &id), &id);
    server.terminate().expect("SIGTERM");
    std::thread::sleep(Duration::from_secs(3));
    server.restart().expect("restart");
    wait_until_live(&server, "gate-restart", "1.1.0", Duration::from_secs(10));
    let item = server
        .http("GET", &format!("/-/stage/{id}"))
        .bearer(&alice.token)
        .send()
        .json();
    assert_eq!(item["state"], "live");
}

#[test]
fn npm_publish_under_a_staged_policy_says_to_use_npm_stage_publish() {
    let server = server();
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let mut pkg = package("gate-pub", &alice, &[]);
    set_policy(
        &server,
        &mut alice,
        "gate-pub",
        json!({ "publish": "staged", "approvals": 1 }),
    );
    pkg.set_version("1.1.0");
    let out = alice.npm.npm_in(pkg.path(), &["publish"]);
    out.assert_failed();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("403 Forbidden"))
        .unwrap_or_else(|| panic!("no 403 line: {out:?}"))
        .replace(server.url(), "http://[registry]/");
    insta::assert_snapshot!(line, @"npm error 403 403 Forbidden - PUT http://[registry]/gate-pub - `gate-pub` only accepts staged releases: run `npm stage publish`, then have a maintainer approve it with `npm stage approve`");
    assert_eq!(versions_of(&packument_json(&server, "gate-pub")), ["1.0.0"]);
    // Doing what it says works.
    let id = stage_publish(&alice, &pkg);
    assert_approved(&approve(&alice, &id), &id);
    assert_live(&server, "gate-pub", "1.1.0");
}

#[test]
fn an_otp_code_cannot_be_replayed() {
    let server = server();
    let alice = User::enrolled(&server, "alice", "auth-only");
    let bob = User::enrolled(&server, "bob", "auth-only");
    let mut pkg = package("gate-replay", &alice, &[&bob]);
    pkg.set_version("1.1.0");
    let first = stage_publish(&alice, &pkg);
    pkg.set_version("1.2.0");
    let second = stage_publish(&alice, &pkg);

    let code = bob.code();
    assert_approved(
        &bob.npm(&["stage", "approve", &first, "--otp", &code]),
        &first,
    );
    let replay = bob.npm(&["stage", "approve", &second, "--otp", &code]);
    replay.assert_failed();
    replay.assert_contains("that authenticator code was already used");
    let older = bob.auth.as_ref().unwrap().older_code();
    let replay = bob.npm(&["stage", "reject", &second, "--otp", &older]);
    replay.assert_failed();
    replay.assert_contains("401");
    assert_eq!(stage_item(&server, &bob, &second)["state"], "staged");
    assert_invisible(&server, &bob, "gate-replay", "1.2.0");
    assert_live(&server, "gate-replay", "1.1.0");
}

/// Answers a web-OTP challenge npm shows on a TTY: finds the `authUrl` it printed and submits
/// `code` on that page; npm then polls `doneUrl` and retries with the one-time token.
fn answer_web_otp(server: &Server, run: &mut airlock_testkit::Running, code: &str) {
    let prefix = format!("{}-/web/otp/", server.url());
    let text = run
        .wait_for_text(&prefix, WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let url = word_starting_with(&text, &prefix).expect("authUrl");
    let path = path_of(server, &url);
    server
        .http("POST", &path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("otp={code}"))
        .send()
        .assert_status(200);
}

#[test]
fn npm_profile_enable_2fa_on_a_tty_then_approve_and_disable_through_web_otp() {
    let server = server();
    let alice = User::new(&server, "alice");
    let mut pkg = package("gate-tty", &alice, &[]);

    let mut run = alice.npm.spawn_npm_tty(
        &alice.npm.work_dir(),
        &["profile", "enable-2fa", "auth-and-writes"],
    );
    run.wait_for_text("npm password:", WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(format!("{}\r", password_of("alice")).as_bytes());
    let text = run
        .wait_for_text("And an OTP code from your authenticator:", WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let secret = text
        .split("Or enter code:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no secret printed: {text}"));
    let secret = TotpSecret::from_base32(secret).unwrap_or_else(|| panic!("bad secret {secret}"));
    let step = unix_now().as_secs() / TOTP_STEP_SECS;
    let auth = Authenticator::new(secret.clone(), step);
    run.write_stdin(format!("{}\r", secret.code_at_step(step)).as_bytes());
    let out = run.wait_timeout(WAIT);
    out.assert_ok();
    out.assert_contains("2FA successfully enabled.");
    let recovery: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .collect();
    assert_eq!(recovery.len(), 10, "ten recovery codes printed: {out:?}");

    let profile = alice.npm(&["profile", "get", "--json"]);
    profile.assert_ok();
    let profile: Value = serde_json::from_str(&profile.stdout).expect("profile JSON");
    assert_eq!(
        profile["tfa"],
        json!({ "pending": false, "mode": "auth-and-writes" })
    );

    // auth-and-writes: a plain publish now needs a code (and npm cannot prompt without a TTY)…
    pkg.set_version("1.0.1");
    let no_code = alice.npm.npm_in(pkg.path(), &["publish"]);
    no_code.assert_failed();
    no_code.assert_contains("EOTP");
    assert_eq!(versions_of(&packument_json(&server, "gate-tty")), ["1.0.0"]);
    // …but staging never does: the second factor is deferred to the approval.
    pkg.set_version("1.1.0");
    let staged = alice.npm.npm_in(pkg.path(), &["stage", "publish"]);
    staged.assert_ok();
    let id = staged
        .stdout
        .split("(staged with id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{staged:?}"))
        .to_owned();

    // On a TTY npm follows the web-OTP challenge: the code goes into the page, npm retries.
    let mut run = alice
        .npm
        .spawn_npm_tty(&alice.npm.work_dir(), &["stage", "approve", &id]);
    answer_web_otp(&server, &mut run, &auth.code());
    let out = run.wait_timeout(WAIT);
    out.assert_ok();
    out.assert_contains("approved and published successfully");
    assert_live(&server, "gate-tty", "1.1.0");
    assert_eq!(
        stage_item(&server, &alice, &id)["approvedBy"],
        "alice (one-time password on the web)"
    );

    let mut run = alice
        .npm
        .spawn_npm_tty(&alice.npm.work_dir(), &["profile", "disable-2fa"]);
    run.wait_for_text("npm password:", WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(format!("{}\r", password_of("alice")).as_bytes());
    // The recovery codes npm printed work too (and spare a wait for the next TOTP step).
    answer_web_otp(&server, &mut run, recovery[0]);
    let out = run.wait_timeout(WAIT);
    out.assert_ok();
    out.assert_contains("Two factor authentication disabled.");
    pkg.set_version("1.2.0");
    alice.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
}

/// A release that went live through the gate carries npm's staged-publish evidence,
/// `_npmUser.approver`, which pnpm's `trustPolicy: no-downgrade` ranks above any other. Once
/// one version went live with a maintainer's approval, pnpm will not install a later version
/// published without one (a relaxed policy, or a stolen token on a registry that allows
/// direct publishing): the oracle for the evidence is pnpm itself.
#[test]
fn pnpm_trust_policy_refuses_a_direct_publish_after_an_approved_release() {
    let server = server();
    let mut alice = User::enrolled(&server, "alice", "auth-only");
    let mut pkg = package("approved-lib", &alice, &[]);
    set_policy(
        &server,
        &mut alice,
        "approved-lib",
        json!({ "publish": "staged" }),
    );
    pkg.set_version("1.1.0");
    let ci = User::new(&server, "ci-bot");
    alice
        .npm(&["owner", "add", "ci-bot", "approved-lib"])
        .assert_ok();
    let id = stage_publish(&ci, &pkg);
    assert_approved(&approve(&alice, &id), &id);
    let doc = assert_live(&server, "approved-lib", "1.1.0");
    assert_eq!(
        doc["versions"]["1.1.0"]["_npmUser"],
        json!({
            "name": "ci-bot",
            "email": "ci-bot@example.com",
            "approver": { "name": "alice", "email": "alice@example.com" }
        }),
        "who staged it and who approved it"
    );
    assert_eq!(
        doc["versions"]["1.0.0"]["_npmUser"],
        json!({ "name": "alice", "email": "alice@example.com" }),
        "a direct publish has no approver"
    );

    // The gate is relaxed and 1.2.0 is published directly, with a plain token.
    set_policy(
        &server,
        &mut alice,
        "approved-lib",
        json!({ "publish": "direct" }),
    );
    pkg.set_version("1.2.0");
    ci.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let doc = assert_live(&server, "approved-lib", "1.2.0");
    assert!(
        doc["versions"]["1.2.0"]["_npmUser"]
            .get("approver")
            .is_none(),
        "{doc:#}"
    );

    let consumer = |dir: &str, settings: &str| {
        let project = alice.npm.project(dir);
        let pj = json!({"name": dir, "version": "1.0.0", "private": true, "dependencies": {"approved-lib": "^1.0.0"}});
        fs::write(project.join("package.json"), pj.to_string()).unwrap();
        fs::write(project.join("pnpm-workspace.yaml"), settings).unwrap();
        let out = alice.npm.pnpm(&project, &["install"]);
        let installed = fs::read_to_string(project.join("node_modules/approved-lib/package.json"))
            .ok()
            .and_then(|pj| serde_json::from_str::<Value>(&pj).ok())
            .and_then(|pj| pj["version"].as_str().map(str::to_owned));
        (out, installed)
    };
    // Without a trust policy pnpm takes the newest match.
    let (out, installed) = consumer("pnpm-plain", "");
    out.assert_ok();
    assert_eq!(installed.as_deref(), Some("1.2.0"), "{out:?}");
    // With one, 1.2.0 is a downgrade from the approved 1.1.0.
    let (out, installed) = consumer("pnpm-no-downgrade", "trustPolicy: no-downgrade\n");
    out.assert_ok();
    assert_eq!(installed.as_deref(), Some("1.1.0"), "{out:?}");
}
