//! Building tarballs in tests, byte by byte where the `tar` crate would refuse (`..` paths).

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::EntryType;

/// `npm pack` stamps every entry with 1985-10-26T08:15:00Z.
const NPM_PACK_MTIME: u64 = 499_162_500;

/// One tar entry to write.
pub(crate) struct TarEntry {
    pub(crate) path: String,
    pub(crate) data: Vec<u8>,
    pub(crate) kind: EntryType,
    pub(crate) link: Option<String>,
}

impl TarEntry {
    pub(crate) fn file(path: &str, data: &[u8]) -> Self {
        TarEntry {
            path: path.to_owned(),
            data: data.to_vec(),
            kind: EntryType::Regular,
            link: None,
        }
    }

    pub(crate) fn dir(path: &str) -> Self {
        TarEntry {
            path: path.to_owned(),
            data: Vec::new(),
            kind: EntryType::Directory,
            link: None,
        }
    }

    pub(crate) fn symlink(path: &str, target: &str) -> Self {
        TarEntry {
            path: path.to_owned(),
            data: Vec::new(),
            kind: EntryType::Symlink,
            link: Some(target.to_owned()),
        }
    }
}

/// A tar archive of `entries`, with their paths written verbatim (no checks, no normalising).
pub(crate) fn tar_bytes(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let name = &mut header.as_old_mut().name;
        assert!(
            entry.path.len() <= name.len(),
            "test paths fit in 100 bytes"
        );
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_size(u64::try_from(entry.data.len()).unwrap());
        header.set_mode(if entry.kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(NPM_PACK_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        if let Some(link) = &entry.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, entry.data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `bytes` gzipped at level 9, as npm pack does.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A gzipped tar archive of `entries`.
pub(crate) fn tgz(entries: &[TarEntry]) -> Vec<u8> {
    gzip(&tar_bytes(entries))
}

/// A tarball like `npm pack` makes for a package called `name` at `version`.
pub(crate) fn package_tgz(name: &str, version: &str) -> Vec<u8> {
    let package_json = serde_json::json!({
        "name": name,
        "version": version,
        "main": "index.js",
        "license": "MIT",
    });
    tgz(&[
        TarEntry::file(
            "package/package.json",
            serde_json::to_string_pretty(&package_json)
                .unwrap()
                .as_bytes(),
        ),
        TarEntry::file("package/index.js", b"module.exports = 42;\n"),
        TarEntry::file("package/README.md", b"# demo\n"),
    ])
}
