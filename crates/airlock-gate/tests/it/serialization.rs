//! The JSON the registry persists: states, events and policies.

use airlock_gate::{
    Actor, GateEvent, PolicyLayers, PolicyPatch, PublishMode, ReleasePolicy, ReleaseState,
    RiskSignal, SecondFactor, TarballSha512, escalate, replay,
};
use time::Duration;
use time::macros::datetime;

/// A two-approver release under an escalated policy, approved and cooling off.
fn cooling_off_log() -> Vec<GateEvent> {
    let layers = PolicyLayers {
        registry: Some(PolicyPatch {
            cooling_off: Some(Duration::hours(24)),
            ..PolicyPatch::default()
        }),
        scope: None,
        package: Some(PolicyPatch {
            publish: Some(PublishMode::Staged),
            approvals: Some(2),
            expedite: Some(true),
            ..PolicyPatch::default()
        }),
    };
    let policy = escalate(
        &layers.effective().expect("a valid policy"),
        &[RiskSignal::NewInstallScripts],
    );
    vec![
        GateEvent::Stage {
            stager: Actor::ci("ci-github", "github.com/acme/widget release.yml"),
            tarball_sha512: TarballSha512::from_bytes([0x5a; 64]),
            policy,
            at: datetime!(2026-05-01 09:00 UTC),
        },
        GateEvent::Approve {
            approver: Actor::user("u-alice", "alice"),
            factor: SecondFactor::Totp,
            at: datetime!(2026-05-01 09:30 UTC),
        },
        GateEvent::Approve {
            approver: Actor::user("u-bob", "bob"),
            factor: SecondFactor::WebAuthn,
            at: datetime!(2026-05-01 10:15:30 UTC),
        },
        GateEvent::Approve {
            approver: Actor::user("u-carol", "carol"),
            factor: SecondFactor::WebOtp,
            at: datetime!(2026-05-01 11:00 UTC),
        },
    ]
}

#[test]
fn a_cooling_off_release_serializes_as_it_is_stored() {
    let log = cooling_off_log();
    let state = replay(&log).expect("the log replays");
    assert!(matches!(state, ReleaseState::CoolingOff { .. }));
    insta::assert_json_snapshot!(serde_json::json!({ "log": log, "state": state }));
}

#[test]
fn states_and_events_survive_a_round_trip() {
    let log = cooling_off_log();
    let state = replay(&log).expect("the log replays");
    let json = serde_json::to_string(&state).expect("serializes");
    assert_eq!(
        serde_json::from_str::<ReleaseState>(&json).expect("deserializes"),
        state
    );
    let json = serde_json::to_string(&log).expect("serializes");
    assert_eq!(
        serde_json::from_str::<Vec<GateEvent>>(&json).expect("deserializes"),
        log
    );
}

#[test]
fn a_stored_policy_without_escalation_reads_back_as_configured() {
    let json = r#"{"publish":"staged","approvals":3,"cooling_off_seconds":0,"expedite":false,"stage_ttl_seconds":3600}"#;
    let policy: ReleasePolicy = serde_json::from_str(json).expect("deserializes");
    assert_eq!(policy.approvals, 3);
    assert_eq!(policy.stage_ttl, Duration::hours(1));
    assert!(policy.escalated_by.is_empty());
    assert_eq!(serde_json::to_string(&policy).expect("serializes"), json);
}

#[test]
fn a_malformed_digest_is_refused_when_loading() {
    let json = r#"{"event":"expire","at":"2026-05-01T09:00:00Z"}"#;
    assert!(serde_json::from_str::<GateEvent>(json).is_ok());
    let json = r#"{"event":"promote","at":"2026-05-01T09:00:00Z","tarball_sha512":"abc"}"#;
    let error = serde_json::from_str::<GateEvent>(json).expect_err("a short digest");
    assert!(
        error
            .to_string()
            .contains("a tarball sha512 is 128 lowercase hex digits, got 3 characters"),
        "{error}"
    );
}
