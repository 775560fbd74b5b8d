//! Test support for Airlock's end-to-end tests: spawn the `airlock` binary on `127.0.0.1:0`,
//! talk raw HTTP to it, drive the real npm CLI (and pnpm, yarn 4) in isolated homes, build
//! npm-shaped tarballs and publish bodies, and run a loopback OIDC issuer for trusted publishing.
//!
//! Everything here is blocking `std` code: tests run as separate processes under nextest, and each
//! test owns its own server.

mod command;
mod http;
mod npm;
mod oidc;
mod package;
mod server;
pub mod sigstore;
mod tools;

pub use command::{CmdOutput, Running};
pub use http::{HttpRequest, HttpResponse};
pub use npm::NpmEnv;
pub use oidc::{
    GithubTokenRequest, IssuerKey, JwtAlg, MintOptions, OidcIssuer, github_claims, unix_now,
};
pub use package::{
    PackageDir, PublishBody, Tarball, escaped_name, gzip, index_js, integrity_of, npm_tarball,
    pseudo_random_bytes, raw_tarball, sha1_hex,
};
pub use server::{Server, ServerOptions};
pub use tools::{
    ensure_node22, ensure_pnpm, ensure_sigstore_js, ensure_yarn, node22_prefix, repo_root,
    sigstore_js_prefix, tools_dir,
};
