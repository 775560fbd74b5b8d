//! Package fixtures: directories for `npm publish`, npm-shaped tarballs and publish bodies.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// `sha512-<base64>`, the SRI string npm puts in `dist.integrity`.
pub fn integrity_of(bytes: &[u8]) -> String {
    format!("sha512-{}", BASE64.encode(Sha512::digest(bytes)))
}

/// Lower-case hex sha1, npm's `dist.shasum`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// Deterministic, incompressible bytes (xorshift64*), for large tarballs.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The escaped form npm uses in paths: `@scope%2fname` for scoped names, the name otherwise.
pub fn escaped_name(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

/// Builds a `.tgz` the way `npm pack` does: entries under `package/`, mode 0644, mtime
/// 1985-10-26T08:15:00Z, uid/gid 0. `package.json` comes first, then `files` in order.
pub fn npm_tarball(package_json: &Value, files: &[(&str, &[u8])]) -> Vec<u8> {
    let pj = serde_json::to_vec_pretty(package_json).expect("JSON serialises");
    let mut entries: Vec<(String, &[u8])> = vec![("package/package.json".to_owned(), &pj)];
    for (path, data) in files {
        entries.push((format!("package/{path}"), data));
    }
    raw_tarball(&entries)
}

/// A gzipped tar with exactly these entries (paths used as given, for hostile tarballs).
pub fn raw_tarball(entries: &[(String, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(499_162_500);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the name bytes directly so hostile tarballs can be made.
        let name = path.as_bytes();
        assert!(
            name.len() <= 100,
            "tar entry name too long for this helper: {path}"
        );
        let raw = header.as_old_mut();
        raw.name = [0; 100];
        raw.name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, *data).expect("tar append to a Vec");
    }
    let tar = builder.into_inner().expect("tar finish");
    gzip(&tar)
}

/// gzip with npm's settings (level 9).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).expect("gzip to a Vec");
    enc.finish().expect("gzip finish")
}

/// Tarball bytes with their npm digests.
#[derive(Clone, Debug)]
pub struct Tarball {
    pub bytes: Vec<u8>,
}

impl Tarball {
    pub fn integrity(&self) -> String {
        integrity_of(&self.bytes)
    }
    pub fn shasum(&self) -> String {
        sha1_hex(&self.bytes)
    }
}

/// The pieces of an npm publish (`PUT /{escapedName}`) body, each of which a test may replace to
/// build a bad request. [`PublishBody::to_json`] assembles them as npm 11 does (protocol §3.1).
#[derive(Clone, Debug)]
pub struct PublishBody {
    pub name: String,
    pub version: String,
    pub tag: String,
    /// The version object without `_id` and `dist` (those are added by `to_json`).
    pub manifest: Value,
    /// The `.tgz` sent as the attachment.
    pub tarball: Vec<u8>,
}

impl PublishBody {
    /// A valid publish of `name@version`: manifest `{name, version, description, main, license}`
    /// and a tarball holding that package.json, an `index.js` naming the version and a README.
    pub fn new(name: &str, version: &str) -> PublishBody {
        let manifest = json!({
            "name": name,
            "version": version,
            "description": format!("test package {name}"),
            "main": "index.js",
            "license": "MIT",
        });
        let index = index_js(name, version);
        let readme = format!("# {name}\n");
        let tarball = npm_tarball(
            &manifest,
            &[
                ("index.js", index.as_bytes()),
                ("README.md", readme.as_bytes()),
            ],
        );
        PublishBody {
            name: name.to_owned(),
            version: version.to_owned(),
            tag: "latest".to_owned(),
            manifest,
            tarball,
        }
    }

    /// Like [`PublishBody::new`] with an extra file of `size` incompressible bytes (a big tarball).
    pub fn with_payload(name: &str, version: &str, seed: u64, size: usize) -> PublishBody {
        let mut body = PublishBody::new(name, version);
        let payload = pseudo_random_bytes(seed, size);
        let index = index_js(name, version);
        body.tarball = npm_tarball(
            &body.manifest,
            &[("index.js", index.as_bytes()), ("payload.bin", &payload)],
        );
        body
    }

    pub fn tag(mut self, tag: &str) -> PublishBody {
        self.tag = tag.to_owned();
        self
    }

    /// Rebuilds the tarball from the current manifest plus `files`.
    pub fn with_files(mut self, files: &[(&str, &[u8])]) -> PublishBody {
        self.tarball = npm_tarball(&self.manifest, files);
        self
    }

    pub fn tarball(&self) -> Tarball {
        Tarball {
            bytes: self.tarball.clone(),
        }
    }

    /// The request path: `/` + escaped name.
    pub fn path(&self) -> String {
        format!("/{}", escaped_name(&self.name))
    }

    /// The attachment key npm uses: `<full name>-<version>.tgz`.
    pub fn attachment_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }

    /// The conventional tarball path on the registry: `/{name}/-/{basename}-{version}.tgz`.
    pub fn tarball_path(&self) -> String {
        let base = self.name.rsplit('/').next().unwrap_or(&self.name);
        format!("/{}/-/{}-{}.tgz", self.name, base, self.version)
    }

    /// The body as npm 11 sends it, with `dist.tarball` built the way npm builds it from
    /// `registry_url` (which the server must not trust).
    pub fn to_json(&self, registry_url: &str) -> Value {
        let mut version = match &self.manifest {
            Value::Object(m) => m.clone(),
            other => panic!("manifest must be an object, not {other}"),
        };
        version.insert("readme".into(), json!(format!("# {}\n", self.name)));
        version.insert("readmeFilename".into(), json!("README.md"));
        version.insert(
            "_id".into(),
            json!(format!("{}@{}", self.name, self.version)),
        );
        version.insert("_nodeVersion".into(), json!("20.20.2"));
        version.insert("_npmVersion".into(), json!("11.19.1"));
        version.insert(
            "dist".into(),
            json!({
                "integrity": integrity_of(&self.tarball),
                "shasum": sha1_hex(&self.tarball),
                "tarball": format!("{}/{}/-/{}-{}.tgz", registry_url.trim_end_matches('/'), self.name, self.name, self.version),
            }),
        );
        let mut versions = Map::new();
        versions.insert(self.version.clone(), Value::Object(version));
        let mut tags = Map::new();
        tags.insert(self.tag.clone(), json!(self.version));
        let mut attachments = Map::new();
        attachments.insert(
            self.attachment_name(),
            json!({
                "content_type": "application/octet-stream",
                "data": BASE64.encode(&self.tarball),
                "length": self.tarball.len(),
            }),
        );
        json!({
            "_id": self.name,
            "name": self.name,
            "description": self.manifest.get("description").cloned().unwrap_or(Value::Null),
            "dist-tags": tags,
            "versions": versions,
            "access": null,
            "_attachments": attachments,
        })
    }
}

/// The `index.js` of fixture packages: unique per name and version, so installed bytes can be
/// checked.
pub fn index_js(name: &str, version: &str) -> String {
    format!("module.exports = {:?};\n", format!("{name}@{version}"))
}

/// A package directory for `npm publish`: package.json, index.js and README.md in a temp dir.
/// Setters rewrite the files at once.
pub struct PackageDir {
    dir: tempfile::TempDir,
    manifest: Map<String, Value>,
}

impl PackageDir {
    pub fn new(name: &str, version: &str) -> PackageDir {
        let dir = tempfile::Builder::new()
            .prefix("airlock-pkg-")
            .tempdir()
            .expect("temp dir");
        let mut manifest = Map::new();
        manifest.insert("name".into(), json!(name));
        manifest.insert("version".into(), json!(version));
        manifest.insert("description".into(), json!(format!("test package {name}")));
        manifest.insert("main".into(), json!("index.js"));
        manifest.insert("license".into(), json!("MIT"));
        let pkg = PackageDir { dir, manifest };
        pkg.write();
        pkg
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn name(&self) -> String {
        self.manifest["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn version(&self) -> String {
        self.manifest["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The `index.js` content for the current name and version.
    pub fn index_js(&self) -> String {
        index_js(&self.name(), &self.version())
    }

    pub fn set_version(&mut self, version: &str) -> &mut Self {
        self.set("version", json!(version))
    }

    pub fn description(&mut self, text: &str) -> &mut Self {
        self.set("description", json!(text))
    }

    pub fn dependency(&mut self, name: &str, range: &str) -> &mut Self {
        let deps = self
            .manifest
            .entry("dependencies")
            .or_insert_with(|| json!({}));
        deps.as_object_mut()
            .expect("dependencies is an object")
            .insert(name.into(), json!(range));
        self.write();
        self
    }

    /// Sets any top-level package.json field.
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        self.manifest.insert(key.into(), value);
        self.write();
        self
    }

    fn write(&self) {
        let dir = self.dir.path();
        let pj = serde_json::to_string_pretty(&Value::Object(self.manifest.clone())).expect("JSON");
        fs::write(dir.join("package.json"), pj + "\n").expect("write package.json");
        fs::write(dir.join("index.js"), self.index_js()).expect("write index.js");
        fs::write(
            dir.join("README.md"),
            format!("# {}\n\nA test package.\n", self.name()),
        )
        .expect("write README");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::json;

    use super::*;

    fn entries(tgz: &[u8]) -> Vec<(String, Vec<u8>, u64)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let mtime = e.header().mtime().expect("mtime");
                let mut data = Vec::new();
                e.read_to_end(&mut data).expect("read");
                (path, data, mtime)
            })
            .collect()
    }

    #[test]
    fn tarballs_are_npm_shaped_and_deterministic() {
        let pj = json!({"name": "x", "version": "1.0.0"});
        let a = npm_tarball(&pj, &[("index.js", b"1")]);
        assert_eq!(a, npm_tarball(&pj, &[("index.js", b"1")]));
        let e = entries(&a);
        assert_eq!(e[0].0, "package/package.json");
        assert_eq!(serde_json::from_slice::<Value>(&e[0].1).expect("json"), pj);
        assert_eq!(
            e[1],
            ("package/index.js".to_owned(), b"1".to_vec(), 499_162_500)
        );
        let evil = raw_tarball(&[("package/../../evil".to_owned(), b"x")]);
        assert_eq!(entries(&evil)[0].0, "package/../../evil");
    }

    #[test]
    fn publish_bodies_match_the_protocol() {
        let p = PublishBody::new("@s/lib", "1.2.3").tag("next");
        let body = p.to_json("http://127.0.0.1:1/");
        assert_eq!(p.path(), "/@s%2flib");
        assert_eq!(p.tarball_path(), "/@s/lib/-/lib-1.2.3.tgz");
        assert_eq!(body["_id"], "@s/lib");
        assert_eq!(body["dist-tags"], json!({"next": "1.2.3"}));
        let v = &body["versions"]["1.2.3"];
        assert_eq!(v["_id"], "@s/lib@1.2.3");
        assert_eq!(
            v["dist"]["tarball"],
            "http://127.0.0.1:1/@s/lib/-/@s/lib-1.2.3.tgz"
        );
        let att = &body["_attachments"]["@s/lib-1.2.3.tgz"];
        let data = BASE64
            .decode(att["data"].as_str().expect("data"))
            .expect("base64");
        assert_eq!(att["length"], data.len());
        assert_eq!(v["dist"]["integrity"], integrity_of(&data));
        assert_eq!(v["dist"]["shasum"], sha1_hex(&data));
        let e = entries(&data);
        let pj: Value = serde_json::from_slice(&e[0].1).expect("json");
        assert_eq!(
            (pj["name"].as_str(), pj["version"].as_str()),
            (Some("@s/lib"), Some("1.2.3"))
        );
    }

    #[test]
    fn integrity_is_sri_sha512() {
        assert_eq!(
            integrity_of(b""),
            "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
        );
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(pseudo_random_bytes(7, 100).len(), 100);
        assert_ne!(pseudo_random_bytes(7, 64), pseudo_random_bytes(8, 64));
    }
}
