//! The events that move a release from state to state.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::actor::{Actor, SecondFactor};
use crate::digest::TarballSha512;
use crate::policy::ReleasePolicy;

/// Something that happened to a release. Events are what the registry appends to the gate's
/// event log; replaying them with [`replay`](crate::replay) rebuilds the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GateEvent {
    /// A tarball was staged (`npm stage publish`, or `npm publish` under a staged policy).
    Stage {
        /// Who staged it.
        stager: Actor,
        /// The digest of the staged tarball.
        tarball_sha512: TarballSha512,
        /// The effective policy for this release, already layered and escalated.
        policy: ReleasePolicy,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A maintainer approved, having answered a fresh second factor.
    Approve {
        /// Who approved.
        approver: Actor,
        /// The second factor they answered.
        factor: SecondFactor,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A maintainer rejected the release (or vetoed it during the cooling-off).
    Reject {
        /// Who rejected it.
        actor: Actor,
        /// Why, when they said.
        reason: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The stage ran out of time (applied by a background job, see [`due`](crate::due)).
    Expire {
        /// When the expiry was applied.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The cooling-off is over and the release goes live (applied by a background job, see
    /// [`due`](crate::due)).
    Promote {
        /// The go-live moment.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// The digest of the tarball about to be served; it must be the staged one.
        tarball_sha512: TarballSha512,
    },
}

impl GateEvent {
    /// Which event this is, without its data.
    pub fn kind(&self) -> EventKind {
        match self {
            GateEvent::Stage { .. } => EventKind::Stage,
            GateEvent::Approve { .. } => EventKind::Approve,
            GateEvent::Reject { .. } => EventKind::Reject,
            GateEvent::Expire { .. } => EventKind::Expire,
            GateEvent::Promote { .. } => EventKind::Promote,
        }
    }

    /// When it happened.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            GateEvent::Stage { at, .. }
            | GateEvent::Approve { at, .. }
            | GateEvent::Reject { at, .. }
            | GateEvent::Expire { at }
            | GateEvent::Promote { at, .. } => *at,
        }
    }
}

/// The name of a [`GateEvent`], for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// [`GateEvent::Stage`].
    Stage,
    /// [`GateEvent::Approve`].
    Approve,
    /// [`GateEvent::Reject`].
    Reject,
    /// [`GateEvent::Expire`].
    Expire,
    /// [`GateEvent::Promote`].
    Promote,
}

impl fmt::Display for EventKind {
    /// The verb: `stage`, `approve`, `reject`, `expire`, `promote`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            EventKind::Stage => "stage",
            EventKind::Approve => "approve",
            EventKind::Reject => "reject",
            EventKind::Expire => "expire",
            EventKind::Promote => "promote",
        })
    }
}
