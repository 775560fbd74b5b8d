//! The registry's signing keyring on local disk: one small file in the data directory, readable
//! only by its owner and replaced atomically (temporary file, fsync, rename, fsync of the
//! directory). What the bytes mean is `airlock-trust`'s business; this stores them, serializes
//! writers with a lock file, and tells readers cheaply whether the file changed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The keyring file's name in the data directory.
const KEYRING_FILE: &str = "registry-keys.json";
/// Held (exclusive `flock`) by whoever rewrites the keyring: `airlock keys rotate`, or a
/// server creating the first key. Readers never take it: a rename is atomic.
const LOCK_FILE: &str = "registry-keys.lock";
/// Owner read/write only: the file holds the private signing key.
#[cfg(unix)]
const PRIVATE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
#[error("could not {action} {}", path.display())]
pub struct KeyringFileError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyringFileError {
    let path = path.to_owned();
    move |source| KeyringFileError {
        action,
        path,
        source,
    }
}

/// What the keyring file looked like when read: every rewrite is a new file renamed into
/// place, so a different inode (or size, or modification time) means new contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyringStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl KeyringStamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        }
    }
}

/// The keyring file of a data directory.
#[derive(Clone, Debug)]
pub struct KeyringFile {
    path: PathBuf,
    lock_path: PathBuf,
}

impl KeyringFile {
    #[must_use]
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(KEYRING_FILE),
            lock_path: data_dir.join(LOCK_FILE),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current stamp (one `stat`), `None` if there is no keyring yet.
    pub fn stamp(&self) -> Result<Option<KeyringStamp>, KeyringFileError> {
        match std::fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some(KeyringStamp::of(&metadata))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed("inspect", &self.path)(e)),
        }
    }

    /// The file's bytes and the stamp of exactly what was read; `None` if there is no keyring.
    pub fn read(&self) -> Result<Option<(Vec<u8>, KeyringStamp)>, KeyringFileError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("open", &self.path)(e)),
        };
        let metadata = file.metadata().map_err(failed("inspect", &self.path))?;
        #[cfg(unix)]
        if std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o077 != 0 {
            tracing::warn!(
                path = %self.path.display(),
                "the signing keyring is readable by other users: run `chmod 600` on it"
            );
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(failed("read", &self.path))?;
        Ok(Some((bytes, KeyringStamp::of(&metadata))))
    }

    /// Waits for the writer lock. Read, decide and write while holding it, so two rotations
    /// cannot both start from the same keyring and lose a key.
    pub fn lock(&self) -> Result<KeyringLock<'_>, KeyringFileError> {
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_MODE);
        let file = options
            .open(&self.lock_path)
            .map_err(failed("open", &self.lock_path))?;
        file.lock().map_err(failed("lock", &self.lock_path))?;
        Ok(KeyringLock {
            keyring: self,
            file,
        })
    }
}

/// The writer lock of a keyring file; released on drop.
#[derive(Debug)]
pub struct KeyringLock<'a> {
    keyring: &'a KeyringFile,
    file: File,
}

impl KeyringLock<'_> {
    pub fn read(&self) -> Result<Option<(Vec<u8>, KeyringStamp)>, KeyringFileError> {
        self.keyring.read()
    }

    /// Replaces the keyring: a private temporary file, synced, renamed over the old one, and
    /// the directory synced, so a crash leaves the old keyring or the new one, never a torn
    /// file or none.
    pub fn write(&self, bytes: &[u8]) -> Result<KeyringStamp, KeyringFileError> {
        let path = &self.keyring.path;
        let temp = path.with_extension("json.tmp");
        match std::fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("remove", &temp)(e)),
        }
        let mut options = OpenOptions::new();
        options.create_new(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_MODE);
        let mut file = options.open(&temp).map_err(failed("create", &temp))?;
        file.write_all(bytes).map_err(failed("write", &temp))?;
        file.sync_all().map_err(failed("sync", &temp))?;
        let stamp = KeyringStamp::of(&file.metadata().map_err(failed("inspect", &temp))?);
        drop(file);
        std::fs::rename(&temp, path).map_err(failed("replace", path))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(failed("sync", dir))?;
        }
        Ok(stamp)
    }
}

impl Drop for KeyringLock<'_> {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first says so explicitly.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_private_atomic_and_change_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = KeyringFile::in_data_dir(dir.path());
        assert!(keyring.stamp().unwrap().is_none());
        assert!(keyring.read().unwrap().is_none());

        let lock = keyring.lock().unwrap();
        let first = lock.write(b"one").unwrap();
        assert_eq!(keyring.stamp().unwrap(), Some(first));
        let (bytes, stamp) = keyring.read().unwrap().unwrap();
        assert_eq!((bytes.as_slice(), stamp), (&b"one"[..], first));

        // Same length, written within the same clock tick: still a different stamp.
        let second = lock.write(b"two").unwrap();
        assert_ne!(first, second);
        assert_eq!(keyring.read().unwrap().unwrap().0, b"two");
        drop(lock);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keyring.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_second_writer_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = KeyringFile::in_data_dir(dir.path());
        let lock = keyring.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = keyring.clone();
        let waiter = std::thread::spawn(move || {
            let _second = other.lock().unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second lock must wait"
        );
        drop(lock);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn errors_name_the_file_and_keep_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = KeyringFile::in_data_dir(&dir.path().join("missing-dir"));
        let e = keyring.lock().unwrap_err();
        assert!(e.to_string().starts_with("could not open "), "{e}");
        assert!(e.to_string().ends_with("registry-keys.lock"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
