#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod actor;
pub mod digest;
mod display;
pub mod event;
pub mod machine;
pub mod policy;
pub mod refusal;
pub mod risk;
pub mod state;

pub use actor::{Actor, ActorId, ActorKind, SecondFactor};
pub use digest::{DigestError, TarballSha512};
pub use event::{EventKind, GateEvent};
pub use machine::{Effect, Notice, Transition, apply, due, replay};
pub use policy::{
    DEFAULT_STAGE_TTL, LayerError, MAX_APPROVALS, MAX_COOLING_OFF, MAX_STAGE_TTL, MIN_STAGE_TTL,
    PolicyError, PolicyLayer, PolicyLayers, PolicyPatch, ProvenanceChange, PublishMode,
    ReleasePolicy,
};
pub use refusal::GateRefusal;
pub use risk::{ProvenanceIdentity, RiskSignal, escalate, provenance_signals};
pub use state::{Approval, ReleaseState, StagedRelease, StateKind};
