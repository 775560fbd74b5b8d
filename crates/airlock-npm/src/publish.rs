//! The `npm publish` body (`PUT /{name}` with `_attachments`), checked into a [`VerifiedPublish`].

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::display::shown;
use crate::integrity::{IntegrityError, TarballDigests, check_integrity, check_shasum};
use crate::name::PackageName;
use crate::tag::{DistTag, TagError};
use crate::tarball::{TarballError, TarballInfo, TarballLimits, inspect};
use crate::version::{VersionError, parse_version};

/// Who may install a package, as `npm publish --access` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone may install it.
    Public,
    /// Only users granted access may install it (scoped packages only). `private` is an alias.
    #[serde(alias = "private")]
    Restricted,
}

impl Access {
    /// Parses `public`, `restricted` or `private` (npm's alias of `restricted`).
    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "public" => Some(Access::Public),
            "restricted" | "private" => Some(Access::Restricted),
            _ => None,
        }
    }

    /// `public` or `restricted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an access level.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("access level `{value}` must be `public`, `restricted` or `private`")]
pub struct UnknownAccess {
    value: String,
}

impl FromStr for Access {
    type Err = UnknownAccess;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Access::parse(s).ok_or_else(|| UnknownAccess { value: shown(s) })
    }
}

/// The `<name>-<version>.sigstore` attachment: a Sigstore bundle with the package's provenance,
/// kept as sent so it can be verified (and served) later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceAttachment {
    /// The bundle's media type, e.g. `application/vnd.dev.sigstore.bundle.v0.3+json`.
    pub content_type: String,
    /// The bundle JSON exactly as sent (npm sends it as a string, not base64).
    pub bundle_json: String,
}

/// A publish body that passed every check in [`parse_publish`].
#[derive(Clone)]
pub struct VerifiedPublish {
    /// The package name (equal to the one in the URL).
    pub name: PackageName,
    /// The one version being published.
    pub version: semver::Version,
    /// The one dist-tag to point at it.
    pub tag: DistTag,
    /// The requested access level; `None` when the body has `"access": null` or none, which
    /// means "keep the current level, public for a new package".
    pub access: Option<Access>,
    /// The body's version object as sent, minus its `dist` (whose `tarball` URL is not to be
    /// trusted and whose digests the registry computes itself).
    pub manifest: Map<String, Value>,
    /// The tarball bytes, decoded from the attachment.
    pub tarball: Vec<u8>,
    /// The tarball's digests, computed here.
    pub digests: TarballDigests,
    /// What the tarball contains.
    pub tarball_info: TarballInfo,
    /// The provenance bundle, when one was attached.
    pub provenance: Option<ProvenanceAttachment>,
}

impl fmt::Debug for VerifiedPublish {
    /// Like a derived `Debug`, but shows the tarball's length instead of its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedPublish")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("tag", &self.tag)
            .field("access", &self.access)
            .field("manifest", &self.manifest)
            .field("tarball", &format_args!("<{} bytes>", self.tarball.len()))
            .field("digests", &self.digests)
            .field("tarball_info", &self.tarball_info)
            .field("provenance", &self.provenance)
            .finish()
    }
}

/// Why a publish body was refused.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The body is not JSON.
    #[error(
        "the publish body is not valid JSON (line {line}, column {column}); publish with the npm CLI"
    )]
    InvalidJson {
        /// Where parsing failed, 1-based.
        line: usize,
        /// Where parsing failed, 1-based.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The body is JSON but not an object.
    #[error("the publish body must be a JSON object")]
    BodyNotObject,
    /// A required field is absent (or `null`).
    #[error("the publish body has no `{field}`")]
    MissingField {
        /// The field's path, e.g. `versions["1.0.0"].dist`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` in the publish body must be {expected}")]
    WrongType {
        /// The field's path.
        field: String,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// A name in the body differs from the package name in the URL.
    #[error(
        "`{field}` in the publish body is `{found}`, but the request is for package `{expected}`; the body's name must match the URL"
    )]
    NameMismatch {
        /// The field's path (`name`, `_id` or `versions["1.0.0"].name`).
        field: String,
        /// What the body says (escaped for display).
        found: String,
        /// The name from the URL.
        expected: PackageName,
    },
    /// `versions` does not hold exactly one version.
    #[error(
        "the publish body must contain exactly one version in `versions`, not {count}; publish one version at a time"
    )]
    VersionCount {
        /// How many it holds.
        count: usize,
    },
    /// The key of `versions` is not a valid version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The version object's `version` differs from its key in `versions`.
    #[error("`versions[\"{key}\"].version` is `{found}`; it must equal its key `{key}`")]
    VersionFieldMismatch {
        /// The key in `versions`.
        key: String,
        /// The object's `version` (escaped for display).
        found: String,
    },
    /// `dist-tags` does not hold exactly one tag.
    #[error(
        "the publish body must contain exactly one tag in `dist-tags`, not {count}; npm sends the one given with `--tag` (default `latest`)"
    )]
    TagCount {
        /// How many it holds.
        count: usize,
    },
    /// The dist-tag is not valid.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The dist-tag points at another version than the one published.
    #[error("dist-tag `{tag}` points at `{target}`, but the published version is `{version}`")]
    TagTarget {
        /// The tag.
        tag: DistTag,
        /// What it points at (escaped for display).
        target: String,
        /// The published version.
        version: semver::Version,
    },
    /// `access` is not `public`, `restricted`, `private` or `null`.
    #[error("`access` must be `public`, `restricted` or null, not `{value}`")]
    InvalidAccess {
        /// The value as sent (escaped for display; JSON for non-strings).
        value: String,
    },
    /// Restricted access was asked for an unscoped package.
    #[error(
        "unscoped package `{name}` cannot be restricted (private); publish it with `--access public`, or under a scope like `@scope/{name}`"
    )]
    RestrictedUnscoped {
        /// The package.
        name: PackageName,
    },
    /// `_attachments` is empty.
    #[error(
        "`_attachments` is empty; the publish body must include the package tarball `{expected}`"
    )]
    NoAttachments {
        /// The attachment key expected.
        expected: String,
    },
    /// `_attachments` holds a key other than the tarball and its provenance.
    #[error(
        "unexpected attachment `{key}`; only the tarball `{expected}` and its `.sigstore` provenance bundle may be attached"
    )]
    UnexpectedAttachment {
        /// The unexpected key (escaped for display).
        key: String,
        /// The tarball key expected.
        expected: String,
    },
    /// `_attachments` has no tarball for this name and version.
    #[error(
        "`_attachments` has no `{expected}`; the tarball must be attached under the package's name and version"
    )]
    MissingTarball {
        /// The attachment key expected.
        expected: String,
    },
    /// The tarball's `data` is not standard base64.
    #[error("attachment `{attachment}` is not valid base64")]
    InvalidBase64 {
        /// The attachment key.
        attachment: String,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The tarball's `length` disagrees with its decoded data.
    #[error(
        "attachment `{attachment}` declares a length of {declared} bytes but its data decodes to {actual} bytes; the upload was cut short or altered, so publish again"
    )]
    LengthMismatch {
        /// The attachment key.
        attachment: String,
        /// The declared `length`.
        declared: u64,
        /// The decoded length.
        actual: u64,
    },
    /// The version's `dist` has neither `integrity` nor `shasum`.
    #[error(
        "`versions[\"{version}\"].dist` has neither `integrity` nor `shasum`; publish with the npm CLI, which sets both"
    )]
    MissingChecksum {
        /// The published version.
        version: semver::Version,
    },
    /// `dist.integrity` or `dist.shasum` does not match the tarball.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// The tarball itself was refused.
    #[error(transparent)]
    Tarball(#[from] TarballError),
    /// The tarball's `package.json` names another package.
    #[error(
        "the tarball's package.json has {}, but the package published is `{published}`; pack and publish the same package",
        describe("name", .tarball)
    )]
    TarballNameMismatch {
        /// The tarball's `name` (escaped for display), `None` when absent or not a string.
        tarball: Option<String>,
        /// The published name.
        published: PackageName,
    },
    /// The tarball's `package.json` has another version.
    #[error(
        "the tarball's package.json has {}, but the version published is `{published}`; pack and publish the same version",
        describe("version", .tarball)
    )]
    TarballVersionMismatch {
        /// The tarball's `version` (escaped for display), `None` when absent or not a string.
        tarball: Option<String>,
        /// The published version.
        published: semver::Version,
    },
}

/// `name `x`` or `no `name``, for the tarball mismatch messages.
fn describe(field: &str, value: &Option<String>) -> String {
    match value {
        Some(value) => format!("{field} `{value}`"),
        None => format!("no `{field}`"),
    }
}

/// Parses and checks an npm publish body (`PUT /{name}` with `_attachments`, protocol §3.1),
/// given the package name from the URL path.
///
/// Checked, in this order, each refusal with its own [`PublishError`] variant:
///
/// 1. the body is a JSON object;
/// 2. `name`, and `_id` when present, equal `url_name`;
/// 3. `versions` has exactly one entry, whose key is a valid version ([`parse_version`]) equal
///    to the object's `version`, and whose `name` equals `url_name`;
/// 4. `dist-tags` has exactly one entry, a valid [`DistTag`] pointing at that version;
/// 5. `access` is absent, `null`, `public`, `restricted` or `private`, and not restricted for an
///    unscoped name;
/// 6. `_attachments` holds exactly the tarball `<name>-<version>.tgz` (full name, scope
///    included) and optionally `<name>-<version>.sigstore`, nothing else; the tarball's `data` is
///    standard base64 whose decoded length equals `length` when that is present;
/// 7. the version's `dist.integrity` (when present) and `dist.shasum` (when present) match the
///    tarball, and at least one of them is present;
/// 8. the tarball passes [`inspect`] with `limits`, and its package.json's `name` and `version`
///    are the published ones (whitespace and a leading `v` or `=` in the tarball's version are
///    tolerated, as npm itself normalises them when it builds the body).
pub fn parse_publish(
    url_name: &PackageName,
    body: &[u8],
    limits: &TarballLimits,
) -> Result<VerifiedPublish, PublishError> {
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(body)) => body,
        Ok(_) => return Err(PublishError::BodyNotObject),
        Err(source) => {
            return Err(PublishError::InvalidJson {
                line: source.line(),
                column: source.column(),
                source,
            });
        }
    };

    check_name(&body, "name", "name", url_name, true)?;
    check_name(&body, "_id", "_id", url_name, false)?;

    // The version.
    let versions = object_field(&body, "versions", "versions")?;
    let (key, manifest) = single_entry(versions).ok_or(PublishError::VersionCount {
        count: versions.len(),
    })?;
    let version = parse_version(key)?;
    let key_path = format!("versions[\"{key}\"]");
    let Value::Object(manifest) = manifest else {
        return Err(PublishError::WrongType {
            field: key_path,
            expected: "an object",
        });
    };
    let found = string_field(manifest, "version", &format!("{key_path}.version"))?;
    if found != key {
        return Err(PublishError::VersionFieldMismatch {
            key: key.to_owned(),
            found: shown(found),
        });
    }
    check_name(
        manifest,
        "name",
        &format!("{key_path}.name"),
        url_name,
        true,
    )?;

    // The tag.
    let dist_tags = object_field(&body, "dist-tags", "dist-tags")?;
    let (tag, target) = single_entry(dist_tags).ok_or(PublishError::TagCount {
        count: dist_tags.len(),
    })?;
    let tag = DistTag::parse(tag)?;
    let tag_path = format!("dist-tags[\"{tag}\"]");
    let target = target.as_str().ok_or_else(|| PublishError::WrongType {
        field: tag_path,
        expected: "a version string",
    })?;
    if target != key {
        return Err(PublishError::TagTarget {
            tag,
            target: shown(target),
            version,
        });
    }

    // Access.
    let access = match body.get("access") {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) => {
            Some(
                Access::parse(value).ok_or_else(|| PublishError::InvalidAccess {
                    value: shown(value),
                })?,
            )
        }
        Some(other) => {
            return Err(PublishError::InvalidAccess {
                value: shown(&other.to_string()),
            });
        }
    };
    if access == Some(Access::Restricted) && url_name.scope().is_none() {
        return Err(PublishError::RestrictedUnscoped {
            name: url_name.clone(),
        });
    }

    // Attachments.
    let tarball_key = format!("{url_name}-{version}.tgz");
    let provenance_key = format!("{url_name}-{version}.sigstore");
    let attachments = object_field(&body, "_attachments", "_attachments")?;
    if attachments.is_empty() {
        return Err(PublishError::NoAttachments {
            expected: tarball_key,
        });
    }
    if let Some(key) = attachments
        .keys()
        .find(|key| **key != tarball_key && **key != provenance_key)
    {
        return Err(PublishError::UnexpectedAttachment {
            key: shown(key),
            expected: tarball_key,
        });
    }
    let Some(tarball_attachment) = attachments.get(&tarball_key) else {
        return Err(PublishError::MissingTarball {
            expected: tarball_key,
        });
    };
    let tarball = decode_tarball(tarball_attachment, &tarball_key)?;
    let provenance = attachments
        .get(&provenance_key)
        .map(|attachment| provenance_attachment(attachment, &provenance_key))
        .transpose()?;

    // Digests.
    let digests = TarballDigests::of(&tarball);
    let dist_path = format!("{key_path}.dist");
    let dist = object_field(manifest, "dist", &dist_path)?;
    let integrity = optional_string_field(dist, "integrity", &format!("{dist_path}.integrity"))?;
    let shasum = optional_string_field(dist, "shasum", &format!("{dist_path}.shasum"))?;
    if integrity.is_none() && shasum.is_none() {
        return Err(PublishError::MissingChecksum { version });
    }
    if let Some(integrity) = integrity {
        check_integrity(integrity, &digests)?;
    }
    if let Some(shasum) = shasum {
        check_shasum(shasum, &digests)?;
    }

    // The tarball's own idea of what it is.
    let tarball_info = inspect(&tarball, limits)?;
    let tarball_name = tarball_info
        .manifest
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim);
    if tarball_name != Some(url_name.as_str()) {
        return Err(PublishError::TarballNameMismatch {
            tarball: tarball_name.map(shown),
            published: url_name.clone(),
        });
    }
    let tarball_version = tarball_info.manifest.get("version").and_then(Value::as_str);
    let same_version = tarball_version
        .map(|v| v.trim().trim_start_matches(['v', '=']))
        .and_then(|v| parse_version(v).ok())
        .is_some_and(|v| v == version);
    if !same_version {
        return Err(PublishError::TarballVersionMismatch {
            tarball: tarball_version.map(shown),
            published: version,
        });
    }

    let mut manifest = manifest.clone();
    manifest.remove("dist");
    Ok(VerifiedPublish {
        name: url_name.clone(),
        version,
        tag,
        access,
        manifest,
        tarball,
        digests,
        tarball_info,
        provenance,
    })
}

/// Checks that `object[key]` is the package name; an absent field is an error only when
/// `required`.
fn check_name(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    url_name: &PackageName,
    required: bool,
) -> Result<(), PublishError> {
    let found = if required {
        string_field(object, key, path)?
    } else {
        match optional_string_field(object, key, path)? {
            Some(found) => found,
            None => return Ok(()),
        }
    };
    if found == url_name.as_str() {
        Ok(())
    } else {
        Err(PublishError::NameMismatch {
            field: path.to_owned(),
            found: shown(found),
            expected: url_name.clone(),
        })
    }
}

/// The only entry of `map`, or `None` when it has zero or several.
fn single_entry(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((key, value)), None) => Some((key.as_str(), value)),
        _ => None,
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Value, PublishError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(PublishError::MissingField {
            field: path.to_owned(),
        }),
        Some(value) => Ok(value),
    }
}

fn object_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, PublishError> {
    field(object, key, path)?
        .as_object()
        .ok_or_else(|| PublishError::WrongType {
            field: path.to_owned(),
            expected: "an object",
        })
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, PublishError> {
    field(object, key, path)?
        .as_str()
        .ok_or_else(|| PublishError::WrongType {
            field: path.to_owned(),
            expected: "a string",
        })
}

/// `object[key]` as a string, `None` when absent or `null`.
fn optional_string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, PublishError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(PublishError::WrongType {
            field: path.to_owned(),
            expected: "a string",
        }),
    }
}

fn decode_tarball(attachment: &Value, key: &str) -> Result<Vec<u8>, PublishError> {
    let path = format!("_attachments[\"{key}\"]");
    let attachment = attachment
        .as_object()
        .ok_or_else(|| PublishError::WrongType {
            field: path.clone(),
            expected: "an object",
        })?;
    let data = string_field(attachment, "data", &format!("{path}.data"))?;
    let tarball = STANDARD
        .decode(data)
        .map_err(|source| PublishError::InvalidBase64 {
            attachment: key.to_owned(),
            source,
        })?;
    match attachment.get("length") {
        None | Some(Value::Null) => {}
        Some(length) => {
            let declared = length.as_u64().ok_or_else(|| PublishError::WrongType {
                field: format!("{path}.length"),
                expected: "a non-negative integer",
            })?;
            let actual = u64::try_from(tarball.len()).unwrap_or(u64::MAX);
            if declared != actual {
                return Err(PublishError::LengthMismatch {
                    attachment: key.to_owned(),
                    declared,
                    actual,
                });
            }
        }
    }
    Ok(tarball)
}

fn provenance_attachment(
    attachment: &Value,
    key: &str,
) -> Result<ProvenanceAttachment, PublishError> {
    let path = format!("_attachments[\"{key}\"]");
    let attachment = attachment
        .as_object()
        .ok_or_else(|| PublishError::WrongType {
            field: path.clone(),
            expected: "an object",
        })?;
    Ok(ProvenanceAttachment {
        content_type: string_field(attachment, "content_type", &format!("{path}.content_type"))?
            .to_owned(),
        bundle_json: string_field(attachment, "data", &format!("{path}.data"))?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::{TarEntry, package_tgz, tgz};

    /// A publish body shaped like the one npm 11 sends (protocol §3.1) for `name@version`
    /// with `tgz` attached and `dist` computed from it.
    fn npm_body(name: &str, version: &str, tgz: &[u8]) -> Value {
        let digests = TarballDigests::of(tgz);
        json!({
            "_id": name,
            "name": name,
            "description": "a demo package",
            "dist-tags": { "latest": version },
            "versions": {
                version: {
                    "name": name,
                    "version": version,
                    "description": "a demo package",
                    "main": "index.js",
                    "license": "MIT",
                    "dependencies": { "demo-dep": "^1.0.0" },
                    "readme": "# demo\n",
                    "readmeFilename": "README.md",
                    "_id": format!("{name}@{version}"),
                    "_nodeVersion": "20.20.2",
                    "_npmVersion": "11.19.1",
                    "dist": {
                        "integrity": digests.integrity(),
                        "shasum": digests.shasum(),
                        "tarball": format!("http://127.0.0.1:48731/{name}/-/{name}-{version}.tgz"),
                    },
                },
            },
            "access": null,
            "_attachments": {
                format!("{name}-{version}.tgz"): {
                    "content_type": "application/octet-stream",
                    "data": STANDARD.encode(tgz),
                    "length": tgz.len(),
                },
            },
        })
    }

    /// [`npm_body`] for a freshly packed `name@version`.
    fn body_for(name: &str, version: &str) -> Value {
        npm_body(name, version, &package_tgz(name, version))
    }

    fn name(s: &str) -> PackageName {
        PackageName::parse(s).unwrap()
    }

    fn publish(url_name: &str, body: &Value) -> Result<VerifiedPublish, PublishError> {
        parse_publish(
            &name(url_name),
            &serde_json::to_vec(body).unwrap(),
            &TarballLimits::default(),
        )
    }

    /// Publishes `demo-pkg@1.0.0` after `edit` changed the body, expecting a refusal.
    fn refused(edit: impl FnOnce(&mut Value)) -> PublishError {
        refused_as("demo-pkg", "1.0.0", edit)
    }

    fn refused_as(package: &str, version: &str, edit: impl FnOnce(&mut Value)) -> PublishError {
        let mut body = body_for(package, version);
        edit(&mut body);
        match publish(package, &body) {
            Ok(published) => panic!("expected a refusal, got {published:?}"),
            Err(err) => err,
        }
    }

    fn version_object(body: &mut Value) -> &mut Map<String, Value> {
        let versions = body["versions"].as_object_mut().unwrap();
        versions
            .values_mut()
            .next()
            .unwrap()
            .as_object_mut()
            .unwrap()
    }

    fn attachments(body: &mut Value) -> &mut Map<String, Value> {
        body["_attachments"].as_object_mut().unwrap()
    }

    /// Replaces the tarball (attachment and `dist`) with `tgz`.
    fn attach(body: &mut Value, key: &str, tgz: &[u8]) {
        let digests = TarballDigests::of(tgz);
        version_object(body)["dist"] = json!({
            "integrity": digests.integrity(),
            "shasum": digests.shasum(),
        });
        attachments(body)[key] = json!({
            "content_type": "application/octet-stream",
            "data": STANDARD.encode(tgz),
            "length": tgz.len(),
        });
    }

    #[test]
    fn accepts_an_unscoped_publish() {
        let tgz = package_tgz("demo-pkg", "1.0.0");
        let published = publish("demo-pkg", &npm_body("demo-pkg", "1.0.0", &tgz)).unwrap();
        assert_eq!(published.name.as_str(), "demo-pkg");
        assert_eq!(published.version.to_string(), "1.0.0");
        assert_eq!(published.tag, DistTag::latest());
        assert_eq!(published.access, None);
        assert_eq!(published.tarball, tgz);
        assert_eq!(published.digests, TarballDigests::of(&tgz));
        assert_eq!(published.tarball_info.file_count, 3);
        assert_eq!(published.tarball_info.manifest["name"], "demo-pkg");
        assert_eq!(published.provenance, None);
        assert!(!published.manifest.contains_key("dist"));
        let keys: Vec<&str> = published.manifest.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "version",
                "description",
                "main",
                "license",
                "dependencies",
                "readme",
                "readmeFilename",
                "_id",
                "_nodeVersion",
                "_npmVersion"
            ],
            "the manifest keeps the body's fields in order"
        );
        let debug = format!("{published:?}");
        assert!(debug.contains(&format!("<{} bytes>", tgz.len())), "{debug}");
    }

    #[test]
    fn accepts_a_scoped_publish_with_tag_access_and_provenance() {
        let mut body = body_for("@scope/newpkg", "2.0.0-beta.1");
        body["dist-tags"] = json!({ "next": "2.0.0-beta.1" });
        body["access"] = json!("public");
        let bundle = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        attachments(&mut body).insert(
            "@scope/newpkg-2.0.0-beta.1.sigstore".to_owned(),
            json!({
                "content_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "data": bundle,
                "length": bundle.len(),
            }),
        );
        let published = publish("@scope/newpkg", &body).unwrap();
        assert_eq!(published.name.as_str(), "@scope/newpkg");
        assert_eq!(published.version.to_string(), "2.0.0-beta.1");
        assert_eq!(published.tag.as_str(), "next");
        assert_eq!(published.access, Some(Access::Public));
        assert_eq!(
            published.provenance,
            Some(ProvenanceAttachment {
                content_type: "application/vnd.dev.sigstore.bundle.v0.3+json".to_owned(),
                bundle_json: bundle.to_owned(),
            })
        );
    }

    #[test]
    fn restricted_and_private_are_fine_for_scoped_packages() {
        for access in ["restricted", "private"] {
            let mut body = body_for("@scope/lib", "1.0.0");
            body["access"] = json!(access);
            let published = publish("@scope/lib", &body).unwrap();
            assert_eq!(published.access, Some(Access::Restricted));
        }
    }

    #[test]
    fn accepts_only_one_checksum_and_no_length() {
        let mut body = body_for("demo-pkg", "1.0.0");
        version_object(&mut body)["dist"]
            .as_object_mut()
            .unwrap()
            .remove("shasum");
        attachments(&mut body)["demo-pkg-1.0.0.tgz"]
            .as_object_mut()
            .unwrap()
            .remove("length");
        publish("demo-pkg", &body).unwrap();

        let mut body = body_for("demo-pkg", "1.0.0");
        version_object(&mut body)["dist"]
            .as_object_mut()
            .unwrap()
            .remove("integrity");
        publish("demo-pkg", &body).unwrap();
    }

    #[test]
    fn tolerates_an_unnormalised_version_in_the_tarball() {
        let tgz = tgz(&[TarEntry::file(
            "package/package.json",
            br#"{"name":"demo-pkg","version":"v1.0.0"}"#,
        )]);
        let mut body = body_for("demo-pkg", "1.0.0");
        attach(&mut body, "demo-pkg-1.0.0.tgz", &tgz);
        publish("demo-pkg", &body).unwrap();
    }

    #[test]
    fn refuses_malformed_json() {
        let err = parse_publish(
            &name("demo-pkg"),
            b"{\n  \"name\": \"demo-pkg\",\n  oops\n}",
            &TarballLimits::default(),
        )
        .unwrap_err();
        insta::assert_snapshot!(
            err,
            @"the publish body is not valid JSON (line 3, column 3); publish with the npm CLI"
        );
        let err = parse_publish(&name("demo-pkg"), b"[]", &TarballLimits::default()).unwrap_err();
        assert!(matches!(err, PublishError::BodyNotObject), "{err:?}");
    }

    #[test]
    fn refuses_name_mismatches() {
        let err = refused(|body| body["name"] = json!("other-pkg"));
        insta::assert_snapshot!(
            err,
            @"`name` in the publish body is `other-pkg`, but the request is for package `demo-pkg`; the body's name must match the URL"
        );
        let err = refused(|body| body["_id"] = json!("other-pkg"));
        assert!(
            matches!(&err, PublishError::NameMismatch { field, .. } if field == "_id"),
            "{err:?}"
        );
        let err = refused(|body| version_object(body)["name"] = json!("other-pkg"));
        assert!(
            matches!(&err, PublishError::NameMismatch { field, .. } if field == "versions[\"1.0.0\"].name"),
            "{err:?}"
        );
        let err = refused(|body| {
            body.as_object_mut().unwrap().remove("name");
        });
        assert!(
            matches!(&err, PublishError::MissingField { field } if field == "name"),
            "{err:?}"
        );
        let err = refused(|body| body["name"] = json!(42));
        insta::assert_snapshot!(err, @"`name` in the publish body must be a string");
        // A body without `_id` is fine.
        let mut body = body_for("demo-pkg", "1.0.0");
        body.as_object_mut().unwrap().remove("_id");
        publish("demo-pkg", &body).unwrap();
    }

    #[test]
    fn refuses_anything_but_one_version() {
        let err = refused(|body| body["versions"] = json!({}));
        assert!(
            matches!(err, PublishError::VersionCount { count: 0 }),
            "{err:?}"
        );
        let err = refused(|body| {
            let copy = version_object(body).clone();
            body["versions"]["1.0.1"] = Value::Object(copy);
        });
        insta::assert_snapshot!(
            err,
            @"the publish body must contain exactly one version in `versions`, not 2; publish one version at a time"
        );
        let err = refused(|body| body["versions"] = json!([]));
        assert!(matches!(err, PublishError::WrongType { .. }), "{err:?}");
        let err = refused(|body| {
            body.as_object_mut().unwrap().remove("versions");
        });
        assert!(matches!(err, PublishError::MissingField { .. }), "{err:?}");
    }

    #[test]
    fn refuses_bad_version_keys() {
        let err = refused(|body| {
            let manifest = version_object(body).clone();
            body["versions"] = json!({ "v1.0.0": manifest });
        });
        assert!(matches!(err, PublishError::Version(_)), "{err:?}");
        insta::assert_snapshot!(err, @"`v1.0.0` is not a valid semver version: remove the leading `v`");

        let err = refused(|body| version_object(body)["version"] = json!("1.0.1"));
        insta::assert_snapshot!(
            err,
            @r#"`versions["1.0.0"].version` is `1.0.1`; it must equal its key `1.0.0`"#
        );
        let err = refused(|body| body["versions"]["1.0.0"] = json!("1.0.0"));
        assert!(matches!(err, PublishError::WrongType { .. }), "{err:?}");
    }

    #[test]
    fn refuses_anything_but_one_valid_tag_for_the_version() {
        let err = refused(|body| body["dist-tags"] = json!({}));
        assert!(
            matches!(err, PublishError::TagCount { count: 0 }),
            "{err:?}"
        );
        let err = refused(|body| body["dist-tags"] = json!({"latest": "1.0.0", "next": "1.0.0"}));
        assert!(
            matches!(err, PublishError::TagCount { count: 2 }),
            "{err:?}"
        );
        let err = refused(|body| body["dist-tags"] = json!({"1.0": "1.0.0"}));
        assert!(
            matches!(err, PublishError::Tag(TagError::SemverRange { .. })),
            "{err:?}"
        );
        let err = refused(|body| body["dist-tags"] = json!({"latest": "0.9.0"}));
        insta::assert_snapshot!(
            err,
            @"dist-tag `latest` points at `0.9.0`, but the published version is `1.0.0`"
        );
        let err = refused(|body| body["dist-tags"] = json!({"latest": 1}));
        assert!(matches!(err, PublishError::WrongType { .. }), "{err:?}");
    }

    #[test]
    fn refuses_bad_access() {
        let err = refused(|body| body["access"] = json!("restricted"));
        insta::assert_snapshot!(
            err,
            @"unscoped package `demo-pkg` cannot be restricted (private); publish it with `--access public`, or under a scope like `@scope/demo-pkg`"
        );
        let err = refused(|body| body["access"] = json!("private"));
        assert!(
            matches!(err, PublishError::RestrictedUnscoped { .. }),
            "{err:?}"
        );
        let err = refused(|body| body["access"] = json!("secret"));
        insta::assert_snapshot!(
            err,
            @"`access` must be `public`, `restricted` or null, not `secret`"
        );
        let err = refused(|body| body["access"] = json!(true));
        assert!(matches!(err, PublishError::InvalidAccess { .. }), "{err:?}");
    }

    #[test]
    fn refuses_wrong_attachments() {
        let err = refused(|body| body["_attachments"] = json!({}));
        insta::assert_snapshot!(
            err,
            @"`_attachments` is empty; the publish body must include the package tarball `demo-pkg-1.0.0.tgz`"
        );
        let err = refused(|body| {
            body.as_object_mut().unwrap().remove("_attachments");
        });
        assert!(matches!(err, PublishError::MissingField { .. }), "{err:?}");

        let err = refused(|body| {
            attachments(body).insert("evil.tgz".to_owned(), json!({"data": ""}));
        });
        insta::assert_snapshot!(
            err,
            @"unexpected attachment `evil.tgz`; only the tarball `demo-pkg-1.0.0.tgz` and its `.sigstore` provenance bundle may be attached"
        );

        // The tarball under another version's name.
        let err = refused(|body| {
            let tarball = attachments(body).remove("demo-pkg-1.0.0.tgz").unwrap();
            attachments(body).insert("demo-pkg-1.0.1.tgz".to_owned(), tarball);
        });
        assert!(
            matches!(err, PublishError::UnexpectedAttachment { .. }),
            "{err:?}"
        );

        // Only a provenance bundle, no tarball.
        let err = refused(|body| {
            body["_attachments"] = json!({
                "demo-pkg-1.0.0.sigstore": { "content_type": "x", "data": "{}" },
            });
        });
        insta::assert_snapshot!(
            err,
            @"`_attachments` has no `demo-pkg-1.0.0.tgz`; the tarball must be attached under the package's name and version"
        );

        // Scoped tarballs are keyed by the full name: the bare name is refused.
        let err = refused_as("@scope/lib", "1.0.0", |body| {
            let tarball = attachments(body).remove("@scope/lib-1.0.0.tgz").unwrap();
            attachments(body).insert("lib-1.0.0.tgz".to_owned(), tarball);
        });
        assert!(
            matches!(err, PublishError::UnexpectedAttachment { .. }),
            "{err:?}"
        );

        let err = refused(|body| {
            attachments(body).insert(
                "demo-pkg-1.0.0.sigstore".to_owned(),
                json!({ "content_type": "x" }),
            );
        });
        assert!(
            matches!(&err, PublishError::MissingField { field } if field.ends_with(".data")),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_bad_tarball_encoding() {
        let err = refused(|body| {
            body["_attachments"]["demo-pkg-1.0.0.tgz"]["data"] = json!("not base64!");
        });
        assert!(err.source_chain_has::<base64::DecodeError>(), "{err:?}");
        insta::assert_snapshot!(err, @"attachment `demo-pkg-1.0.0.tgz` is not valid base64");

        let err = refused(|body| body["_attachments"]["demo-pkg-1.0.0.tgz"]["length"] = json!(7));
        assert!(
            matches!(err, PublishError::LengthMismatch { declared: 7, .. }),
            "{err:?}"
        );
        let err = refused(|body| body["_attachments"]["demo-pkg-1.0.0.tgz"]["length"] = json!("7"));
        assert!(matches!(err, PublishError::WrongType { .. }), "{err:?}");
        let err = refused(|body| {
            attachments(body)["demo-pkg-1.0.0.tgz"]
                .as_object_mut()
                .unwrap()
                .remove("data");
        });
        assert!(matches!(err, PublishError::MissingField { .. }), "{err:?}");
    }

    #[test]
    fn refuses_missing_or_wrong_checksums() {
        let err = refused(|body| {
            version_object(body)["dist"] = json!({ "tarball": "http://x/demo-pkg-1.0.0.tgz" });
        });
        insta::assert_snapshot!(
            err,
            @r#"`versions["1.0.0"].dist` has neither `integrity` nor `shasum`; publish with the npm CLI, which sets both"#
        );
        let err = refused(|body| {
            version_object(body).remove("dist");
        });
        assert!(
            matches!(&err, PublishError::MissingField { field } if field == "versions[\"1.0.0\"].dist"),
            "{err:?}"
        );
        let other = TarballDigests::of(b"other");
        let err =
            refused(|body| version_object(body)["dist"]["integrity"] = json!(other.integrity()));
        assert!(
            matches!(
                err,
                PublishError::Integrity(IntegrityError::Mismatch { .. })
            ),
            "{err:?}"
        );
        let err = refused(|body| version_object(body)["dist"]["shasum"] = json!(other.shasum()));
        assert!(
            matches!(
                err,
                PublishError::Integrity(IntegrityError::ShasumMismatch { .. })
            ),
            "{err:?}"
        );
        let err = refused(|body| version_object(body)["dist"]["integrity"] = json!(["x"]));
        assert!(matches!(err, PublishError::WrongType { .. }), "{err:?}");
    }

    #[test]
    fn refuses_bad_tarballs() {
        let err = refused(|body| attach(body, "demo-pkg-1.0.0.tgz", b"not a tarball"));
        assert!(
            matches!(err, PublishError::Tarball(TarballError::NotGzip)),
            "{err:?}"
        );
        let err = refused(|body| {
            let tgz = tgz(&[TarEntry::file("package/index.js", b"x")]);
            attach(body, "demo-pkg-1.0.0.tgz", &tgz);
        });
        assert!(
            matches!(err, PublishError::Tarball(TarballError::MissingPackageJson)),
            "{err:?}"
        );

        let mut body = body_for("demo-pkg", "1.0.0");
        let tight = TarballLimits {
            max_unpacked_bytes: 10,
            max_entries: 100,
        };
        let err = parse_publish(
            &name("demo-pkg"),
            &serde_json::to_vec(&body).unwrap(),
            &tight,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                PublishError::Tarball(TarballError::TooLarge { limit: 10 })
            ),
            "{err:?}"
        );

        // A tarball of another package.
        attach(
            &mut body,
            "demo-pkg-1.0.0.tgz",
            &package_tgz("evil-pkg", "1.0.0"),
        );
        let err = publish("demo-pkg", &body).unwrap_err();
        insta::assert_snapshot!(
            err,
            @"the tarball's package.json has name `evil-pkg`, but the package published is `demo-pkg`; pack and publish the same package"
        );

        // A tarball of another version.
        let err = refused(|body| {
            attach(
                body,
                "demo-pkg-1.0.0.tgz",
                &package_tgz("demo-pkg", "0.9.0"),
            );
        });
        insta::assert_snapshot!(
            err,
            @"the tarball's package.json has version `0.9.0`, but the version published is `1.0.0`; pack and publish the same version"
        );

        // A package.json without name or version.
        let nameless = tgz(&[TarEntry::file("package/package.json", b"{}")]);
        let err = refused(|body| attach(body, "demo-pkg-1.0.0.tgz", &nameless));
        insta::assert_snapshot!(
            err,
            @"the tarball's package.json has no `name`, but the package published is `demo-pkg`; pack and publish the same package"
        );
        let versionless = tgz(&[TarEntry::file(
            "package/package.json",
            br#"{"name":"demo-pkg","version":1}"#,
        )]);
        let err = refused(|body| attach(body, "demo-pkg-1.0.0.tgz", &versionless));
        assert!(
            matches!(
                err,
                PublishError::TarballVersionMismatch { tarball: None, .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn access_parses_and_serialises() {
        assert_eq!("public".parse::<Access>(), Ok(Access::Public));
        assert_eq!("private".parse::<Access>(), Ok(Access::Restricted));
        assert_eq!(Access::parse("restricted"), Some(Access::Restricted));
        insta::assert_snapshot!(
            "secret".parse::<Access>().unwrap_err(),
            @"access level `secret` must be `public`, `restricted` or `private`"
        );
        assert_eq!(
            serde_json::to_string(&Access::Restricted).unwrap(),
            r#""restricted""#
        );
        assert_eq!(
            serde_json::from_str::<Access>(r#""private""#).unwrap(),
            Access::Restricted
        );
        assert_eq!(Access::Public.to_string(), "public");
    }

    /// Walks an error's `source()` chain looking for a `T`.
    trait SourceChainHas {
        fn source_chain_has<T: std::error::Error + 'static>(&self) -> bool;
    }

    impl SourceChainHas for PublishError {
        fn source_chain_has<T: std::error::Error + 'static>(&self) -> bool {
            let mut source = std::error::Error::source(self);
            while let Some(err) = source {
                if err.is::<T>() {
                    return true;
                }
                source = err.source();
            }
            false
        }
    }
}
