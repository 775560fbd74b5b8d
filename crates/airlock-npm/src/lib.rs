#![doc = include_str!("../README.md")]

mod display;
pub mod integrity;
pub mod name;
pub mod publish;
pub mod tag;
pub mod tarball;
pub mod trust;
pub mod version;

#[cfg(test)]
mod test_support;

pub use integrity::{IntegrityError, TarballDigests, check_integrity, check_shasum};
pub use name::{NameError, PackageName};
pub use publish::{
    Access, ProvenanceAttachment, PublishError, UnknownAccess, VerifiedPublish, parse_publish,
};
pub use tag::{DistTag, TagError};
pub use tarball::{TarballError, TarballInfo, TarballLimits, inspect};
pub use trust::{
    Permission, Provider, TrustError, TrustRequest, TrustRule, parse_trust_request, ref_matches,
};
pub use version::{VersionError, parse_version};

/// The `semver` crate whose [`semver::Version`] this crate's API uses.
pub use semver;
