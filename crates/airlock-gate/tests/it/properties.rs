//! Property tests: random event sequences from a small pool of actors, in random orders and at
//! random times, checked against the gate's invariants.
//!
//! Every invariant is checked against the log of accepted events, not only against what the
//! state says about itself, so a state that misreports its approvals cannot hide a violation.

use std::collections::{BTreeMap, BTreeSet};

use airlock_gate::{
    Actor, ActorKind, Effect, GateEvent, GateRefusal, PublishMode, ReleasePolicy, ReleaseState,
    RiskSignal, SecondFactor, StateKind, TarballSha512, apply, due, escalate, replay,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);

/// Four people, two CI identities, and a user-labelled actor that shares the first CI
/// identity's id (an approval event that mislabels a CI principal).
fn actors() -> Vec<Actor> {
    vec![
        Actor::user("u-alice", "alice"),
        Actor::user("u-bob", "bob"),
        Actor::user("u-carol", "carol"),
        Actor::user("u-dave", "dave"),
        Actor::ci("ci-github", "github.com/acme/widget release.yml"),
        Actor::ci("ci-gitlab", "gitlab.com/acme/widget"),
        Actor::user("ci-github", "impostor"),
    ]
}

fn tarballs() -> [TarballSha512; 2] {
    [
        TarballSha512::from_bytes([0xaa; 64]),
        TarballSha512::from_bytes([0xbb; 64]),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Stage {
        stager: usize,
        tarball: usize,
        policy: ReleasePolicy,
    },
    Approve {
        approver: usize,
        factor: SecondFactor,
    },
    Reject {
        actor: usize,
    },
    Expire,
    Promote {
        tarball: usize,
    },
    /// Whatever [`due`] says a background job should apply now, if anything.
    Due,
}

/// How the clock moves before a step.
#[derive(Clone, Debug)]
enum Advance {
    /// By this many minutes; sometimes negative, to try events out of order.
    Minutes(i64),
    /// To this many seconds around a staged release's expiry, where off-by-one mistakes would
    /// hide; no move in other states.
    NearExpiry(i64),
    /// To this many seconds around the end of a release's cooling-off; no move in other states.
    NearCoolingOffEnd(i64),
}

#[derive(Clone, Debug)]
struct Step {
    advance: Advance,
    op: Op,
}

fn policy() -> impl Strategy<Value = ReleasePolicy> {
    (
        prop_oneof![3 => Just(1u8), 3 => Just(2u8), 2 => Just(3u8), 1 => Just(4u8)],
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::minutes(30)),
            Just(Duration::days(1)),
            Just(Duration::days(3)),
        ],
        any::<bool>(),
        prop_oneof![
            1 => Just(Duration::hours(1)),
            1 => Just(Duration::days(1)),
            3 => Just(Duration::days(7)),
        ],
        any::<bool>(),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::sample::subsequence(RiskSignal::ALL.to_vec(), 1..=2),
        ],
    )
        .prop_map(
            |(approvals, cooling_off, expedite, stage_ttl, staged, signals)| {
                let configured = ReleasePolicy {
                    publish: if staged {
                        PublishMode::Staged
                    } else {
                        PublishMode::Direct
                    },
                    approvals,
                    cooling_off,
                    expedite,
                    stage_ttl,
                    ..ReleasePolicy::default()
                };
                escalate(&configured, &signals)
            },
        )
}

fn factor() -> impl Strategy<Value = SecondFactor> {
    prop_oneof![
        Just(SecondFactor::Totp),
        Just(SecondFactor::WebAuthn),
        Just(SecondFactor::RecoveryCode),
        Just(SecondFactor::WebOtp),
    ]
}

fn stage_op() -> impl Strategy<Value = Op> {
    (0..actors().len(), 0..2usize, policy()).prop_map(|(stager, tarball, policy)| Op::Stage {
        stager,
        tarball,
        policy,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let actor = 0..actors().len();
    prop_oneof![
        1 => stage_op(),
        12 => (actor.clone(), factor()).prop_map(|(approver, factor)| Op::Approve { approver, factor }),
        1 => actor.prop_map(|actor| Op::Reject { actor }),
        1 => Just(Op::Expire),
        3 => (0..2usize).prop_map(|tarball| Op::Promote { tarball }),
        3 => Just(Op::Due),
    ]
}

fn advance() -> impl Strategy<Value = Advance> {
    prop_oneof![
        10 => (0i64..=30).prop_map(Advance::Minutes),
        2 => (0i64..=(2 * 24 * 60)).prop_map(Advance::Minutes),
        1 => (-30i64..0).prop_map(Advance::Minutes),
        1 => (-120i64..=120).prop_map(Advance::NearExpiry),
        1 => (-120i64..=120).prop_map(Advance::NearCoolingOffEnd),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let actor = 0..actors().len();
    // Probes: an event that depends on a deadline, tried within seconds of it.
    let expiry_probe = (
        (-3i64..=3).prop_map(Advance::NearExpiry),
        prop_oneof![
            Just(Op::Expire),
            Just(Op::Due),
            (actor.clone(), factor())
                .prop_map(|(approver, factor)| Op::Approve { approver, factor }),
        ],
    );
    let cooling_off_probe = (
        (-3i64..=3).prop_map(Advance::NearCoolingOffEnd),
        prop_oneof![
            2 => (0..2usize).prop_map(|tarball| Op::Promote { tarball }),
            1 => Just(Op::Due),
            2 => (actor, factor()).prop_map(|(approver, factor)| Op::Approve { approver, factor }),
        ],
    );
    prop_oneof![
        8 => (advance(), op()).prop_map(|(advance, op)| Step { advance, op }),
        1 => expiry_probe.prop_map(|(advance, op)| Step { advance, op }),
        2 => cooling_off_probe.prop_map(|(advance, op)| Step { advance, op }),
    ]
}

/// Most sequences start with a stage; some do not, to exercise a version with nothing staged.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop_oneof![9 => stage_op().prop_map(Some), 1 => Just(None)],
        proptest::collection::vec(step(), 0..40),
    )
        .prop_map(|(first, mut rest)| {
            if let Some(op) = first {
                rest.insert(
                    0,
                    Step {
                        advance: Advance::Minutes(0),
                        op,
                    },
                );
            }
            rest
        })
}

fn event_for(op: &Op, state: Option<&ReleaseState>, now: OffsetDateTime) -> Option<GateEvent> {
    let actors = actors();
    let tarballs = tarballs();
    Some(match op {
        Op::Stage {
            stager,
            tarball,
            policy,
        } => GateEvent::Stage {
            stager: actors[*stager].clone(),
            tarball_sha512: tarballs[*tarball],
            policy: policy.clone(),
            at: now,
        },
        Op::Approve { approver, factor } => GateEvent::Approve {
            approver: actors[*approver].clone(),
            factor: *factor,
            at: now,
        },
        Op::Reject { actor } => GateEvent::Reject {
            actor: actors[*actor].clone(),
            reason: None,
            at: now,
        },
        Op::Expire => GateEvent::Expire { at: now },
        Op::Promote { tarball } => GateEvent::Promote {
            at: now,
            tarball_sha512: tarballs[*tarball],
        },
        Op::Due => return state.and_then(|state| due(state, now)),
    })
}

/// One event of every kind from every actor and with every tarball, at `now`.
fn every_event(now: OffsetDateTime) -> Vec<GateEvent> {
    let mut events = vec![GateEvent::Expire { at: now }];
    for tarball in tarballs() {
        events.push(GateEvent::Promote {
            at: now,
            tarball_sha512: tarball,
        });
        for actor in actors() {
            events.push(GateEvent::Stage {
                stager: actor.clone(),
                tarball_sha512: tarball,
                policy: ReleasePolicy::default(),
                at: now,
            });
        }
    }
    for actor in actors() {
        events.push(GateEvent::Approve {
            approver: actor.clone(),
            factor: SecondFactor::Totp,
            at: now,
        });
        events.push(GateEvent::Reject {
            actor,
            reason: None,
            at: now,
        });
    }
    events
}

/// What a run of the gate over one sequence ended with.
struct Run {
    state: Option<ReleaseState>,
    log: Vec<GateEvent>,
}

/// Applies `steps` one by one, checking every invariant after every step.
fn run(steps: &[Step]) -> Result<Run, TestCaseError> {
    let mut now = T0;
    let mut state: Option<ReleaseState> = None;
    let mut log: Vec<GateEvent> = Vec::new();
    for step in steps {
        now = match (step.advance.clone(), &state) {
            (Advance::Minutes(minutes), _) => now + Duration::minutes(minutes),
            (Advance::NearExpiry(seconds), Some(ReleaseState::Staged { release, .. })) => {
                release.expires_at + Duration::seconds(seconds)
            }
            (Advance::NearCoolingOffEnd(seconds), Some(ReleaseState::CoolingOff { until, .. })) => {
                *until + Duration::seconds(seconds)
            }
            (Advance::NearExpiry(_) | Advance::NearCoolingOffEnd(_), _) => now,
        };
        let Some(event) = event_for(&step.op, state.as_ref(), now) else {
            continue;
        };
        match apply(state.as_ref(), &event) {
            Ok(transition) => {
                // (2) Nothing leaves a terminal state.
                if let Some(before) = &state {
                    prop_assert!(
                        !before.is_terminal(),
                        "{:?} accepted {event:?}",
                        before.kind()
                    );
                }
                log.push(event);
                check_effects(&log, &transition.effects, &transition.state)?;
                state = Some(transition.state);
            }
            Err(refusal) => {
                if let Some(before) = &state
                    && before.is_terminal()
                {
                    prop_assert_eq!(
                        refusal,
                        GateRefusal::Terminal {
                            state: before.kind(),
                            event: event.kind()
                        }
                    );
                }
            }
        }
        if let Some(state) = &state {
            check_state(state, &log)?;
            if state.is_terminal() {
                // The remaining steps could only be refused; `check_terminal` tries every
                // event on it below.
                break;
            }
        }
    }
    if let Some(state) = &state {
        check_terminal(state, now)?;
        check_replay(state, &log)?;
    } else {
        prop_assert!(log.is_empty());
    }
    Ok(Run { state, log })
}

/// The stage event that opened the log: always its first event, and the only stage.
fn staged(log: &[GateEvent]) -> Result<(&Actor, TarballSha512, &ReleasePolicy), TestCaseError> {
    let stages = log
        .iter()
        .filter(|event| matches!(event, GateEvent::Stage { .. }))
        .count();
    prop_assert_eq!(stages, 1, "one stage per release");
    match &log[0] {
        GateEvent::Stage {
            stager,
            tarball_sha512,
            policy,
            ..
        } => Ok((stager, *tarball_sha512, policy)),
        other => Err(TestCaseError::fail(format!(
            "the log starts with {other:?}"
        ))),
    }
}

/// The accepted approvals, from the log: who, and when.
fn approvals_in(log: &[GateEvent]) -> Vec<(&Actor, OffsetDateTime)> {
    log.iter()
        .filter_map(|event| match event {
            GateEvent::Approve { approver, at, .. } => Some((approver, *at)),
            GateEvent::Stage { .. }
            | GateEvent::Reject { .. }
            | GateEvent::Expire { .. }
            | GateEvent::Promote { .. } => None,
        })
        .collect()
}

fn check_state(state: &ReleaseState, log: &[GateEvent]) -> Result<(), TestCaseError> {
    let (stager, staged_tarball, policy) = staged(log)?;
    let required = usize::from(policy.approvals);
    let approvals = approvals_in(log);

    // Approvals the log accepted: distinct people, never a CI identity, never the stager when
    // two or more are required, never a CI stager. The state records the same ones.
    let mut seen = BTreeSet::new();
    for (approver, _) in &approvals {
        prop_assert!(
            seen.insert(approver.id.clone()),
            "{} approved twice",
            approver.id
        );
        prop_assert_eq!(approver.kind, ActorKind::User);
        if approver.id == stager.id {
            prop_assert!(
                required == 1 && stager.is_user(),
                "the stager approved: {approvals:?}"
            );
        }
    }
    let recorded: Vec<_> = state
        .approvals()
        .iter()
        .map(|approval| (&approval.approver, approval.at))
        .collect();
    prop_assert_eq!(&recorded, &approvals);
    prop_assert_eq!(&state.release().stager, stager);
    prop_assert_eq!(state.release().tarball_sha512, staged_tarball);
    prop_assert_eq!(&state.release().policy, policy);

    // The approvals that made up the quorum came while the stage was open.
    for (_, at) in approvals.iter().take(required) {
        prop_assert!(*at < state.release().expires_at);
    }

    match state {
        ReleaseState::Staged { .. } => prop_assert!(approvals.len() < required),
        ReleaseState::CoolingOff { until, .. } => {
            prop_assert!(approvals.len() >= required);
            prop_assert_eq!(*until, approvals[required - 1].1 + policy.cooling_off);
        }
        ReleaseState::Live { at, expedited, .. } => {
            // (1) Nothing goes live without its quorum.
            prop_assert!(approvals.len() >= required);
            if required >= 2 {
                prop_assert!(
                    approvals
                        .iter()
                        .all(|(approver, _)| approver.id != stager.id)
                );
            }
            // (4) The staged tarball is what went live; only a promotion of that digest or an
            // approval can have made it so.
            match log.last() {
                Some(GateEvent::Promote { tarball_sha512, .. }) => {
                    prop_assert_eq!(*tarball_sha512, staged_tarball);
                }
                Some(GateEvent::Approve { .. }) => {}
                other => prop_assert!(false, "went live on {other:?}"),
            }
            // (5) Live before the cooling-off ends only when expedited by N+1 others.
            let cooling_off_ends = approvals[required - 1].1 + policy.cooling_off;
            let independent = approvals
                .iter()
                .filter(|(approver, _)| approver.id != stager.id)
                .count();
            if *at < cooling_off_ends {
                prop_assert!(*expedited);
            }
            if *expedited {
                prop_assert!(policy.expedite);
                prop_assert!(
                    independent > required,
                    "expedited with {independent} of {required}"
                );
                prop_assert!(*at < cooling_off_ends);
            }
        }
        ReleaseState::Rejected { .. } => {
            let rejected = matches!(log.last(), Some(GateEvent::Reject { .. }));
            prop_assert!(rejected, "rejected on {:?}", log.last());
        }
        ReleaseState::Expired { at, .. } => {
            prop_assert!(approvals.len() < required);
            prop_assert!(*at >= state.release().expires_at);
        }
    }
    Ok(())
}

fn check_effects(
    log: &[GateEvent],
    effects: &[Effect],
    state: &ReleaseState,
) -> Result<(), TestCaseError> {
    let (_, staged_tarball, _) = staged(log)?;
    let mut went_live = false;
    for effect in effects {
        match effect {
            Effect::GoLive { tarball_sha512 } => {
                // (4) The go-live effect names the staged digest.
                prop_assert_eq!(*tarball_sha512, staged_tarball);
                went_live = true;
            }
            Effect::Discard { tarball_sha512 } => {
                prop_assert_eq!(*tarball_sha512, staged_tarball);
            }
            Effect::StartCoolingOff { .. } | Effect::Notify(_) => {}
        }
    }
    prop_assert_eq!(went_live, state.kind() == StateKind::Live);
    Ok(())
}

/// (2) A finished release refuses every event, at any later time.
fn check_terminal(state: &ReleaseState, now: OffsetDateTime) -> Result<(), TestCaseError> {
    if !state.is_terminal() {
        return Ok(());
    }
    for later in [now - Duration::days(1), now, now + Duration::days(365)] {
        prop_assert_eq!(due(state, later), None);
        for event in every_event(later) {
            prop_assert_eq!(
                apply(Some(state), &event),
                Err(GateRefusal::Terminal {
                    state: state.kind(),
                    event: event.kind()
                })
            );
        }
    }
    Ok(())
}

/// (3) Replaying the accepted events, also after a trip through JSON, gives the same state.
fn check_replay(state: &ReleaseState, log: &[GateEvent]) -> Result<(), TestCaseError> {
    prop_assert_eq!(&replay(log), &Ok(state.clone()));
    let json = serde_json::to_string(log).expect("events serialize");
    let stored: Vec<GateEvent> = serde_json::from_str(&json).expect("events deserialize");
    prop_assert_eq!(&stored, &log.to_vec());
    prop_assert_eq!(&replay(&stored), &Ok(state.clone()));
    let json = serde_json::to_string(state).expect("the state serializes");
    let stored: ReleaseState = serde_json::from_str(&json).expect("the state deserializes");
    prop_assert_eq!(&stored, state);
    Ok(())
}

proptest! {
    // Cargo runs tests from the crate root, so seeds land in the crate's
    // `proptest-regressions/` (committed), whatever the test binary's layout.
    #![proptest_config(Config {
        cases: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/gate-properties.txt",
        ))),
        ..Config::default()
    })]

    #[test]
    fn random_event_sequences_keep_every_invariant(steps in steps()) {
        run(&steps)?;
    }
}

/// The properties above mean little if random sequences never reach the interesting states:
/// run a fixed sample and check that every outcome, expedited releases included, shows up.
#[test]
fn random_sequences_reach_every_outcome() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = steps();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..2000 {
        let steps = strategy
            .new_tree(&mut runner)
            .expect("a sequence")
            .current();
        let run = run(&steps).expect("invariants hold");
        let outcome = match &run.state {
            None => "nothing staged",
            Some(ReleaseState::Staged { .. }) => "staged",
            Some(ReleaseState::CoolingOff { .. }) => "cooling off",
            Some(ReleaseState::Live {
                expedited: true, ..
            }) => "live, expedited",
            Some(ReleaseState::Live {
                expedited: false, ..
            }) => match run.log.last() {
                Some(GateEvent::Promote { .. }) => "live, promoted",
                _ => "live, at the last approval",
            },
            Some(ReleaseState::Rejected { .. }) => "rejected",
            Some(ReleaseState::Expired { .. }) => "expired",
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    for outcome in [
        "nothing staged",
        "staged",
        "cooling off",
        "live, expedited",
        "live, promoted",
        "live, at the last approval",
        "rejected",
        "expired",
    ] {
        assert!(
            outcomes.get(outcome).copied().unwrap_or(0) >= 10,
            "too few sequences end {outcome}: {outcomes:?}"
        );
    }
}
