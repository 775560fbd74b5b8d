//! Who stages, approves and rejects, and the second factor an approver proved presence with.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable identifier of a principal (a user or a trusted-publisher identity), as the registry
/// assigns it. The gate compares actors by this id only: two events with the same id are the same
/// person, whatever name they carry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorId(String);

impl ActorId {
    /// Wraps a registry-assigned id.
    pub fn new(id: impl Into<String>) -> ActorId {
        ActorId(id.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Whether an actor is a person or a machine identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A human user signed in to the registry (with a password, a session or their own token).
    User,
    /// A CI identity: a trusted publisher exchanging an OIDC ID token, or an automation token.
    /// It may stage a release but can never approve one.
    Ci,
}

/// A principal taking part in a release, as recorded in states and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The stable id the gate compares.
    pub id: ActorId,
    /// A name for people to read (a user name, or the CI identity such as a repository and
    /// workflow); recorded, never compared.
    pub name: String,
    /// A person or a CI identity.
    pub kind: ActorKind,
}

impl Actor {
    /// A human user.
    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Actor {
        Actor {
            id: ActorId::new(id),
            name: name.into(),
            kind: ActorKind::User,
        }
    }

    /// A CI identity.
    pub fn ci(id: impl Into<String>, name: impl Into<String>) -> Actor {
        Actor {
            id: ActorId::new(id),
            name: name.into(),
            kind: ActorKind::Ci,
        }
    }

    /// Whether this is a human user.
    pub fn is_user(&self) -> bool {
        match self.kind {
            ActorKind::User => true,
            ActorKind::Ci => false,
        }
    }
}

/// The second factor an approver answered. The gate records it; checking the code is the
/// caller's job (`airlock-trust`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SecondFactor {
    /// A time-based one-time password typed at the terminal (`npm ... --otp`).
    #[serde(rename = "totp")]
    Totp,
    /// A WebAuthn assertion (security key or passkey) made on the approval page.
    #[serde(rename = "webauthn")]
    WebAuthn,
    /// One of the user's single-use recovery codes.
    #[serde(rename = "recovery_code")]
    RecoveryCode,
    /// A one-time password entered on the web page npm opens (`authUrl`/`doneUrl`).
    #[serde(rename = "web_otp")]
    WebOtp,
}

impl fmt::Display for SecondFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            SecondFactor::Totp => "one-time password",
            SecondFactor::WebAuthn => "security key",
            SecondFactor::RecoveryCode => "recovery code",
            SecondFactor::WebOtp => "one-time password on the web",
        })
    }
}
