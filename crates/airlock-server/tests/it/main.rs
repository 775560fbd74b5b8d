//! In-process API tests: the real router, SQLite in a temp dir, requests through `oneshot`,
//! an injectable clock and client address.

mod accounts;
mod app;
mod packages;
mod second_factor;
