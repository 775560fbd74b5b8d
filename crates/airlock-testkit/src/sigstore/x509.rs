//! Keys and certificates of the test Sigstore instance: a Fulcio-like root and intermediate CA
//! (ECDSA P-384, like Fulcio's), and short-lived P-256 leaf certificates with Fulcio's extensions
//! and an embedded SCT from the test CT log.
//!
//! The SCT is made the RFC 6962 §3.2 way for a precertificate: the CT log signs the leaf's
//! TBSCertificate *without* the SCT extension (every other extension in the same order) and the
//! SHA-256 of the issuer's SubjectPublicKeyInfo; the CA then adds the SCT list as the last
//! extension and signs. A verifier removes the SCT extension again and checks the same bytes.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::{BitString, Ia5String, OctetString, UtcTime};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{TbsCertificate, Version};

use super::identity::{CiIdentity, FULCIO_OID_ARC};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// RFC 6962 embedded SCT list.
const CT_PRECERT_SCTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// `expect` message for encoding our own, well-formed structures.
const ENCODES: &str = "our own certificate structures encode as DER";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

/// An ECDSA key pair with its SubjectPublicKeyInfo.
#[derive(Debug)]
pub(crate) struct SigningKey {
    pair: EcdsaKeyPair,
    curve: Curve,
    spki: Vec<u8>,
}

impl SigningKey {
    pub(crate) fn generate(curve: Curve) -> SigningKey {
        let alg = match curve {
            Curve::P256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        };
        let pair = EcdsaKeyPair::generate(alg).expect("aws-lc-rs generates an ECDSA key");
        let spki = pair
            .public_key()
            .as_der()
            .expect("an ECDSA public key has a SubjectPublicKeyInfo")
            .as_ref()
            .to_vec();
        SigningKey { pair, curve, spki }
    }

    /// DER SubjectPublicKeyInfo.
    pub(crate) fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SubjectPublicKeyInfo: a Rekor log id, a CT log id, a checkpoint key hint.
    pub(crate) fn key_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    /// ECDSA over SHA-256 (P-256) or SHA-384 (P-384) of `message`, DER-encoded.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .expect("aws-lc-rs signs with an ECDSA key")
            .as_ref()
            .to_vec()
    }

    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: match self.curve {
                Curve::P256 => ECDSA_WITH_SHA256,
                Curve::P384 => ECDSA_WITH_SHA384,
            },
            parameters: None,
        }
    }

    fn spki(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&self.spki).expect("aws-lc-rs writes a valid SPKI")
    }

    /// RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
    fn subject_key_id(&self) -> Vec<u8> {
        Sha1::digest(self.spki().subject_public_key.raw_bytes()).to_vec()
    }
}

/// A certificate authority: its key, its certificate and the bits children need.
#[derive(Debug)]
pub(crate) struct CertificateAuthority {
    pub(crate) key: SigningKey,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) name: Name,
    subject_key_id: Vec<u8>,
}

impl CertificateAuthority {
    /// A self-signed root (basicConstraints CA, path length 1).
    pub(crate) fn root(
        common_name: &str,
        organization: &str,
        not_before: i64,
        not_after: i64,
    ) -> CertificateAuthority {
        let key = SigningKey::generate(Curve::P384);
        let name = dn(common_name, organization);
        let ski = key.subject_key_id();
        let extensions = vec![
            ext(
                KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            ),
            ext(
                BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(1),
                },
            ),
            ext(SUBJECT_KEY_ID, false, &SubjectKeyIdentifier(octets(&ski))),
        ];
        let tbs = tbs_certificate(
            &key,
            name.clone(),
            name.clone(),
            (not_before, not_after),
            key.spki(),
            extensions,
        );
        let cert_der = sign_certificate(tbs, &key);
        CertificateAuthority {
            key,
            cert_der,
            name,
            subject_key_id: ski,
        }
    }

    /// An intermediate CA under `self` (path length 0, code signing, like Fulcio's).
    pub(crate) fn intermediate(
        &self,
        common_name: &str,
        organization: &str,
        not_before: i64,
        not_after: i64,
    ) -> CertificateAuthority {
        let key = SigningKey::generate(Curve::P384);
        let name = dn(common_name, organization);
        let ski = key.subject_key_id();
        let extensions = vec![
            ext(
                KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            ),
            ext(
                EXTENDED_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![KP_CODE_SIGNING]),
            ),
            ext(
                BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
            ),
            ext(SUBJECT_KEY_ID, false, &SubjectKeyIdentifier(octets(&ski))),
            ext(AUTHORITY_KEY_ID, false, &self.authority_key_id()),
        ];
        let tbs = tbs_certificate(
            &self.key,
            self.name.clone(),
            name.clone(),
            (not_before, not_after),
            key.spki(),
            extensions,
        );
        let cert_der = sign_certificate(tbs, &self.key);
        CertificateAuthority {
            key,
            cert_der,
            name,
            subject_key_id: ski,
        }
    }

    fn authority_key_id(&self) -> AuthorityKeyIdentifier {
        AuthorityKeyIdentifier {
            key_identifier: Some(octets(&self.subject_key_id)),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        }
    }

    /// A Fulcio-style leaf for `leaf_key`, issued to `identity`, valid `[not_before, not_after]`
    /// (Unix seconds), with an SCT from `ct_log` stamped `sct_time_ms`.
    pub(crate) fn issue_leaf(
        &self,
        leaf_key: &SigningKey,
        identity: &CiIdentity,
        validity: (i64, i64),
        ct_log: &SigningKey,
        sct_time_ms: u64,
    ) -> Vec<u8> {
        let san = SubjectAltName(vec![GeneralName::UniformResourceIdentifier(
            Ia5String::new(&identity.san_uri()).expect("a workflow URI is ASCII"),
        )]);
        let mut extensions = vec![
            ext(
                KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::DigitalSignature.into()),
            ),
            ext(
                EXTENDED_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![KP_CODE_SIGNING]),
            ),
            ext(
                SUBJECT_KEY_ID,
                false,
                &SubjectKeyIdentifier(octets(&leaf_key.subject_key_id())),
            ),
            ext(AUTHORITY_KEY_ID, false, &self.authority_key_id()),
            ext(SUBJECT_ALT_NAME, true, &san),
        ];
        for (arc, value) in identity.fulcio_extensions() {
            let oid = ObjectIdentifier::new(&format!("{FULCIO_OID_ARC}.{arc}"))
                .expect("Fulcio's OIDs are well-formed");
            extensions.push(Extension {
                extn_id: oid,
                critical: false,
                extn_value: octets(&value),
            });
        }
        let empty_subject = Name::default();
        let precert = tbs_certificate(
            &self.key,
            self.name.clone(),
            empty_subject,
            validity,
            leaf_key.spki(),
            extensions,
        );
        let sct = signed_certificate_timestamp(
            ct_log,
            sct_time_ms,
            &Sha256::digest(self.key.spki_der()).into(),
            &precert.to_der().expect(ENCODES),
        );
        let mut tbs = precert;
        let sct_list = sct_list_extension_value(&[sct]);
        tbs.extensions.get_or_insert_with(Vec::new).push(Extension {
            extn_id: CT_PRECERT_SCTS,
            critical: false,
            extn_value: octets(&sct_list),
        });
        sign_certificate(tbs, &self.key)
    }
}

fn dn(common_name: &str, organization: &str) -> Name {
    Name::from_str(&format!("CN={common_name},O={organization}"))
        .expect("our CA names are plain RFC 4514 strings")
}

fn octets(bytes: &[u8]) -> OctetString {
    OctetString::new(bytes.to_vec()).expect("an octet string of any length encodes")
}

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: octets(&value.to_der().expect(ENCODES)),
    }
}

fn x509_time(unix_secs: i64) -> Time {
    let secs = u64::try_from(unix_secs).expect("test certificates are dated after 1970");
    Time::UtcTime(
        UtcTime::from_unix_duration(Duration::from_secs(secs))
            .expect("test certificates are dated before 2050"),
    )
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    // Positive and without a leading zero byte, so DER keeps all 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    SerialNumber::new(&bytes).expect("a 16-byte positive serial is valid")
}

fn tbs_certificate(
    signer: &SigningKey,
    issuer: Name,
    subject: Name,
    (not_before, not_after): (i64, i64),
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
) -> TbsCertificate {
    TbsCertificate {
        version: Version::V3,
        serial_number: random_serial(),
        signature: signer.signature_algorithm(),
        issuer,
        validity: Validity {
            not_before: x509_time(not_before),
            not_after: x509_time(not_after),
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    }
}

fn sign_certificate(tbs: TbsCertificate, signer: &SigningKey) -> Vec<u8> {
    let signature = signer.sign(&tbs.to_der().expect(ENCODES));
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature).expect("a signature fits a bit string"),
    }
    .to_der()
    .expect(ENCODES)
}

/// One serialized RFC 6962 `SignedCertificateTimestamp` (v1, no extensions, ECDSA/SHA-256)
/// over a precertificate entry.
fn signed_certificate_timestamp(
    ct_log: &SigningKey,
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    precert_tbs: &[u8],
) -> Vec<u8> {
    let mut signed = vec![0u8, 0u8]; // sct_version v1, signature_type certificate_timestamp
    signed.extend_from_slice(&timestamp_ms.to_be_bytes());
    signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    signed.extend_from_slice(issuer_key_hash);
    let tbs_len = u32::try_from(precert_tbs.len()).expect("a TBS certificate is small");
    signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]); // uint24
    signed.extend_from_slice(precert_tbs);
    signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
    let signature = ct_log.sign(&signed);

    let mut sct = vec![0u8]; // v1
    sct.extend_from_slice(&ct_log.key_id());
    sct.extend_from_slice(&timestamp_ms.to_be_bytes());
    sct.extend_from_slice(&0u16.to_be_bytes()); // no extensions
    sct.extend_from_slice(&[4, 3]); // hash sha256, signature ecdsa
    sct.extend_from_slice(&u16_len(signature.len()).to_be_bytes());
    sct.extend_from_slice(&signature);
    sct
}

/// The SCT extension's value: a DER OCTET STRING holding the TLS `SignedCertificateTimestampList`.
fn sct_list_extension_value(scts: &[Vec<u8>]) -> Vec<u8> {
    let mut list = Vec::new();
    for sct in scts {
        list.extend_from_slice(&u16_len(sct.len()).to_be_bytes());
        list.extend_from_slice(sct);
    }
    let mut tls = u16_len(list.len()).to_be_bytes().to_vec();
    tls.extend_from_slice(&list);
    octets(&tls).to_der().expect(ENCODES)
}

fn u16_len(len: usize) -> u16 {
    u16::try_from(len).expect("SCT fields are far below 64 KiB")
}
