//! Integration tests for `airlock-gate`: property tests over random event sequences, and the
//! persisted JSON shape.

mod properties;
mod serialization;
