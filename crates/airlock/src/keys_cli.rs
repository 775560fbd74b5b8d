//! `airlock keys`: the registry's signing keys (npm's registry signatures, checked by
//! `npm audit signatures`), kept in `registry-keys.json` in the data directory.

use std::path::Path;
use std::time::Duration;

use airlock_registry::{Registry, SigningKeys, read_keyring, rotate_keyring};
use airlock_store::{KeyringFile, format_time};
use airlock_trust::Keyring;
use anyhow::Context;
use clap::Subcommand;
use time::OffsetDateTime;

use crate::classify;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new signing key current; the old one stays listed, expiring now, so existing
    /// signatures keep verifying. A running server signs with the new key from its next release.
    Rotate,
    /// List the signing keys: keyid, created, and `current` or when it expired
    List,
}

fn print_keys(keyring: &Keyring) {
    for key in keyring.keys() {
        println!(
            "{}\t{}\t{}",
            key.public.keyid(),
            format_time(key.created),
            key.expires.map_or_else(
                || "current".to_owned(),
                |e| format!("expired {}", format_time(e))
            )
        );
    }
}

pub(crate) fn run(data_dir: &Path, command: KeysCommand) -> anyhow::Result<()> {
    let file = KeyringFile::in_data_dir(data_dir);
    match command {
        KeysCommand::Rotate => {
            std::fs::create_dir_all(data_dir).with_context(|| {
                format!("could not create the data directory {}", data_dir.display())
            })?;
            let keyring = rotate_keyring(&file, OffsetDateTime::now_utc()).map_err(classify)?;
            print_keys(&keyring);
        }
        KeysCommand::List => match read_keyring(&file).map_err(classify)? {
            Some(keyring) => print_keys(&keyring),
            None => eprintln!(
                "no signing key yet in {}: `airlock serve` creates one on its first start",
                data_dir.display()
            ),
        },
    }
    Ok(())
}

/// For `airlock serve`: the data directory's keyring (created on first start), then signatures
/// for every live version that lacks one npm accepts (versions from before the registry had a
/// key), before the first request is served.
pub(crate) async fn attach_signing_keys(
    registry: Registry,
    data_dir: &Path,
) -> anyhow::Result<Registry> {
    let keys = SigningKeys::open(
        KeyringFile::in_data_dir(data_dir),
        OffsetDateTime::now_utc(),
    )
    .map_err(classify)
    .context("could not open the registry signing keys")?;
    let registry = registry.with_signing_keys(keys);
    registry
        .sign_versions()
        .await
        .map_err(classify)
        .context("could not sign the versions that have no registry signature")?;
    Ok(registry)
}

/// Re-signs after `airlock keys rotate` rewrote the keyring: one `stat` per tick otherwise.
pub(crate) fn spawn_signing_job(registry: Registry, tick: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = registry.refresh_signatures().await {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "registry signature job failed"
                );
            }
        }
    });
}
