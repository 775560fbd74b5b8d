//! Why the gate refuses an event.

use thiserror::Error;
use time::OffsetDateTime;

use crate::actor::ActorId;
use crate::digest::TarballSha512;
use crate::display::{count_word, moment, shown};
use crate::event::EventKind;
use crate::policy::PolicyError;
use crate::state::StateKind;

/// An event the gate will not apply to a release, with what to do instead. A refusal leaves the
/// state as it was; nothing is to be recorded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GateRefusal {
    /// A stage event carries a policy that is out of bounds.
    #[error("the release policy given with the stage is invalid")]
    InvalidPolicy(#[source] PolicyError),

    /// An approve, reject, expire or promote event for a version with nothing staged.
    #[error(
        "cannot {event}: nothing is staged for this version; stage it first with `npm stage publish`"
    )]
    NotStaged {
        /// The refused event.
        event: EventKind,
    },

    /// A stage event for a version whose release is still staged or cooling off.
    #[error(
        "this version already has a release that is {state}; approve or reject that one instead of staging it again"
    )]
    AlreadyStaged {
        /// Where the existing release stands.
        state: StateKind,
    },

    /// Any event for a release that is live, rejected or expired.
    #[error(
        "cannot {event}: this release is already {state}, which is final; stage a new version instead"
    )]
    Terminal {
        /// Where the release stands.
        state: StateKind,
        /// The refused event.
        event: EventKind,
    },

    /// An event dated before the release's last change: the log would not replay in order.
    #[error("cannot {event} at {}: this release last changed at {}; apply events in the order they happened", moment(.at), moment(.last))]
    OutOfOrder {
        /// The refused event.
        event: EventKind,
        /// Its time.
        at: OffsetDateTime,
        /// The time of the release's last change.
        last: OffsetDateTime,
    },

    /// An event time so close to the end of the calendar that the expiry or the end of the
    /// cooling-off cannot be represented.
    #[error("cannot {event} at {}: the stage expiry or the end of the cooling-off would fall outside the supported calendar", moment(.at))]
    TimeOutOfRange {
        /// The refused event.
        event: EventKind,
        /// Its time.
        at: OffsetDateTime,
    },

    /// A CI identity tried to approve.
    #[error("`{}` is a CI identity and can never approve a release; a maintainer must approve it with a second factor", shown(.approver.as_str()))]
    CiCannotApprove {
        /// Who tried.
        approver: ActorId,
    },

    /// The stager tried to approve a release that needs two or more approvals.
    #[error("you staged this release; with {required} required approvals, {} other maintainers must approve it", count_word(usize::from(*.required)))]
    StagerCannotApprove {
        /// The approvals the policy requires.
        required: u8,
    },

    /// The stager tried to approve a release in its cooling-off, which could only expedite it.
    #[error(
        "you staged this release; only approvals from other maintainers can expedite it past its cooling-off"
    )]
    StagerCannotExpedite,

    /// A maintainer tried to approve the same release twice.
    #[error("`{}` has already approved this release; each maintainer approves a release once", shown(.approver.as_str()))]
    AlreadyApproved {
        /// Who tried again.
        approver: ActorId,
    },

    /// An approval after the stage's expiry time.
    #[error("this stage expired at {}; stage the release again with `npm stage publish`", moment(.expires_at))]
    StageExpired {
        /// When the stage expired.
        expires_at: OffsetDateTime,
    },

    /// An approval during the cooling-off under a policy without expedite.
    #[error("this release already has its approvals and goes live after its cooling-off ends at {}; its policy does not let further approvals expedite it", moment(.until))]
    ApprovalNotNeeded {
        /// When the cooling-off ends.
        until: OffsetDateTime,
    },

    /// An approval once the cooling-off is over, when only the promotion is left.
    #[error("the cooling-off ended at {} and this release is due to go live; approvals can no longer expedite it", moment(.until))]
    CoolingOffOver {
        /// When the cooling-off ended.
        until: OffsetDateTime,
    },

    /// An expiry before the stage's expiry time.
    #[error("cannot expire: the stage is open until {}", moment(.expires_at))]
    NotExpiredYet {
        /// When the stage expires.
        expires_at: OffsetDateTime,
    },

    /// An expiry for an approved release, which waits out its cooling-off instead.
    #[error("cannot expire: this release is approved and cooling off until {}; reject it to stop it", moment(.until))]
    ApprovedCannotExpire {
        /// When the cooling-off ends.
        until: OffsetDateTime,
    },

    /// A promotion of a release still waiting for approvals.
    #[error("cannot promote: this release has {approvals} of its {required} required approvals")]
    NotApproved {
        /// The approvals so far.
        approvals: usize,
        /// The approvals the policy requires.
        required: u8,
    },

    /// A promotion before the cooling-off ends.
    #[error("cannot promote before the cooling-off ends at {}", moment(.until))]
    CoolingOffNotOver {
        /// When the cooling-off ends.
        until: OffsetDateTime,
    },

    /// A promotion with a tarball other than the one staged and approved.
    #[error(
        "cannot promote: tarball sha512 `{offered:.16}...` is not the staged and approved tarball `{approved:.16}...`; stage the new tarball as a new release"
    )]
    TarballMismatch {
        /// The digest that was staged and approved (boxed, like `offered`, to keep refusals
        /// small).
        approved: Box<TarballSha512>,
        /// The digest offered for promotion.
        offered: Box<TarballSha512>,
    },

    /// [`replay`](crate::replay) was given no events.
    #[error("the event log is empty; a release's log starts with its stage event")]
    EmptyLog,
}
