//! A Rekor-v1-like transparency log in memory: an RFC 6962 Merkle tree over canonicalized entry
//! bodies, inclusion proofs, signed checkpoints (C2SP signed notes as Rekor v1 writes them) and
//! signed entry timestamps (SETs).

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::x509::{Curve, SigningKey};

/// Entries appended before the first real one, so every inclusion proof has sibling hashes.
const FILLER_BEFORE_FIRST: usize = 5;
/// Entries appended after each real one (Rekor answers with a tree that has grown since).
const FILLER_AFTER_EACH: usize = 2;

/// What the log returns for one appended entry.
#[derive(Debug, Clone)]
pub(crate) struct LoggedEntry {
    pub(crate) log_index: u64,
    pub(crate) tree_size: u64,
    pub(crate) root_hash: [u8; 32],
    /// Audit path, leaf level first (RFC 6962 §2.1.1).
    pub(crate) hashes: Vec<[u8; 32]>,
}

#[derive(Debug)]
pub(crate) struct TransparencyLog {
    pub(crate) key: SigningKey,
    /// Host of the log's base URL; the checkpoint signature line names it.
    pub(crate) host: String,
    tree_id: u64,
    leaves: Mutex<Vec<[u8; 32]>>,
}

impl TransparencyLog {
    pub(crate) fn new(host: &str, tree_id: u64) -> TransparencyLog {
        let log = TransparencyLog {
            key: SigningKey::generate(Curve::P256),
            host: host.to_owned(),
            tree_id,
            leaves: Mutex::new(Vec::new()),
        };
        log.lock().extend((0..FILLER_BEFORE_FIRST).map(filler_leaf));
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<[u8; 32]>> {
        // A panic elsewhere while holding the lock leaves the leaves consistent (pushes only).
        self.leaves.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `https://HOST`.
    pub(crate) fn base_url(&self) -> String {
        format!("https://{}", self.host)
    }

    /// Rekor v1's checkpoint origin: `HOST - TREE_ID`.
    pub(crate) fn origin(&self) -> String {
        format!("{} - {}", self.host, self.tree_id)
    }

    /// Appends `body`, then a few unrelated entries, and proves `body`'s inclusion in the tree
    /// as it stands after them.
    pub(crate) fn append(&self, body: &[u8]) -> LoggedEntry {
        let mut leaves = self.lock();
        let index = leaves.len();
        leaves.push(leaf_hash(body));
        for _ in 0..FILLER_AFTER_EACH {
            let n = leaves.len();
            leaves.push(filler_leaf(n));
        }
        LoggedEntry {
            log_index: index as u64,
            tree_size: leaves.len() as u64,
            root_hash: tree_hash(&leaves),
            hashes: audit_path(index, &leaves),
        }
    }

    /// The checkpoint for `(tree_size, root_hash)` as a signed note, signed by `signer` but with
    /// this log's key hint and name (the caller passes another key to forge a bad signature).
    pub(crate) fn checkpoint(
        &self,
        tree_size: u64,
        root_hash: &[u8; 32],
        signer: &SigningKey,
    ) -> String {
        let note = format!(
            "{}\n{tree_size}\n{}\n",
            self.origin(),
            B64.encode(root_hash)
        );
        let mut sig = self.key.key_id()[..4].to_vec();
        sig.extend_from_slice(&signer.sign(note.as_bytes()));
        format!("{note}\n\u{2014} {} {}\n", self.host, B64.encode(sig))
    }

    /// Rekor's signed entry timestamp: the log key's signature (here `signer`'s) over the
    /// canonical JSON of body, integrated time, log id (hex) and log index.
    pub(crate) fn signed_entry_timestamp(
        &self,
        body: &[u8],
        integrated_time: i64,
        log_index: u64,
        signer: &SigningKey,
    ) -> Vec<u8> {
        let payload = json!({
            "body": B64.encode(body),
            "integratedTime": integrated_time,
            "logID": hex::encode(self.key.key_id()),
            "logIndex": log_index,
        });
        signer.sign(canonical_json(&payload).as_bytes())
    }
}

fn filler_leaf(n: usize) -> [u8; 32] {
    leaf_hash(format!("{{\"airlock-test-log-filler\":{n}}}").as_bytes())
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub(crate) fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node: SHA-256(0x01 || left || right).
fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 Merkle tree hash over leaf hashes (the empty tree is SHA-256 of nothing).
pub(crate) fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 audit path of leaf `m`, leaf level first.
pub(crate) fn audit_path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n);
    if m < k {
        let mut path = audit_path(m, &leaves[..k]);
        path.push(tree_hash(&leaves[k..]));
        path
    } else {
        let mut path = audit_path(m - k, &leaves[k..]);
        path.push(tree_hash(&leaves[..k]));
        path
    }
}

/// JSON with object keys sorted and no whitespace: what Rekor stores as the canonicalized body
/// and signs in a SET (RFC 8785 for the ASCII strings and integers used here).
pub(crate) fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 9162 §2.1.3.2 root-from-path computation, as a verifier does it.
    fn root_from_path(index: u64, size: u64, leaf: [u8; 32], path: &[[u8; 32]]) -> [u8; 32] {
        let (mut fnode, mut snode) = (index, size - 1);
        let mut r = leaf;
        for p in path {
            if fnode & 1 == 1 || fnode == snode {
                r = node_hash(p, &r);
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        assert_eq!(snode, 0, "path too short");
        r
    }

    #[test]
    fn every_audit_path_leads_to_the_root() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(filler_leaf).collect();
            let root = tree_hash(&leaves);
            for m in 0..n {
                let path = audit_path(m, &leaves);
                assert_eq!(
                    root_from_path(m as u64, n as u64, leaves[m], &path),
                    root,
                    "leaf {m} of {n}"
                );
            }
        }
    }

    #[test]
    fn rfc6962_empty_and_single_leaf_hashes() {
        assert_eq!(
            hex::encode(tree_hash(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962 test vector: the leaf hash of the empty string.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = json!({"b": 1, "a": {"d": [true, "x"], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[true,"x"]},"b":1}"#
        );
    }

    #[test]
    fn checkpoint_has_rekor_v1_shape() {
        let log = TransparencyLog::new("rekor.example.test", 42);
        let entry = log.append(b"{}");
        assert_eq!(entry.log_index, FILLER_BEFORE_FIRST as u64);
        assert_eq!(
            entry.tree_size,
            (FILLER_BEFORE_FIRST + 1 + FILLER_AFTER_EACH) as u64
        );
        assert!(!entry.hashes.is_empty());
        let cp = log.checkpoint(entry.tree_size, &entry.root_hash, &log.key);
        let (note, sigs) = cp.split_once("\n\n").unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "rekor.example.test - 42");
        assert_eq!(lines[1], entry.tree_size.to_string());
        assert_eq!(B64.decode(lines[2]).unwrap(), entry.root_hash);
        let sig_line = sigs.strip_suffix('\n').unwrap();
        let (name, sig) = sig_line
            .strip_prefix("\u{2014} ")
            .unwrap()
            .split_once(' ')
            .unwrap();
        assert_eq!(name, "rekor.example.test");
        assert_eq!(&B64.decode(sig).unwrap()[..4], &log.key.key_id()[..4]);
    }
}
