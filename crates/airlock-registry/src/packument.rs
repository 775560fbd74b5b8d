//! Rendering stored package state as npm's packument documents (protocol §1.1).

use airlock_npm::PackageName;
use airlock_store::{PackageState, Person, VersionRecord, format_time};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The two documents a packument GET can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Representation {
    /// `application/json`: everything.
    Full,
    /// `application/vnd.npm.install-v1+json` ("corgi"): what installers need.
    Abbreviated,
}

/// Fields kept in abbreviated version objects: the registry's documented list, plus what npm
/// copies into lockfiles (protocol §1.1).
const ABBREVIATED_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "engines",
    "_hasShrinkwrap",
    "os",
    "cpu",
    "libc",
    "funding",
    "license",
    "acceptDependencies",
];

/// Top-level fields npmjs copies from the latest version into the full document.
const FULL_TOP_LEVEL_FIELDS: &[&str] = &[
    "description",
    "homepage",
    "keywords",
    "repository",
    "bugs",
    "license",
    "author",
    "contributors",
];

/// Lifecycle scripts that run on install (npm's `hasInstallScript`).
const INSTALL_SCRIPTS: &[&str] = &["preinstall", "install", "postinstall"];

/// CouchDB-style revision string npm echoes back in write flows: `<n>-<hash>`.
#[must_use]
pub fn format_rev(name: &str, rev: i64) -> String {
    let digest = Sha256::digest(format!("{name}\n{rev}").as_bytes());
    format!("{rev}-{}", &hex::encode(digest)[..32])
}

fn person(p: &Person) -> Value {
    json!({ "name": p.name, "email": p.email })
}

/// The URL clients download a version's tarball from: `<base>@scope/lib/-/lib-1.0.0.tgz`.
#[must_use]
pub(crate) fn tarball_url(base_url: &str, name: &PackageName, version: &str) -> String {
    format!("{base_url}{name}/-/{}-{version}.tgz", name.bare_name())
}

fn dist(base_url: &str, name: &PackageName, v: &VersionRecord) -> Value {
    let mut dist = json!({
        "integrity": v.integrity,
        "shasum": v.shasum,
        "tarball": tarball_url(base_url, name, &v.version),
        "fileCount": v.file_count,
        "unpackedSize": v.unpacked_size,
    });
    // npmjs's shape: a list, so a registry can sign with more than one key at once.
    if let Some(signature) = &v.signature {
        dist["signatures"] = json!([{ "keyid": signature.keyid, "sig": signature.sig }]);
    }
    // Where `npm audit signatures` finds the verified provenance (protocol §6).
    if let Some(provenance) = &v.provenance {
        dist["attestations"] = json!({
            "url": attestations_url(base_url, name, &v.version),
            "provenance": { "predicateType": provenance.predicate_type },
        });
    }
    dist
}

/// `<base>-/npm/v1/attestations/@scope%2fname@1.0.0`, as npmjs spells it.
fn attestations_url(base_url: &str, name: &PackageName, version: &str) -> String {
    format!(
        "{base_url}-/npm/v1/attestations/{}@{version}",
        name.as_str().replacen('/', "%2f", 1)
    )
}

fn has_install_script(manifest: &Map<String, Value>) -> bool {
    manifest
        .get("scripts")
        .and_then(Value::as_object)
        .is_some_and(|scripts| INSTALL_SCRIPTS.iter().any(|s| scripts.contains_key(*s)))
}

fn full_version(
    base_url: &str,
    name: &PackageName,
    state: &PackageState,
    v: &VersionRecord,
) -> Value {
    let mut object = v.manifest.clone();
    object.remove("readme");
    object.remove("readmeFilename");
    object.insert("_id".into(), json!(format!("{name}@{}", v.version)));
    // A stored `_npmUser` was written by the registry (clients' are stripped at publish): a
    // trusted publisher's identity. Otherwise the publishing user.
    if !object.contains_key("_npmUser") {
        object.insert("_npmUser".into(), person(&v.publisher));
    }
    object.insert(
        "maintainers".into(),
        state.maintainers.iter().map(person).collect(),
    );
    if let Some(message) = &v.deprecated {
        object.insert("deprecated".into(), json!(message));
    }
    object.insert("dist".into(), dist(base_url, name, v));
    Value::Object(object)
}

fn abbreviated_version(base_url: &str, name: &PackageName, v: &VersionRecord) -> Value {
    let mut object = Map::new();
    for field in ABBREVIATED_VERSION_FIELDS {
        if let Some(value) = v.manifest.get(*field) {
            object.insert((*field).to_owned(), value.clone());
        }
    }
    if has_install_script(&v.manifest) {
        object.insert("hasInstallScript".into(), json!(true));
    }
    if let Some(message) = &v.deprecated {
        object.insert("deprecated".into(), json!(message));
    }
    object.insert("dist".into(), dist(base_url, name, v));
    Value::Object(object)
}

/// `time`: `created`, `modified` and the moment each live version went live.
fn time_map(state: &PackageState, live: &[&VersionRecord]) -> Value {
    let mut time = Map::new();
    time.insert("created".into(), json!(format_time(state.created_at)));
    time.insert("modified".into(), json!(format_time(state.modified_at)));
    for v in live {
        time.insert(v.version.clone(), json!(format_time(v.published_at)));
    }
    Value::Object(time)
}

/// Renders one representation of a package that has at least one live version.
#[must_use]
pub(crate) fn render(
    base_url: &str,
    name: &PackageName,
    state: &PackageState,
    representation: Representation,
) -> Value {
    let live: Vec<&VersionRecord> = state.versions.iter().filter(|v| v.is_live()).collect();
    let dist_tags = json!(state.dist_tags);
    match representation {
        Representation::Abbreviated => {
            let versions: Map<String, Value> = live
                .iter()
                .map(|v| (v.version.clone(), abbreviated_version(base_url, name, v)))
                .collect();
            json!({
                "name": name.as_str(),
                "modified": format_time(state.modified_at),
                "dist-tags": dist_tags,
                "versions": versions,
                "time": time_map(state, &live),
            })
        }
        Representation::Full => {
            let versions: Map<String, Value> = live
                .iter()
                .map(|v| (v.version.clone(), full_version(base_url, name, state, v)))
                .collect();
            let latest = state
                .dist_tags
                .get("latest")
                .and_then(|l| live.iter().find(|v| &v.version == l))
                .or(live.last());
            let mut doc = Map::new();
            doc.insert("_id".into(), json!(name.as_str()));
            doc.insert("_rev".into(), json!(format_rev(name.as_str(), state.rev)));
            doc.insert("name".into(), json!(name.as_str()));
            if let Some(latest) = latest {
                for field in FULL_TOP_LEVEL_FIELDS {
                    if let Some(value) = latest.manifest.get(*field) {
                        doc.insert((*field).to_owned(), value.clone());
                    }
                }
            }
            doc.insert("dist-tags".into(), dist_tags);
            doc.insert("versions".into(), Value::Object(versions));
            doc.insert("time".into(), time_map(state, &live));
            doc.insert(
                "maintainers".into(),
                state.maintainers.iter().map(person).collect(),
            );
            let readme = latest
                .and_then(|l| l.manifest.get("readme"))
                .cloned()
                .unwrap_or(json!(""));
            doc.insert("readme".into(), readme);
            if let Some(file) = latest.and_then(|l| l.manifest.get("readmeFilename")) {
                doc.insert("readmeFilename".into(), file.clone());
            }
            doc.insert("users".into(), json!({}));
            Value::Object(doc)
        }
    }
}
