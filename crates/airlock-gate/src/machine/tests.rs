use time::macros::datetime;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::*;
use crate::policy::PolicyError;
use crate::risk::{RiskSignal, escalate};
use crate::state::StateKind;

const T0: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

fn at(minutes: i64) -> OffsetDateTime {
    T0 + Duration::minutes(minutes)
}

fn alice() -> Actor {
    Actor::user("u-alice", "alice")
}

fn bob() -> Actor {
    Actor::user("u-bob", "bob")
}

fn carol() -> Actor {
    Actor::user("u-carol", "carol")
}

fn dave() -> Actor {
    Actor::user("u-dave", "dave")
}

fn ci() -> Actor {
    Actor::ci(
        "oidc-github-acme-widget",
        "github.com/acme/widget release.yml",
    )
}

fn tarball() -> TarballSha512 {
    TarballSha512::from_bytes([0x11; 64])
}

fn swapped_tarball() -> TarballSha512 {
    TarballSha512::from_bytes([0x22; 64])
}

fn policy(approvals: u8, cooling_off: Duration, expedite: bool) -> ReleasePolicy {
    ReleasePolicy {
        publish: crate::PublishMode::Staged,
        approvals,
        cooling_off,
        expedite,
        ..ReleasePolicy::default()
    }
}

fn stage_by(stager: &Actor, policy: &ReleasePolicy) -> GateEvent {
    GateEvent::Stage {
        stager: stager.clone(),
        tarball_sha512: tarball(),
        policy: policy.clone(),
        at: at(0),
    }
}

fn approve_by(approver: &Actor, minute: i64) -> GateEvent {
    GateEvent::Approve {
        approver: approver.clone(),
        factor: SecondFactor::Totp,
        at: at(minute),
    }
}

fn reject_by(actor: &Actor, minute: i64) -> GateEvent {
    GateEvent::Reject {
        actor: actor.clone(),
        reason: Some("not what we built".to_owned()),
        at: at(minute),
    }
}

fn expire_at(minute: i64) -> GateEvent {
    GateEvent::Expire { at: at(minute) }
}

fn promote_at(minute: i64, tarball_sha512: TarballSha512) -> GateEvent {
    GateEvent::Promote {
        at: at(minute),
        tarball_sha512,
    }
}

/// The state after `events`, which must all be accepted.
fn after(events: &[GateEvent]) -> ReleaseState {
    replay(events).expect("every event is accepted")
}

fn refusal(events: &[GateEvent], event: &GateEvent) -> GateRefusal {
    apply(Some(&after(events)), event).expect_err("the event is refused")
}

fn accepted(events: &[GateEvent], event: &GateEvent) -> Transition {
    apply(Some(&after(events)), event).expect("the event is accepted")
}

fn all_events() -> Vec<GateEvent> {
    vec![
        stage_by(&alice(), &ReleasePolicy::default()),
        approve_by(&dave(), 100_000),
        reject_by(&dave(), 100_000),
        expire_at(100_000),
        promote_at(100_000, tarball()),
    ]
}

const DAY: i64 = 24 * 60;
const WEEK: i64 = 7 * DAY;

// Staging.

#[test]
fn staging_opens_a_stage_that_expires_after_the_policy_ttl() {
    let transition = apply(None, &stage_by(&ci(), &ReleasePolicy::default())).unwrap();
    let expires_at = at(WEEK);
    assert_eq!(
        transition.state,
        ReleaseState::Staged {
            release: StagedRelease {
                stager: ci(),
                tarball_sha512: tarball(),
                policy: ReleasePolicy::default(),
                staged_at: at(0),
                expires_at,
            },
            approvals: Vec::new(),
        }
    );
    assert_eq!(
        transition.effects,
        vec![Effect::Notify(Notice::Staged {
            stager: ci().id,
            expires_at
        })]
    );
}

#[test]
fn staging_refuses_an_invalid_policy() {
    let refusal = apply(None, &stage_by(&alice(), &policy(0, Duration::ZERO, false))).unwrap_err();
    assert_eq!(
        refusal,
        GateRefusal::InvalidPolicy(PolicyError::Approvals { got: 0, max: 10 })
    );
    assert_eq!(
        refusal.to_string(),
        "the release policy given with the stage is invalid"
    );
    assert_eq!(
        std::error::Error::source(&refusal).map(ToString::to_string),
        Some("`approvals` must be between 1 and 10, got 0".to_owned())
    );
}

#[test]
fn a_release_under_way_cannot_be_staged_again() {
    let slow = policy(1, Duration::hours(1), false);
    let staged = [stage_by(&alice(), &slow)];
    assert_eq!(
        refusal(&staged, &stage_by(&bob(), &slow)).to_string(),
        "this version already has a release that is staged; approve or reject that one instead of staging it again"
    );
    let cooling = [stage_by(&alice(), &slow), approve_by(&bob(), 1)];
    assert_eq!(
        refusal(&cooling, &stage_by(&bob(), &slow)),
        GateRefusal::AlreadyStaged {
            state: StateKind::CoolingOff
        }
    );
}

#[test]
fn nothing_but_a_stage_starts_a_release() {
    for event in &all_events()[1..] {
        let refusal = apply(None, event).unwrap_err();
        assert_eq!(
            refusal,
            GateRefusal::NotStaged {
                event: event.kind()
            }
        );
    }
    assert_eq!(
        apply(None, &approve_by(&bob(), 1)).unwrap_err().to_string(),
        "cannot approve: nothing is staged for this version; stage it first with `npm stage publish`"
    );
}

#[test]
fn a_stage_whose_expiry_falls_off_the_calendar_is_refused() {
    let end = PrimitiveDateTime::MAX.assume_utc() - Duration::minutes(30);
    let event = GateEvent::Stage {
        stager: alice(),
        tarball_sha512: tarball(),
        policy: ReleasePolicy::default(),
        at: end,
    };
    assert_eq!(
        apply(None, &event).unwrap_err(),
        GateRefusal::TimeOutOfRange {
            event: EventKind::Stage,
            at: end
        }
    );
}

// Approvals.

#[test]
fn one_approval_without_cooling_off_goes_live_at_once() {
    let events = [stage_by(&ci(), &ReleasePolicy::default())];
    let transition = accepted(&events, &approve_by(&alice(), 5));
    assert_eq!(
        transition.state,
        ReleaseState::Live {
            release: after(&events).release().clone(),
            approvals: vec![Approval {
                approver: alice(),
                factor: SecondFactor::Totp,
                at: at(5),
            }],
            at: at(5),
            expedited: false,
        }
    );
    assert_eq!(
        transition.effects,
        vec![
            Effect::Notify(Notice::Approved {
                approver: alice().id,
                factor: SecondFactor::Totp,
                approvals: 1,
                required: 1,
            }),
            Effect::GoLive {
                tarball_sha512: tarball()
            },
            Effect::Notify(Notice::Live {
                at: at(5),
                expedited: false
            }),
        ]
    );
}

#[test]
fn a_human_stager_may_approve_alone_when_one_approval_is_required() {
    let state = after(&[
        stage_by(&alice(), &ReleasePolicy::default()),
        approve_by(&alice(), 1),
    ]);
    assert_eq!(state.kind(), StateKind::Live);
}

#[test]
fn a_ci_identity_never_approves() {
    let events = [stage_by(&alice(), &ReleasePolicy::default())];
    let refusal = refusal(&events, &approve_by(&ci(), 1));
    assert_eq!(
        refusal.to_string(),
        "`oidc-github-acme-widget` is a CI identity and can never approve a release; a maintainer must approve it with a second factor"
    );
}

#[test]
fn a_ci_stager_cannot_approve_even_labelled_as_a_user() {
    let events = [stage_by(&ci(), &ReleasePolicy::default())];
    let impostor = Actor::user(ci().id.as_str(), "someone");
    assert_eq!(
        refusal(&events, &approve_by(&impostor, 1)),
        GateRefusal::CiCannotApprove { approver: ci().id }
    );
}

#[test]
fn the_stager_never_counts_when_two_approvals_are_required() {
    let events = [stage_by(&alice(), &policy(2, Duration::ZERO, false))];
    assert_eq!(
        refusal(&events, &approve_by(&alice(), 1)).to_string(),
        "you staged this release; with 2 required approvals, two other maintainers must approve it"
    );
    let three = [
        stage_by(&alice(), &policy(3, Duration::ZERO, false)),
        approve_by(&bob(), 1),
    ];
    assert_eq!(
        refusal(&three, &approve_by(&alice(), 2)).to_string(),
        "you staged this release; with 3 required approvals, three other maintainers must approve it"
    );
}

#[test]
fn two_approvals_need_two_distinct_maintainers() {
    let two = policy(2, Duration::ZERO, false);
    let first = accepted(&[stage_by(&ci(), &two)], &approve_by(&alice(), 1));
    assert_eq!(first.state.kind(), StateKind::Staged);
    assert_eq!(
        first.effects,
        vec![Effect::Notify(Notice::Approved {
            approver: alice().id,
            factor: SecondFactor::Totp,
            approvals: 1,
            required: 2,
        })]
    );

    let events = [stage_by(&ci(), &two), approve_by(&alice(), 1)];
    assert_eq!(
        refusal(&events, &approve_by(&alice(), 2)).to_string(),
        "`u-alice` has already approved this release; each maintainer approves a release once"
    );
    let second = accepted(&events, &approve_by(&bob(), 2));
    assert_eq!(second.state.kind(), StateKind::Live);
    assert_eq!(second.state.approvals().len(), 2);
}

#[test]
fn one_approval_per_person_even_with_another_factor() {
    let events = [
        stage_by(&ci(), &policy(2, Duration::ZERO, false)),
        approve_by(&alice(), 1),
    ];
    let again = GateEvent::Approve {
        approver: Actor::user("u-alice", "alice (laptop)"),
        factor: SecondFactor::WebAuthn,
        at: at(2),
    };
    assert_eq!(
        refusal(&events, &again),
        GateRefusal::AlreadyApproved {
            approver: alice().id
        }
    );
}

#[test]
fn the_factor_used_is_recorded() {
    let state = after(&[
        stage_by(&ci(), &policy(2, Duration::ZERO, false)),
        GateEvent::Approve {
            approver: alice(),
            factor: SecondFactor::RecoveryCode,
            at: at(1),
        },
        GateEvent::Approve {
            approver: bob(),
            factor: SecondFactor::WebOtp,
            at: at(2),
        },
    ]);
    let factors: Vec<_> = state.approvals().iter().map(|a| a.factor).collect();
    assert_eq!(factors, [SecondFactor::RecoveryCode, SecondFactor::WebOtp]);
}

#[test]
fn an_escalated_release_needs_one_more_approver_and_shuts_out_the_stager() {
    let escalated = escalate(&ReleasePolicy::default(), &[RiskSignal::NewInstallScripts]);
    let events = [stage_by(&alice(), &escalated)];
    assert_eq!(
        refusal(&events, &approve_by(&alice(), 1)),
        GateRefusal::StagerCannotApprove { required: 2 }
    );
    let one = after(&[stage_by(&alice(), &escalated), approve_by(&bob(), 1)]);
    assert_eq!(one.kind(), StateKind::Staged);
    let two = after(&[
        stage_by(&alice(), &escalated),
        approve_by(&bob(), 1),
        approve_by(&carol(), 2),
    ]);
    assert_eq!(two.kind(), StateKind::Live);
    assert_eq!(
        two.release().policy.escalated_by,
        [RiskSignal::NewInstallScripts].into()
    );
}

#[test]
fn approvals_after_the_stage_expired_are_refused() {
    let events = [stage_by(&ci(), &ReleasePolicy::default())];
    assert_eq!(
        refusal(&events, &approve_by(&alice(), WEEK)).to_string(),
        "this stage expired at 2026-05-08T12:00:00Z; stage the release again with `npm stage publish`"
    );
    assert_eq!(
        accepted(&events, &approve_by(&alice(), WEEK - 1))
            .state
            .kind(),
        StateKind::Live
    );
}

#[test]
fn events_must_come_in_time_order() {
    let events = [
        stage_by(&ci(), &policy(2, Duration::ZERO, false)),
        approve_by(&alice(), 10),
    ];
    assert_eq!(
        refusal(&events, &approve_by(&bob(), 9)).to_string(),
        "cannot approve at 2026-05-01T12:09:00Z: this release last changed at 2026-05-01T12:10:00Z; apply events in the order they happened"
    );
    assert_eq!(
        refusal(&events, &reject_by(&bob(), 9)),
        GateRefusal::OutOfOrder {
            event: EventKind::Reject,
            at: at(9),
            last: at(10)
        }
    );
    assert_eq!(
        refusal(
            &[stage_by(&ci(), &ReleasePolicy::default())],
            &approve_by(&bob(), -1)
        ),
        GateRefusal::OutOfOrder {
            event: EventKind::Approve,
            at: at(-1),
            last: at(0)
        }
    );
    // The same moment is in order.
    assert_eq!(
        accepted(&events, &approve_by(&bob(), 10)).state.kind(),
        StateKind::Live
    );
}

// Cooling-off and promotion.

#[test]
fn the_last_approval_starts_the_cooling_off() {
    let events = [stage_by(&ci(), &policy(1, Duration::days(1), false))];
    let transition = accepted(&events, &approve_by(&alice(), 30));
    let until = at(30 + DAY);
    assert_eq!(
        transition.state,
        ReleaseState::CoolingOff {
            release: after(&events).release().clone(),
            approvals: vec![Approval {
                approver: alice(),
                factor: SecondFactor::Totp,
                at: at(30),
            }],
            approved_at: at(30),
            until,
        }
    );
    assert_eq!(
        transition.effects[1..],
        [
            Effect::StartCoolingOff { until },
            Effect::Notify(Notice::CoolingOff { until }),
        ]
    );
}

#[test]
fn promotion_waits_for_the_end_of_the_cooling_off() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(1), false)),
        approve_by(&alice(), 30),
    ];
    assert_eq!(
        refusal(&events, &promote_at(30 + DAY - 1, tarball())).to_string(),
        "cannot promote before the cooling-off ends at 2026-05-02T12:30:00Z"
    );
    let transition = accepted(&events, &promote_at(30 + DAY + 5, tarball()));
    let ReleaseState::Live {
        at: live_at,
        expedited,
        ref release,
        ..
    } = transition.state
    else {
        panic!("not live: {:?}", transition.state);
    };
    assert_eq!(live_at, at(30 + DAY + 5));
    assert!(!expedited);
    assert_eq!(release.tarball_sha512, tarball());
    assert_eq!(
        transition.effects,
        vec![
            Effect::GoLive {
                tarball_sha512: tarball()
            },
            Effect::Notify(Notice::Live {
                at: at(30 + DAY + 5),
                expedited: false
            }),
        ]
    );
}

#[test]
fn a_swapped_tarball_is_never_promoted() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(1), false)),
        approve_by(&alice(), 30),
    ];
    let refusal = refusal(&events, &promote_at(2 * DAY, swapped_tarball()));
    assert_eq!(
        refusal,
        GateRefusal::TarballMismatch {
            approved: Box::new(tarball()),
            offered: Box::new(swapped_tarball())
        }
    );
    assert_eq!(
        refusal.to_string(),
        "cannot promote: tarball sha512 `2222222222222222...` is not the staged and approved tarball `1111111111111111...`; stage the new tarball as a new release"
    );
}

#[test]
fn an_unapproved_release_cannot_be_promoted() {
    let events = [
        stage_by(&ci(), &policy(2, Duration::ZERO, false)),
        approve_by(&alice(), 1),
    ];
    assert_eq!(
        refusal(&events, &promote_at(2, tarball())).to_string(),
        "cannot promote: this release has 1 of its 2 required approvals"
    );
}

#[test]
fn without_expedite_approvals_during_the_cooling_off_are_refused() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(1), false)),
        approve_by(&alice(), 0),
    ];
    assert_eq!(
        refusal(&events, &approve_by(&bob(), 1)).to_string(),
        "this release already has its approvals and goes live after its cooling-off ends at 2026-05-02T12:00:00Z; its policy does not let further approvals expedite it"
    );
}

// Expedite.

#[test]
fn one_approval_more_than_required_skips_the_cooling_off() {
    let events = [
        stage_by(&alice(), &policy(2, Duration::days(3), true)),
        approve_by(&bob(), 1),
        approve_by(&carol(), 2),
    ];
    assert_eq!(after(&events).kind(), StateKind::CoolingOff);
    let transition = accepted(&events, &approve_by(&dave(), 3));
    let ReleaseState::Live {
        at: live_at,
        expedited,
        ref approvals,
        ..
    } = transition.state
    else {
        panic!("not live: {:?}", transition.state);
    };
    assert_eq!(live_at, at(3));
    assert!(expedited);
    assert_eq!(approvals.len(), 3);
    assert_eq!(
        transition.effects[1..],
        [
            Effect::GoLive {
                tarball_sha512: tarball()
            },
            Effect::Notify(Notice::Live {
                at: at(3),
                expedited: true
            }),
        ]
    );
}

#[test]
fn a_stagers_own_approval_does_not_count_towards_expedite() {
    // One approval required: alice may approve her own release, which starts the cooling-off,
    // but skipping it takes two approvals from other maintainers.
    let events = [
        stage_by(&alice(), &policy(1, Duration::days(3), true)),
        approve_by(&alice(), 1),
        approve_by(&bob(), 2),
    ];
    assert_eq!(after(&events).kind(), StateKind::CoolingOff);
    assert_eq!(
        accepted(&events, &approve_by(&carol(), 3)).state.kind(),
        StateKind::Live
    );

    let others_first = [
        stage_by(&alice(), &policy(1, Duration::days(3), true)),
        approve_by(&bob(), 1),
    ];
    assert_eq!(
        refusal(&others_first, &approve_by(&alice(), 2)).to_string(),
        "you staged this release; only approvals from other maintainers can expedite it past its cooling-off"
    );
}

#[test]
fn expedite_is_closed_once_the_cooling_off_is_over() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::hours(1), true)),
        approve_by(&alice(), 0),
    ];
    assert_eq!(
        refusal(&events, &approve_by(&bob(), 60)),
        GateRefusal::CoolingOffOver { until: at(60) }
    );
    assert!(matches!(
        accepted(&events, &approve_by(&bob(), 59)).state,
        ReleaseState::Live {
            expedited: true,
            ..
        }
    ));
}

#[test]
fn expedite_without_cooling_off_has_nothing_to_skip() {
    let state = after(&[
        stage_by(&ci(), &policy(1, Duration::ZERO, true)),
        approve_by(&alice(), 1),
    ]);
    assert!(matches!(
        state,
        ReleaseState::Live {
            expedited: false,
            ..
        }
    ));
}

#[test]
fn expediting_approvals_follow_the_approval_rules() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(1), true)),
        approve_by(&alice(), 1),
    ];
    assert_eq!(
        refusal(&events, &approve_by(&alice(), 2)),
        GateRefusal::AlreadyApproved {
            approver: alice().id
        }
    );
    assert_eq!(
        refusal(&events, &approve_by(&ci(), 2)),
        GateRefusal::CiCannotApprove { approver: ci().id }
    );
    let two = [
        stage_by(&alice(), &policy(2, Duration::days(1), true)),
        approve_by(&bob(), 1),
        approve_by(&carol(), 2),
    ];
    assert_eq!(
        refusal(&two, &approve_by(&alice(), 3)),
        GateRefusal::StagerCannotApprove { required: 2 }
    );
}

// Rejection, veto and expiry.

#[test]
fn any_maintainer_may_reject_a_staged_release() {
    let events = [
        stage_by(&ci(), &policy(2, Duration::ZERO, false)),
        approve_by(&alice(), 1),
    ];
    let transition = accepted(&events, &reject_by(&bob(), 2));
    assert_eq!(
        transition.state,
        ReleaseState::Rejected {
            release: after(&events).release().clone(),
            approvals: after(&events).approvals().to_vec(),
            actor: bob(),
            reason: Some("not what we built".to_owned()),
            at: at(2),
        }
    );
    assert_eq!(
        transition.effects,
        vec![
            Effect::Discard {
                tarball_sha512: tarball()
            },
            Effect::Notify(Notice::Rejected {
                actor: bob().id,
                reason: Some("not what we built".to_owned())
            }),
        ]
    );
}

#[test]
fn a_veto_during_the_cooling_off_rejects_the_release() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(1), false)),
        approve_by(&alice(), 1),
    ];
    // The stager, an approver or anyone else the caller allows.
    for vetoer in [ci(), alice(), bob()] {
        let state = accepted(&events, &reject_by(&vetoer, 2)).state;
        assert_eq!(state.kind(), StateKind::Rejected);
    }
    // Until the promotion is applied, even past the window's end.
    assert_eq!(
        accepted(&events, &reject_by(&bob(), 3 * DAY)).state.kind(),
        StateKind::Rejected
    );
}

#[test]
fn a_stage_expires_only_once_its_time_is_up() {
    let events = [stage_by(&ci(), &ReleasePolicy::default())];
    assert_eq!(
        refusal(&events, &expire_at(WEEK - 1)).to_string(),
        "cannot expire: the stage is open until 2026-05-08T12:00:00Z"
    );
    let transition = accepted(&events, &expire_at(WEEK));
    assert_eq!(
        transition.state,
        ReleaseState::Expired {
            release: after(&events).release().clone(),
            approvals: Vec::new(),
            at: at(WEEK),
        }
    );
    assert_eq!(
        transition.effects,
        vec![
            Effect::Discard {
                tarball_sha512: tarball()
            },
            Effect::Notify(Notice::Expired),
        ]
    );
}

#[test]
fn an_approved_release_does_not_expire() {
    let events = [
        stage_by(&ci(), &policy(1, Duration::days(30), false)),
        approve_by(&alice(), WEEK - 1),
    ];
    assert_eq!(
        refusal(&events, &expire_at(2 * WEEK)).to_string(),
        "cannot expire: this release is approved and cooling off until 2026-06-07T11:59:00Z; reject it to stop it"
    );
}

#[test]
fn live_rejected_and_expired_are_final() {
    let finished = [
        vec![
            stage_by(&ci(), &ReleasePolicy::default()),
            approve_by(&alice(), 1),
        ],
        vec![
            stage_by(&ci(), &ReleasePolicy::default()),
            reject_by(&alice(), 1),
        ],
        vec![stage_by(&ci(), &ReleasePolicy::default()), expire_at(WEEK)],
    ];
    for events in finished {
        let state = after(&events);
        assert!(state.is_terminal());
        for event in all_events() {
            assert_eq!(
                apply(Some(&state), &event),
                Err(GateRefusal::Terminal {
                    state: state.kind(),
                    event: event.kind()
                })
            );
        }
    }
    let live = after(&[
        stage_by(&ci(), &ReleasePolicy::default()),
        approve_by(&alice(), 1),
    ]);
    assert_eq!(
        apply(Some(&live), &reject_by(&bob(), 2))
            .unwrap_err()
            .to_string(),
        "cannot reject: this release is already live, which is final; stage a new version instead"
    );
}

// The background job.

#[test]
fn due_expires_stale_stages() {
    let state = after(&[stage_by(&ci(), &ReleasePolicy::default())]);
    assert_eq!(due(&state, at(WEEK - 1)), None);
    assert_eq!(due(&state, at(WEEK)), Some(expire_at(WEEK)));
    let due_event = due(&state, at(WEEK + 3)).unwrap();
    assert_eq!(
        apply(Some(&state), &due_event).unwrap().state.kind(),
        StateKind::Expired
    );
}

#[test]
fn due_promotes_after_the_cooling_off() {
    let state = after(&[
        stage_by(&ci(), &policy(1, Duration::hours(2), false)),
        approve_by(&alice(), 0),
    ]);
    assert_eq!(due(&state, at(119)), None);
    assert_eq!(due(&state, at(120)), Some(promote_at(120, tarball())));
    let due_event = due(&state, at(200)).unwrap();
    let live = apply(Some(&state), &due_event).unwrap().state;
    assert!(matches!(live, ReleaseState::Live { at: live_at, .. } if live_at == at(200)));
}

#[test]
fn nothing_is_due_for_finished_releases() {
    let live = after(&[
        stage_by(&ci(), &ReleasePolicy::default()),
        approve_by(&alice(), 1),
    ]);
    let rejected = after(&[
        stage_by(&ci(), &ReleasePolicy::default()),
        reject_by(&alice(), 1),
    ]);
    let expired = after(&[stage_by(&ci(), &ReleasePolicy::default()), expire_at(WEEK)]);
    for state in [live, rejected, expired] {
        assert_eq!(due(&state, at(100 * WEEK)), None);
    }
}

// Replay.

#[test]
fn replay_rebuilds_the_state_step_by_step() {
    let events = [
        stage_by(&alice(), &policy(2, Duration::days(1), true)),
        approve_by(&bob(), 1),
        approve_by(&carol(), 2),
        approve_by(&dave(), 3),
    ];
    let mut state = None;
    for event in &events {
        state = Some(apply(state.as_ref(), event).unwrap().state);
    }
    assert_eq!(replay(&events).as_ref(), Ok(state.as_ref().unwrap()));
}

#[test]
fn replay_refuses_an_empty_or_altered_log() {
    assert_eq!(replay(&[]), Err(GateRefusal::EmptyLog));
    assert_eq!(
        replay(&[approve_by(&bob(), 1)]),
        Err(GateRefusal::NotStaged {
            event: EventKind::Approve
        })
    );
    assert_eq!(
        replay(&[
            stage_by(&alice(), &policy(2, Duration::ZERO, false)),
            approve_by(&alice(), 1),
        ]),
        Err(GateRefusal::StagerCannotApprove { required: 2 })
    );
}

#[test]
fn refusal_messages_are_lowercase_and_unpunctuated_at_the_end() {
    let refusals = [
        GateRefusal::InvalidPolicy(PolicyError::Approvals { got: 0, max: 10 }),
        GateRefusal::NotStaged {
            event: EventKind::Promote,
        },
        GateRefusal::AlreadyStaged {
            state: StateKind::Staged,
        },
        GateRefusal::Terminal {
            state: StateKind::Expired,
            event: EventKind::Approve,
        },
        GateRefusal::OutOfOrder {
            event: EventKind::Expire,
            at: at(0),
            last: at(1),
        },
        GateRefusal::TimeOutOfRange {
            event: EventKind::Approve,
            at: at(0),
        },
        GateRefusal::CiCannotApprove { approver: ci().id },
        GateRefusal::StagerCannotApprove { required: 4 },
        GateRefusal::StagerCannotExpedite,
        GateRefusal::AlreadyApproved {
            approver: alice().id,
        },
        GateRefusal::StageExpired { expires_at: at(0) },
        GateRefusal::ApprovalNotNeeded { until: at(0) },
        GateRefusal::CoolingOffOver { until: at(0) },
        GateRefusal::NotExpiredYet { expires_at: at(0) },
        GateRefusal::ApprovedCannotExpire { until: at(0) },
        GateRefusal::NotApproved {
            approvals: 0,
            required: 1,
        },
        GateRefusal::CoolingOffNotOver { until: at(0) },
        GateRefusal::TarballMismatch {
            approved: Box::new(tarball()),
            offered: Box::new(swapped_tarball()),
        },
        GateRefusal::EmptyLog,
    ];
    for refusal in refusals {
        let message = refusal.to_string();
        let first = message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        GateRefusal::Terminal {
            state: StateKind::Expired,
            event: EventKind::Approve
        }
        .to_string(),
        "cannot approve: this release is already expired, which is final; stage a new version instead"
    );
    assert_eq!(
        GateRefusal::StagerCannotApprove { required: 4 }.to_string(),
        "you staged this release; with 4 required approvals, four other maintainers must approve it"
    );
}
