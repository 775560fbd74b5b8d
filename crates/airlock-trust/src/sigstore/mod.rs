//! Offline verification of Sigstore bundles (npm provenance, `airlock verify-bundle`), wrapping
//! the `sigstore-verify` crate behind our own types: [`TrustedRoots`] in, [`VerifiedBundle`] out.

mod error;
mod roots;
#[cfg(test)]
mod tests;
mod verify;

pub use error::SigstoreError;
pub use roots::{PUBLIC_GOOD_TRUSTED_ROOT, STAGING_TRUSTED_ROOT, TrustedRoots};
pub use verify::{
    Artifact, CertificateIdentity, InTotoStatement, LogEntry, PublicKey, Signer, SignerPolicy,
    StatementSubject, VerifiedBundle, npm_purl,
};
