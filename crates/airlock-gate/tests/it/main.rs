//! Integration tests for `airlock-gate`: property tests over random event sequences, and the
//! persisted JSON shape.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod properties;
mod serialization;
