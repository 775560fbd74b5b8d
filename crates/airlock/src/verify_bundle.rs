//! `airlock verify-bundle`: a standalone, offline Sigstore bundle verifier that speaks the
//! sigstore-conformance CLI protocol (`verify-bundle [--staging] --bundle FILE
//! (--certificate-identity ID --certificate-oidc-issuer URL | --key KEY.pem)
//! [--trusted-root FILE] FILE_OR_sha256:DIGEST`).

use std::path::{Path, PathBuf};

use airlock_trust::sigstore::{Artifact, PublicKey, Signer, SignerPolicy, TrustedRoots};
use anyhow::Context;
use clap::Args;
use time::format_description::well_known::Rfc3339;

use crate::UserError;

#[derive(Args)]
pub(crate) struct VerifyBundleArgs {
    /// Verify against the Sigstore staging instance instead of production (its embedded root,
    /// unless --trusted-root is given)
    #[arg(long)]
    staging: bool,
    /// The Sigstore bundle (JSON, v0.1 to v0.3)
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The exact certificate identity (SAN) that must have signed
    #[arg(
        long,
        value_name = "ID",
        requires = "certificate_oidc_issuer",
        required_unless_present = "key"
    )]
    certificate_identity: Option<String>,
    /// The OIDC issuer the signing certificate must have been issued for
    #[arg(long, value_name = "URL", requires = "certificate_identity")]
    certificate_oidc_issuer: Option<String>,
    /// A PEM public key, for bundles signed with a managed key instead of a certificate
    #[arg(long, value_name = "KEY.pem", conflicts_with_all = ["certificate_identity", "certificate_oidc_issuer"])]
    key: Option<PathBuf>,
    /// The trusted_root.json to verify against, instead of the embedded public-good (or staging)
    /// root
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// The signed file, or `sha256:<64 hex>` of it
    #[arg(value_name = "FILE_OR_sha256:DIGEST")]
    artifact: String,
}

/// Runs the command: `Ok` means the bundle verified (exit 0); a refusal is a `UserError` (exit 1).
pub(crate) fn run(args: VerifyBundleArgs) -> anyhow::Result<()> {
    let roots = match &args.trusted_root {
        Some(path) => TrustedRoots::from_file(path).map_err(refused)?,
        // The embedded roots are part of the binary: failing to load them is a bug (exit 2).
        None if args.staging => TrustedRoots::staging()?,
        None => TrustedRoots::public_good()?,
    };
    let policy = match (
        &args.key,
        args.certificate_identity,
        args.certificate_oidc_issuer,
    ) {
        (Some(key), _, _) => {
            let pem = read(key, "public key")?;
            let pem = String::from_utf8(pem)
                .map_err(|_| user(format!("{} is not a PEM file", key.display())))?;
            SignerPolicy::PublicKey(PublicKey::from_pem(&pem).map_err(refused)?)
        }
        (None, Some(identity), Some(issuer)) => SignerPolicy::Identity { identity, issuer },
        (None, _, _) => {
            return Err(user(
                "give either --certificate-identity and --certificate-oidc-issuer, or --key"
                    .to_owned(),
            ));
        }
    };
    let bundle = read(&args.bundle, "bundle")?;
    let artifact_bytes;
    let artifact = match digest_argument(&args.artifact) {
        Some(digest) => digest.map_err(refused)?,
        None => {
            artifact_bytes = read(Path::new(&args.artifact), "artifact")?;
            Artifact::Bytes(&artifact_bytes)
        }
    };
    let verified = roots.verify(&bundle, artifact, &policy).map_err(refused)?;
    match verified.signer() {
        Signer::Certificate(cert) => println!(
            "verified: signed by {} (issuer {})",
            cert.san,
            cert.issuer.as_deref().unwrap_or("unknown")
        ),
        Signer::PublicKey => println!("verified: signed by the given public key"),
    }
    for entry in verified.log_entries() {
        match entry.integrated_time.map(|time| time.format(&Rfc3339)) {
            Some(Ok(time)) => println!("logged: index {} at {time}", entry.log_index),
            _ => println!("logged: index {}", entry.log_index),
        }
    }
    if let Some(statement) = verified.statement() {
        println!("statement: {}", statement.predicate_type);
    }
    Ok(())
}

/// The protocol's rule: `sha256:<hex>` that is not an existing file is a digest; anything else
/// is a path.
fn digest_argument(
    argument: &str,
) -> Option<Result<Artifact<'static>, airlock_trust::sigstore::SigstoreError>> {
    if Path::new(argument).exists() {
        return None;
    }
    Artifact::parse_digest(argument)
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("could not read the {what} {}", path.display()))
        .map_err(|e| anyhow::Error::new(UserError(e)))
}

fn refused(e: airlock_trust::sigstore::SigstoreError) -> anyhow::Error {
    anyhow::Error::new(UserError(anyhow::Error::new(e)))
}

fn user(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError(anyhow::anyhow!(message)))
}
