//! In-process API tests: the real router, SQLite in a temp dir, requests through `oneshot`,
//! an injectable clock and client address.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod accounts;
mod app;
mod gate;
mod packages;
mod provenance;
mod second_factor;
mod signatures;
mod webhooks;
