//! The states a release passes through.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::actor::{Actor, SecondFactor};
use crate::digest::TarballSha512;
use crate::policy::ReleasePolicy;

/// What was staged, by whom, under which rules; fixed for the life of the release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRelease {
    /// Who staged it: a user or a CI identity.
    pub stager: Actor,
    /// The tarball that was staged; the only one that can go live.
    pub tarball_sha512: TarballSha512,
    /// The effective policy (layered and escalated) when the release was staged.
    pub policy: ReleasePolicy,
    /// When it was staged.
    #[serde(with = "time::serde::rfc3339")]
    pub staged_at: OffsetDateTime,
    /// When the stage expires unless it has its approvals by then.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One maintainer's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved: always a user, never the same person twice in one release.
    pub approver: Actor,
    /// The second factor they answered.
    pub factor: SecondFactor,
    /// When they approved.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where a release stands. `Live`, `Rejected` and `Expired` are terminal.
///
/// Every state keeps the [`StagedRelease`] and the approvals gathered so far, in the order they
/// came, so a finished release still shows who staged and who approved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReleaseState {
    /// Waiting for approvals; invisible to installers.
    Staged {
        /// What was staged.
        release: StagedRelease,
        /// The approvals so far (fewer than the policy requires).
        approvals: Vec<Approval>,
    },
    /// Approved and waiting out the cooling-off window; still invisible, and any maintainer may
    /// reject it.
    CoolingOff {
        /// What was staged.
        release: StagedRelease,
        /// The approvals so far: at least the policy's quorum, more when expediting.
        approvals: Vec<Approval>,
        /// When the last required approval came.
        #[serde(with = "time::serde::rfc3339")]
        approved_at: OffsetDateTime,
        /// When the window ends and the release may be promoted.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// Public: in packuments, installable, tagged.
    Live {
        /// What was staged, and went live.
        release: StagedRelease,
        /// The approvals it went live with.
        approvals: Vec<Approval>,
        /// The go-live moment (what `time[version]` shows).
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// Whether extra approvals skipped the cooling-off.
        expedited: bool,
    },
    /// Rejected by a maintainer, before or during the cooling-off (a veto).
    Rejected {
        /// What was staged.
        release: StagedRelease,
        /// The approvals it had when it was rejected.
        approvals: Vec<Approval>,
        /// Who rejected it.
        actor: Actor,
        /// Why, when they said.
        reason: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Not approved in time.
    Expired {
        /// What was staged.
        release: StagedRelease,
        /// The approvals it had when it expired.
        approvals: Vec<Approval>,
        /// When the expiry was applied.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl ReleaseState {
    /// Which state this is, without its data.
    pub fn kind(&self) -> StateKind {
        match self {
            ReleaseState::Staged { .. } => StateKind::Staged,
            ReleaseState::CoolingOff { .. } => StateKind::CoolingOff,
            ReleaseState::Live { .. } => StateKind::Live,
            ReleaseState::Rejected { .. } => StateKind::Rejected,
            ReleaseState::Expired { .. } => StateKind::Expired,
        }
    }

    /// What was staged.
    pub fn release(&self) -> &StagedRelease {
        match self {
            ReleaseState::Staged { release, .. }
            | ReleaseState::CoolingOff { release, .. }
            | ReleaseState::Live { release, .. }
            | ReleaseState::Rejected { release, .. }
            | ReleaseState::Expired { release, .. } => release,
        }
    }

    /// The approvals gathered, in order.
    pub fn approvals(&self) -> &[Approval] {
        match self {
            ReleaseState::Staged { approvals, .. }
            | ReleaseState::CoolingOff { approvals, .. }
            | ReleaseState::Live { approvals, .. }
            | ReleaseState::Rejected { approvals, .. }
            | ReleaseState::Expired { approvals, .. } => approvals,
        }
    }

    /// Whether nothing can change this state any more.
    pub fn is_terminal(&self) -> bool {
        self.kind().is_terminal()
    }
}

/// The name of a [`ReleaseState`], for messages and queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// [`ReleaseState::Staged`].
    Staged,
    /// [`ReleaseState::CoolingOff`].
    CoolingOff,
    /// [`ReleaseState::Live`].
    Live,
    /// [`ReleaseState::Rejected`].
    Rejected,
    /// [`ReleaseState::Expired`].
    Expired,
}

impl StateKind {
    /// Whether nothing can leave this state.
    pub fn is_terminal(self) -> bool {
        match self {
            StateKind::Staged | StateKind::CoolingOff => false,
            StateKind::Live | StateKind::Rejected | StateKind::Expired => true,
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            StateKind::Staged => "staged",
            StateKind::CoolingOff => "cooling off",
            StateKind::Live => "live",
            StateKind::Rejected => "rejected",
            StateKind::Expired => "expired",
        })
    }
}
