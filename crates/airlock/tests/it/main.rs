//! End-to-end tests: the real `airlock` binary, spawned on 127.0.0.1:0, driven by the real npm CLI
//! (and pnpm, yarn 4) in isolated homes, plus raw HTTP for what npm never sends.
//!
//! One integration-test binary (`it`), one module per area; every test starts its own server.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod admin;
mod auth;
mod authz;
mod bad_input;
mod common;
mod conformance;
mod durability;
mod gate;
mod install;
mod manage;
mod provenance;
mod publish;
mod serve;
mod signatures;
mod trusted_publishing;
mod webhooks;
mod wire;
