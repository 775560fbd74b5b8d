//! A small Sigstore instance for tests: a Fulcio-like CA (root + intermediate), a CT log, a
//! Rekor-v1-like transparency log, the trusted root that names them, and real npm provenance
//! bundles made with them — exactly the shape `npm publish --provenance` sends (bundle v0.3, DSSE
//! envelope over an in-toto Statement v1 with SLSA provenance v1, Rekor `dsse` v0.0.1 entry with
//! inclusion proof, signed checkpoint and SET).
//!
//! Public Fulcio and Rekor cannot be reached from tests, so this stands in for them. Nothing here
//! is a verifier; `tests/sigstore_fixture.rs` checks the bundles with sigstore-js.
//!
//! Formats follow the Sigstore protobuf-specs JSON (`../shared/sigstore/README.md`, the
//! conformance bundles and `trust/public-good.trusted_root.json`) and npm's provenance
//! (`../shared/npm-registry-protocol.md` §3.1, §6).

mod identity;
mod js;
mod log;
mod x509;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use identity::{CiIdentity, FULCIO_OID_ARC, GITHUB_ACTIONS_ISSUER, der_utf8_string, npm_purl};
pub use js::{JsCase, JsVerdict, verify_with_sigstore_js};
use log::{TransparencyLog, canonical_json};
use x509::{CertificateAuthority, Curve, SigningKey};

use crate::oidc::unix_now;

/// `payloadType` of a DSSE envelope carrying an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1, what npm writes for GitHub Actions.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

const FULCIO_URL: &str = "https://fulcio.airlock.test";
const REKOR_HOST: &str = "rekor.airlock.test";
const CT_LOG_URL: &str = "https://ctfe.airlock.test/test";
const ROOT_CN: &str = "airlock-test-fulcio-root";
const INTERMEDIATE_CN: &str = "airlock-test-fulcio-intermediate";
const CA_ORG: &str = "airlock.test";
/// Fulcio issues certificates for ten minutes.
const LEAF_LIFETIME_SECS: i64 = 600;
/// How far back the CA, the logs and the trusted root's `validFor` reach, so bundles can be
/// dated in the past (`BundleOptions::signed_at`).
const TRUST_BACKDATE_SECS: i64 = 400 * 24 * 3600;
const CA_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;

/// The bundle media types (protobuf-specs), by version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BundleVersion {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`: certificate chain, SET required.
    V0_1,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.2`: certificate chain, inclusion proof.
    V0_2,
    /// `application/vnd.dev.sigstore.bundle.v0.3+json`: a single certificate (what npm sends).
    #[default]
    V0_3,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.3`: the other v0.3 spelling.
    V0_3AltMediaType,
}

impl BundleVersion {
    pub fn media_type(self) -> &'static str {
        match self {
            BundleVersion::V0_1 => "application/vnd.dev.sigstore.bundle+json;version=0.1",
            BundleVersion::V0_2 => "application/vnd.dev.sigstore.bundle+json;version=0.2",
            BundleVersion::V0_3 => "application/vnd.dev.sigstore.bundle.v0.3+json",
            BundleVersion::V0_3AltMediaType => {
                "application/vnd.dev.sigstore.bundle+json;version=0.3"
            }
        }
    }
}

/// One deliberate defect, for negative tests. Each breaks exactly one thing; everything else in
/// the bundle stays valid (the log entry, SET and checkpoint are made over the broken content, so
/// a verifier must find the defect itself, not a side effect).
///
/// A bundle from *another identity* (repository, numeric repository id, workflow, ref) is not a
/// defect of the bundle: pass another [`CiIdentity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breakage {
    /// The statement's subject names this package instead (same version and digest).
    OtherPackageName(String),
    /// The statement's subject digest is the sha512 of other bytes than the tarball.
    OtherTarball,
    /// The DSSE signature is the leaf key's signature over a different payload (the log records
    /// that same bad signature, so only the signature check fails).
    BadSignature,
    /// The envelope's payload was edited after signing and logging (another subject digest):
    /// the signature and the log's payload hash no longer match it.
    TamperedPayload,
    /// The certificate's validity ended before the log's integrated time.
    ExpiredCertificate,
    /// The certificate's validity starts after the log's integrated time.
    CertificateNotYetValid,
    /// The first hash of the inclusion proof has one bit flipped.
    CorruptedInclusionProof,
    /// The checkpoint carries the log's name and key hint but another key's signature.
    WrongCheckpointSignature,
    /// The signed entry timestamp (inclusion promise) is another key's signature.
    WrongSignedEntryTimestamp,
    /// The certificate's embedded SCT is signed by a CT log that is not in the trusted root.
    UnknownCtLog,
    /// The leaf comes from a CA that is not in the trusted root (same names as the real one, its
    /// own keys), with a valid SCT from the trusted CT log.
    UntrustedCa,
}

/// How to make a bundle; `Default` is a good npm provenance bundle signed a minute ago.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    pub version: BundleVersion,
    /// The log's integrated time (Unix seconds); the certificate is issued 5 s before it.
    /// Default: one minute ago.
    pub signed_at: Option<i64>,
    pub breakage: Option<Breakage>,
}

impl BundleOptions {
    pub fn broken(breakage: Breakage) -> BundleOptions {
        BundleOptions {
            breakage: Some(breakage),
            ..BundleOptions::default()
        }
    }

    pub fn version(version: BundleVersion) -> BundleOptions {
        BundleOptions {
            version,
            ..BundleOptions::default()
        }
    }
}

/// A short-lived Fulcio-style certificate and its ephemeral key.
#[derive(Debug)]
pub struct LeafCertificate {
    key: SigningKey,
    der: Vec<u8>,
    /// Issuer certificates between the leaf and the root (the intermediate, if any), DER.
    intermediates: Vec<Vec<u8>>,
    pub not_before: i64,
    pub not_after: i64,
}

impl LeafCertificate {
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `-----BEGIN CERTIFICATE-----` PEM, 64-column lines (what Rekor stores as the verifier).
    pub fn pem(&self) -> String {
        let b64 = B64.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// The intermediate CA certificates (DER) that chain this leaf to the root.
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.intermediates
    }

    /// ECDSA P-256 / SHA-256 signature (DER) with the certificate's key.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message)
    }

    /// The leaf's public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.spki_der()
    }
}

/// The test Sigstore instance. Holds its transparency log's state, so bundles made by one
/// instance share one growing Merkle tree.
#[derive(Debug)]
pub struct TestSigstore {
    root: CertificateAuthority,
    intermediate: Option<CertificateAuthority>,
    /// Same names, other keys: the CA a `Breakage::UntrustedCa` leaf comes from.
    untrusted_root: CertificateAuthority,
    untrusted_intermediate: Option<CertificateAuthority>,
    ct_log: SigningKey,
    rekor: TransparencyLog,
    /// Start of every `validFor` in the trusted root.
    valid_from: i64,
}

impl Default for TestSigstore {
    fn default() -> Self {
        TestSigstore::new()
    }
}

impl TestSigstore {
    /// Root CA and intermediate (like public-good Fulcio), CT log, Rekor log.
    pub fn new() -> TestSigstore {
        TestSigstore::build(true)
    }

    /// Like [`TestSigstore::new`], but the root CA issues leaves directly.
    pub fn without_intermediate() -> TestSigstore {
        TestSigstore::build(false)
    }

    fn build(with_intermediate: bool) -> TestSigstore {
        let now = unix_now();
        let valid_from = now - TRUST_BACKDATE_SECS;
        let valid_to = now + CA_LIFETIME_SECS;
        let ca = |root: &CertificateAuthority| {
            with_intermediate
                .then(|| root.intermediate(INTERMEDIATE_CN, CA_ORG, valid_from, valid_to))
        };
        let root = CertificateAuthority::root(ROOT_CN, CA_ORG, valid_from, valid_to);
        let intermediate = ca(&root);
        let untrusted_root = CertificateAuthority::root(ROOT_CN, CA_ORG, valid_from, valid_to);
        let untrusted_intermediate = ca(&untrusted_root);
        let mut tree_id = [0u8; 8];
        aws_lc_rs::rand::fill(&mut tree_id).expect("the system RNG works");
        TestSigstore {
            root,
            intermediate,
            untrusted_root,
            untrusted_intermediate,
            ct_log: SigningKey::generate(Curve::P256),
            rekor: TransparencyLog::new(REKOR_HOST, u64::from_be_bytes(tree_id) >> 1),
            valid_from,
        }
    }

    fn issuing_ca(&self, trusted: bool) -> (&CertificateAuthority, Vec<Vec<u8>>) {
        let (root, intermediate) = if trusted {
            (&self.root, &self.intermediate)
        } else {
            (&self.untrusted_root, &self.untrusted_intermediate)
        };
        match intermediate {
            Some(i) => (i, vec![i.cert_der.clone()]),
            None => (root, Vec::new()),
        }
    }

    /// The Fulcio CA chain as the trusted root lists it: intermediate (if any), then root (DER).
    pub fn ca_chain_der(&self) -> Vec<Vec<u8>> {
        let mut chain: Vec<Vec<u8>> = self
            .intermediate
            .iter()
            .map(|i| i.cert_der.clone())
            .collect();
        chain.push(self.root.cert_der.clone());
        chain
    }

    /// The Rekor log's public key (DER SPKI, P-256).
    pub fn rekor_public_key_der(&self) -> &[u8] {
        self.rekor.key.spki_der()
    }

    /// The Rekor log id: SHA-256 of its public key.
    pub fn rekor_log_id(&self) -> [u8; 32] {
        self.rekor.key.key_id()
    }

    /// The CT log's public key (DER SPKI, P-256).
    pub fn ct_log_public_key_der(&self) -> &[u8] {
        self.ct_log.spki_der()
    }

    /// `https://rekor.airlock.test`, the tlog `baseUrl` (its host names checkpoint signatures).
    pub fn rekor_url(&self) -> String {
        self.rekor.base_url()
    }

    /// The trusted root (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`) naming
    /// this instance's Rekor log, Fulcio CA and CT log, valid from 400 days ago.
    pub fn trusted_root_json(&self) -> Value {
        let start = rfc3339(self.valid_from);
        let log = |base_url: String, key: &SigningKey| {
            json!({
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": B64.encode(key.spki_der()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": { "start": start },
                },
                "logId": { "keyId": B64.encode(key.key_id()) },
            })
        };
        let chain: Vec<Value> = self
            .ca_chain_der()
            .iter()
            .map(|der| json!({ "rawBytes": B64.encode(der) }))
            .collect();
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor.base_url(), &self.rekor.key)],
            "certificateAuthorities": [{
                "subject": { "organization": CA_ORG, "commonName": ROOT_CN },
                "uri": FULCIO_URL,
                "certChain": { "certificates": chain },
                "validFor": { "start": start },
            }],
            "ctlogs": [log(CT_LOG_URL.to_owned(), &self.ct_log)],
            "timestampAuthorities": [],
        })
    }

    /// Writes [`TestSigstore::trusted_root_json`] (pretty JSON) to `path`.
    pub fn write_trusted_root(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.trusted_root_json())
            .map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    /// A leaf for `identity`, valid for ten minutes from a minute ago, with an embedded SCT.
    pub fn issue_leaf(&self, identity: &CiIdentity) -> LeafCertificate {
        let not_before = unix_now() - 60;
        self.issue_leaf_valid(identity, not_before, not_before + LEAF_LIFETIME_SECS)
    }

    /// A leaf for `identity` valid `[not_before, not_after]` (Unix seconds), with an SCT stamped
    /// at `not_before`.
    pub fn issue_leaf_valid(
        &self,
        identity: &CiIdentity,
        not_before: i64,
        not_after: i64,
    ) -> LeafCertificate {
        self.leaf(identity, (not_before, not_after), true, &self.ct_log)
    }

    fn leaf(
        &self,
        identity: &CiIdentity,
        validity: (i64, i64),
        trusted_ca: bool,
        ct_log: &SigningKey,
    ) -> LeafCertificate {
        let (ca, intermediates) = self.issuing_ca(trusted_ca);
        let key = SigningKey::generate(Curve::P256);
        let sct_ms = u64::try_from(validity.0).expect("dated after 1970") * 1000 + 250;
        let der = ca.issue_leaf(&key, identity, validity, ct_log, sct_ms);
        LeafCertificate {
            key,
            der,
            intermediates,
            not_before: validity.0,
            not_after: validity.1,
        }
    }

    /// The in-toto statement npm signs for `name@version` with these tarball bytes.
    pub fn npm_provenance_statement(
        name: &str,
        version: &str,
        tarball: &[u8],
        identity: &CiIdentity,
    ) -> Value {
        json!({
            "_type": IN_TOTO_STATEMENT_V1,
            "subject": [{
                "name": npm_purl(name, version),
                "digest": { "sha512": hex::encode(Sha512::digest(tarball)) },
            }],
            "predicateType": SLSA_PROVENANCE_V1,
            "predicate": identity.slsa_v1_predicate(),
        })
    }

    /// A Sigstore bundle of npm provenance for `name@version` built from `tarball` by
    /// `identity`, as `npm publish --provenance` sends it in the `NAME-VERSION.sigstore`
    /// attachment; `options` picks the bundle version, the time and a defect.
    pub fn npm_provenance_bundle(
        &self,
        name: &str,
        version: &str,
        tarball: &[u8],
        identity: &CiIdentity,
        options: &BundleOptions,
    ) -> Value {
        let breakage = options.breakage.as_ref();
        let integrated_time = options.signed_at.unwrap_or_else(|| unix_now() - 60);

        // 1. The statement, possibly about something else.
        let subject_name = match breakage {
            Some(Breakage::OtherPackageName(other)) => other.as_str(),
            _ => name,
        };
        let other_bytes;
        let subject_bytes = if breakage == Some(&Breakage::OtherTarball) {
            other_bytes = [tarball, b"other bytes"].concat();
            &other_bytes[..]
        } else {
            tarball
        };
        let statement =
            Self::npm_provenance_statement(subject_name, version, subject_bytes, identity);
        let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");

        // 2. Fulcio: a ten-minute certificate around the signing time.
        let issued = integrated_time - 5;
        let validity = match breakage {
            Some(Breakage::ExpiredCertificate) => (issued - 1200, issued - 600),
            Some(Breakage::CertificateNotYetValid) => (integrated_time + 60, integrated_time + 660),
            _ => (issued, issued + LEAF_LIFETIME_SECS),
        };
        let unknown_ct_log;
        let ct_log = if breakage == Some(&Breakage::UnknownCtLog) {
            unknown_ct_log = SigningKey::generate(Curve::P256);
            &unknown_ct_log
        } else {
            &self.ct_log
        };
        let trusted_ca = breakage != Some(&Breakage::UntrustedCa);
        let leaf = self.leaf(identity, validity, trusted_ca, ct_log);

        // 3. DSSE.
        let signed_payload = if breakage == Some(&Breakage::BadSignature) {
            [&payload[..], b" "].concat()
        } else {
            payload.clone()
        };
        let signature = B64.encode(leaf.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &signed_payload)));
        let payload_b64 = B64.encode(&payload);
        let envelope_hash = Sha256::digest(canonical_json(&json!({
            "payload": payload_b64,
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{ "sig": signature }],
        })));

        // 4. Rekor: the dsse v0.0.1 entry as Rekor canonicalizes it.
        let body = canonical_json(&json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": { "algorithm": "sha256", "value": hex::encode(envelope_hash) },
                "payloadHash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload)) },
                "signatures": [{ "signature": signature, "verifier": B64.encode(leaf.pem()) }],
            },
        }));
        let logged = self.rekor.append(body.as_bytes());
        let wrong_key = SigningKey::generate(Curve::P256);
        let set_signer = if breakage == Some(&Breakage::WrongSignedEntryTimestamp) {
            &wrong_key
        } else {
            &self.rekor.key
        };
        let set = self.rekor.signed_entry_timestamp(
            body.as_bytes(),
            integrated_time,
            logged.log_index,
            set_signer,
        );
        let checkpoint_signer = if breakage == Some(&Breakage::WrongCheckpointSignature) {
            &wrong_key
        } else {
            &self.rekor.key
        };
        let checkpoint =
            self.rekor
                .checkpoint(logged.tree_size, &logged.root_hash, checkpoint_signer);
        let mut hashes = logged.hashes.clone();
        if breakage == Some(&Breakage::CorruptedInclusionProof) {
            let first = hashes
                .first_mut()
                .expect("the test log always has siblings");
            first[0] ^= 0x01;
        }

        // 5. After the fact: an edited payload.
        let final_payload_b64 = if breakage == Some(&Breakage::TamperedPayload) {
            let edited = Self::npm_provenance_statement(
                name,
                version,
                &[tarball, b"tampered"].concat(),
                identity,
            );
            B64.encode(serde_json::to_vec(&edited).expect("a JSON value serializes"))
        } else {
            payload_b64
        };

        let tlog_entry = json!({
            "logIndex": logged.log_index.to_string(),
            "logId": { "keyId": B64.encode(self.rekor.key.key_id()) },
            "kindVersion": { "kind": "dsse", "version": "0.0.1" },
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": { "signedEntryTimestamp": B64.encode(set) },
            "inclusionProof": {
                "logIndex": logged.log_index.to_string(),
                "rootHash": B64.encode(logged.root_hash),
                "treeSize": logged.tree_size.to_string(),
                "hashes": hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": { "envelope": checkpoint },
            },
            "canonicalizedBody": B64.encode(body.as_bytes()),
        });
        let mut material = serde_json::Map::new();
        match options.version {
            BundleVersion::V0_1 | BundleVersion::V0_2 => {
                material.insert(
                    "x509CertificateChain".into(),
                    json!({ "certificates": [{ "rawBytes": B64.encode(leaf.der()) }] }),
                );
            }
            BundleVersion::V0_3 | BundleVersion::V0_3AltMediaType => {
                material.insert(
                    "certificate".into(),
                    json!({ "rawBytes": B64.encode(leaf.der()) }),
                );
            }
        }
        material.insert("tlogEntries".into(), json!([tlog_entry]));
        json!({
            "mediaType": options.version.media_type(),
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": final_payload_b64,
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{ "sig": signature }],
            },
        })
    }
}

/// The `_attachments` entry npm adds for provenance: key `NAME-VERSION.sigstore`, value
/// `{content_type: bundle.mediaType, data: <bundle JSON as a string, not base64>, length}`.
pub fn npm_provenance_attachment(name: &str, version: &str, bundle: &Value) -> (String, Value) {
    let data = bundle.to_string();
    let media_type = bundle["mediaType"].as_str().unwrap_or_default().to_owned();
    let length = data.encode_utf16().count();
    (
        format!("{name}-{version}.sigstore"),
        json!({ "content_type": media_type, "data": data, "length": length }),
    )
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn rfc3339(unix_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .expect("a recent Unix time formats as RFC 3339")
}
