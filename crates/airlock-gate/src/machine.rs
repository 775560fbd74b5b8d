//! The transition function: a state and an event in, the next state and its effects (or a
//! refusal) out.

use time::OffsetDateTime;

use crate::actor::{Actor, ActorId, ActorKind, SecondFactor};
use crate::digest::TarballSha512;
use crate::event::{EventKind, GateEvent};
use crate::policy::ReleasePolicy;
use crate::refusal::GateRefusal;
use crate::state::{Approval, ReleaseState, StagedRelease};

/// The outcome of an accepted event: the state to store and what the caller must do about it,
/// in the same transaction that appends the event to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The release's new state.
    pub state: ReleaseState,
    /// What to do, in order.
    pub effects: Vec<Effect>,
}

/// Something the caller carries out because of a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Make the version public: add it to the packument, serve its tarball, move its dist-tag,
    /// and set `time[version]` to the transition's time. The digest is the staged one; serve
    /// only bytes that hash to it.
    GoLive {
        /// The tarball that goes live.
        tarball_sha512: TarballSha512,
    },
    /// The release is approved; promote it once `until` has passed (see [`due`]).
    StartCoolingOff {
        /// When the cooling-off ends.
        until: OffsetDateTime,
    },
    /// The release will never go live: the staged tarball is no longer needed.
    Discard {
        /// The tarball that was staged.
        tarball_sha512: TarballSha512,
    },
    /// Tell the package's maintainers (webhooks, mail).
    Notify(Notice),
}

/// What maintainers are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A release was staged and awaits approval.
    Staged {
        /// Who staged it.
        stager: ActorId,
        /// When the stage expires.
        expires_at: OffsetDateTime,
    },
    /// A maintainer approved.
    Approved {
        /// Who approved.
        approver: ActorId,
        /// The second factor they used.
        factor: SecondFactor,
        /// The approvals so far, this one included.
        approvals: usize,
        /// The approvals the policy requires.
        required: u8,
    },
    /// The release is approved and pending until the cooling-off ends.
    CoolingOff {
        /// When it goes live, unless someone rejects it first.
        until: OffsetDateTime,
    },
    /// The release went live.
    Live {
        /// The go-live moment.
        at: OffsetDateTime,
        /// Whether extra approvals skipped the cooling-off.
        expedited: bool,
    },
    /// A maintainer rejected the release.
    Rejected {
        /// Who rejected it.
        actor: ActorId,
        /// Why, when they said.
        reason: Option<String>,
    },
    /// The stage expired without its approvals.
    Expired,
}

/// Applies `event` to a release in `state` (`None`: nothing staged yet) and returns the next
/// state with its effects, or why the event is refused.
///
/// The rules:
///
/// * a release starts with a `Stage`, whose policy must validate; a version with a release still
///   under way cannot be staged again;
/// * an approval comes from a user (never a CI identity) who has not approved this release
///   before; when the policy requires two or more approvals the stager's approval is refused,
///   with one required approval a human stager may approve their own release;
/// * the last required approval starts the cooling-off, or makes the release live at once when
///   the cooling-off is zero; approvals after the stage's expiry time are refused;
/// * with `expedite`, approvals keep coming during the cooling-off, and once maintainers other
///   than the stager have given one more approval than required the release goes live at once,
///   recorded as expedited; without it, approvals during the cooling-off are refused;
/// * anyone the caller lets reject may reject a staged or cooling-off release (a veto);
///   a veto is honoured until the promotion is applied;
/// * `Expire` applies only to a staged release at or after its expiry time;
/// * `Promote` applies only to a cooling-off release at or after the window's end, and only
///   with the staged tarball's digest;
/// * live, rejected and expired releases refuse every event;
/// * events are applied in time order: one dated before the release's last change is refused.
///
/// Who may stage, approve or reject a package, and whether a second factor was really answered,
/// are the caller's decisions; the gate records the actor it is given.
///
/// ```
/// use airlock_gate::{
///     Actor, GateEvent, GateRefusal, ReleasePolicy, SecondFactor, StateKind, TarballSha512, apply,
/// };
/// use time::macros::datetime;
///
/// let policy = ReleasePolicy { approvals: 2, ..ReleasePolicy::default() };
/// let alice = Actor::user("u-alice", "alice");
/// let stage = GateEvent::Stage {
///     stager: alice.clone(),
///     tarball_sha512: TarballSha512::from_bytes([7; 64]),
///     policy,
///     at: datetime!(2026-05-01 09:00 UTC),
/// };
/// let staged = apply(None, &stage)?.state;
///
/// let approve = |who: &Actor| GateEvent::Approve {
///     approver: who.clone(),
///     factor: SecondFactor::Totp,
///     at: datetime!(2026-05-01 10:00 UTC),
/// };
/// assert_eq!(
///     apply(Some(&staged), &approve(&alice)),
///     Err(GateRefusal::StagerCannotApprove { required: 2 })
/// );
/// let once = apply(Some(&staged), &approve(&Actor::user("u-bob", "bob")))?.state;
/// let twice = apply(Some(&once), &approve(&Actor::user("u-carol", "carol")))?.state;
/// assert_eq!(twice.kind(), StateKind::Live);
/// # Ok::<(), GateRefusal>(())
/// ```
pub fn apply(state: Option<&ReleaseState>, event: &GateEvent) -> Result<Transition, GateRefusal> {
    use GateEvent as E;
    use ReleaseState as S;

    match (state, event) {
        (
            None,
            E::Stage {
                stager,
                tarball_sha512,
                policy,
                at,
            },
        ) => stage(stager, *tarball_sha512, policy, *at),
        (None, E::Approve { .. } | E::Reject { .. } | E::Expire { .. } | E::Promote { .. }) => {
            Err(GateRefusal::NotStaged {
                event: event.kind(),
            })
        }

        (Some(state @ (S::Staged { .. } | S::CoolingOff { .. })), E::Stage { .. }) => {
            Err(GateRefusal::AlreadyStaged {
                state: state.kind(),
            })
        }

        (
            Some(S::Staged { release, approvals }),
            E::Approve {
                approver,
                factor,
                at,
            },
        ) => approve_staged(release, approvals, approver, *factor, *at),
        (Some(S::Staged { release, approvals }), E::Reject { actor, reason, at }) => {
            reject(release, approvals, actor, reason, *at)
        }
        (Some(S::Staged { release, approvals }), E::Expire { at }) => {
            expire(release, approvals, *at)
        }
        (Some(S::Staged { release, approvals }), E::Promote { .. }) => {
            Err(GateRefusal::NotApproved {
                approvals: approvals.len(),
                required: release.policy.approvals,
            })
        }

        (
            Some(S::CoolingOff {
                release,
                approvals,
                approved_at,
                until,
            }),
            E::Approve {
                approver,
                factor,
                at,
            },
        ) => approve_cooling_off(
            release,
            approvals,
            *approved_at,
            *until,
            approver,
            *factor,
            *at,
        ),
        (
            Some(S::CoolingOff {
                release, approvals, ..
            }),
            E::Reject { actor, reason, at },
        ) => reject(release, approvals, actor, reason, *at),
        (Some(S::CoolingOff { until, .. }), E::Expire { .. }) => {
            Err(GateRefusal::ApprovedCannotExpire { until: *until })
        }
        (
            Some(S::CoolingOff {
                release,
                approvals,
                until,
                ..
            }),
            E::Promote { at, tarball_sha512 },
        ) => promote(release, approvals, *until, *tarball_sha512, *at),

        (
            Some(state @ (S::Live { .. } | S::Rejected { .. } | S::Expired { .. })),
            E::Stage { .. }
            | E::Approve { .. }
            | E::Reject { .. }
            | E::Expire { .. }
            | E::Promote { .. },
        ) => Err(GateRefusal::Terminal {
            state: state.kind(),
            event: event.kind(),
        }),
    }
}

/// The event a background job should apply to a release at `now`, if any: `Expire` for a
/// staged release past its expiry time, `Promote` (with the staged digest) for a release whose
/// cooling-off is over. The job should still check that the blob it is about to serve hashes to
/// that digest.
pub fn due(state: &ReleaseState, now: OffsetDateTime) -> Option<GateEvent> {
    match state {
        ReleaseState::Staged { release, .. } => {
            (now >= release.expires_at).then_some(GateEvent::Expire { at: now })
        }
        ReleaseState::CoolingOff { release, until, .. } => {
            (now >= *until).then_some(GateEvent::Promote {
                at: now,
                tarball_sha512: release.tarball_sha512,
            })
        }
        ReleaseState::Live { .. }
        | ReleaseState::Rejected { .. }
        | ReleaseState::Expired { .. } => None,
    }
}

/// Rebuilds a release's state from its event log by applying every event in order. A log the
/// gate itself accepted always replays; any refusal means the log was altered or reordered.
pub fn replay(events: &[GateEvent]) -> Result<ReleaseState, GateRefusal> {
    let mut state = None;
    for event in events {
        state = Some(apply(state.as_ref(), event)?.state);
    }
    state.ok_or(GateRefusal::EmptyLog)
}

fn stage(
    stager: &Actor,
    tarball_sha512: TarballSha512,
    policy: &ReleasePolicy,
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    policy.validate().map_err(GateRefusal::InvalidPolicy)?;
    let expires_at = later(at, policy.stage_ttl, EventKind::Stage)?;
    // Refuse now rather than at the last approval if the cooling-off could never end.
    later(expires_at, policy.cooling_off, EventKind::Stage)?;
    Ok(Transition {
        effects: vec![Effect::Notify(Notice::Staged {
            stager: stager.id.clone(),
            expires_at,
        })],
        state: ReleaseState::Staged {
            release: StagedRelease {
                stager: stager.clone(),
                tarball_sha512,
                policy: policy.clone(),
                staged_at: at,
                expires_at,
            },
            approvals: Vec::new(),
        },
    })
}

fn approve_staged(
    release: &StagedRelease,
    approvals: &[Approval],
    approver: &Actor,
    factor: SecondFactor,
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    in_order(EventKind::Approve, at, last_change(release, approvals))?;
    if at >= release.expires_at {
        return Err(GateRefusal::StageExpired {
            expires_at: release.expires_at,
        });
    }
    check_approver(release, approvals, approver)?;

    let approvals = with_approval(approvals, approver, factor, at);
    let policy = &release.policy;
    let mut effects = vec![approved_notice(policy, &approvals, approver, factor)];
    if approvals.len() < usize::from(policy.approvals) {
        return Ok(Transition {
            state: ReleaseState::Staged {
                release: release.clone(),
                approvals,
            },
            effects,
        });
    }
    if policy.cooling_off.is_zero() {
        return Ok(go_live(release, approvals, at, false, effects));
    }
    let until = later(at, policy.cooling_off, EventKind::Approve)?;
    effects.push(Effect::StartCoolingOff { until });
    effects.push(Effect::Notify(Notice::CoolingOff { until }));
    Ok(Transition {
        state: ReleaseState::CoolingOff {
            release: release.clone(),
            approvals,
            approved_at: at,
            until,
        },
        effects,
    })
}

fn approve_cooling_off(
    release: &StagedRelease,
    approvals: &[Approval],
    approved_at: OffsetDateTime,
    until: OffsetDateTime,
    approver: &Actor,
    factor: SecondFactor,
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    in_order(
        EventKind::Approve,
        at,
        last_change(release, approvals).max(approved_at),
    )?;
    if !release.policy.expedite {
        return Err(GateRefusal::ApprovalNotNeeded { until });
    }
    if at >= until {
        return Err(GateRefusal::CoolingOffOver { until });
    }
    check_approver(release, approvals, approver)?;
    if approver.id == release.stager.id {
        return Err(GateRefusal::StagerCannotExpedite);
    }

    let approvals = with_approval(approvals, approver, factor, at);
    let effects = vec![approved_notice(
        &release.policy,
        &approvals,
        approver,
        factor,
    )];
    let independent = approvals
        .iter()
        .filter(|approval| approval.approver.id != release.stager.id)
        .count();
    if independent >= release.policy.expedite_approvals() {
        return Ok(go_live(release, approvals, at, true, effects));
    }
    Ok(Transition {
        state: ReleaseState::CoolingOff {
            release: release.clone(),
            approvals,
            approved_at,
            until,
        },
        effects,
    })
}

fn reject(
    release: &StagedRelease,
    approvals: &[Approval],
    actor: &Actor,
    reason: &Option<String>,
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    in_order(EventKind::Reject, at, last_change(release, approvals))?;
    Ok(Transition {
        state: ReleaseState::Rejected {
            release: release.clone(),
            approvals: approvals.to_vec(),
            actor: actor.clone(),
            reason: reason.clone(),
            at,
        },
        effects: vec![
            Effect::Discard {
                tarball_sha512: release.tarball_sha512,
            },
            Effect::Notify(Notice::Rejected {
                actor: actor.id.clone(),
                reason: reason.clone(),
            }),
        ],
    })
}

fn expire(
    release: &StagedRelease,
    approvals: &[Approval],
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    in_order(EventKind::Expire, at, last_change(release, approvals))?;
    if at < release.expires_at {
        return Err(GateRefusal::NotExpiredYet {
            expires_at: release.expires_at,
        });
    }
    Ok(Transition {
        state: ReleaseState::Expired {
            release: release.clone(),
            approvals: approvals.to_vec(),
            at,
        },
        effects: vec![
            Effect::Discard {
                tarball_sha512: release.tarball_sha512,
            },
            Effect::Notify(Notice::Expired),
        ],
    })
}

fn promote(
    release: &StagedRelease,
    approvals: &[Approval],
    until: OffsetDateTime,
    offered: TarballSha512,
    at: OffsetDateTime,
) -> Result<Transition, GateRefusal> {
    if offered != release.tarball_sha512 {
        return Err(GateRefusal::TarballMismatch {
            approved: Box::new(release.tarball_sha512),
            offered: Box::new(offered),
        });
    }
    in_order(EventKind::Promote, at, last_change(release, approvals))?;
    if at < until {
        return Err(GateRefusal::CoolingOffNotOver { until });
    }
    Ok(go_live(release, approvals.to_vec(), at, false, Vec::new()))
}

/// Who may approve at all: a user, once, and not the stager when the stager may not count.
fn check_approver(
    release: &StagedRelease,
    approvals: &[Approval],
    approver: &Actor,
) -> Result<(), GateRefusal> {
    match approver.kind {
        ActorKind::User => {}
        ActorKind::Ci => {
            return Err(GateRefusal::CiCannotApprove {
                approver: approver.id.clone(),
            });
        }
    }
    if approvals
        .iter()
        .any(|approval| approval.approver.id == approver.id)
    {
        return Err(GateRefusal::AlreadyApproved {
            approver: approver.id.clone(),
        });
    }
    if approver.id == release.stager.id {
        match release.stager.kind {
            ActorKind::User => {}
            // The same principal as a CI stager, however the approval event labels it.
            ActorKind::Ci => {
                return Err(GateRefusal::CiCannotApprove {
                    approver: approver.id.clone(),
                });
            }
        }
        if release.policy.approvals >= 2 {
            return Err(GateRefusal::StagerCannotApprove {
                required: release.policy.approvals,
            });
        }
    }
    Ok(())
}

fn with_approval(
    approvals: &[Approval],
    approver: &Actor,
    factor: SecondFactor,
    at: OffsetDateTime,
) -> Vec<Approval> {
    let mut approvals = approvals.to_vec();
    approvals.push(Approval {
        approver: approver.clone(),
        factor,
        at,
    });
    approvals
}

fn approved_notice(
    policy: &ReleasePolicy,
    approvals: &[Approval],
    approver: &Actor,
    factor: SecondFactor,
) -> Effect {
    Effect::Notify(Notice::Approved {
        approver: approver.id.clone(),
        factor,
        approvals: approvals.len(),
        required: policy.approvals,
    })
}

fn go_live(
    release: &StagedRelease,
    approvals: Vec<Approval>,
    at: OffsetDateTime,
    expedited: bool,
    mut effects: Vec<Effect>,
) -> Transition {
    effects.push(Effect::GoLive {
        tarball_sha512: release.tarball_sha512,
    });
    effects.push(Effect::Notify(Notice::Live { at, expedited }));
    Transition {
        state: ReleaseState::Live {
            release: release.clone(),
            approvals,
            at,
            expedited,
        },
        effects,
    }
}

/// When a release in progress last changed: its staging or its latest approval.
fn last_change(release: &StagedRelease, approvals: &[Approval]) -> OffsetDateTime {
    approvals
        .iter()
        .map(|approval| approval.at)
        .fold(release.staged_at, OffsetDateTime::max)
}

fn in_order(event: EventKind, at: OffsetDateTime, last: OffsetDateTime) -> Result<(), GateRefusal> {
    if at < last {
        Err(GateRefusal::OutOfOrder { event, at, last })
    } else {
        Ok(())
    }
}

fn later(
    at: OffsetDateTime,
    duration: time::Duration,
    event: EventKind,
) -> Result<OffsetDateTime, GateRefusal> {
    at.checked_add(duration)
        .ok_or(GateRefusal::TimeOutOfRange { event, at })
}

#[cfg(test)]
mod tests;
