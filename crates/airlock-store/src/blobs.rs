//! Tarballs, content-addressed by their SHA-512, on any `object_store` backend.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt};
use tokio_util::io::ReaderStream;

/// Chunk size when streaming a tarball from local disk.
const READ_CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("`{0}` is not a SHA-512 hex digest")]
    BadDigest(String),
    #[error("the blob store failed")]
    Backend(#[source] object_store::Error),
}

/// Where tarball bytes live. Writes are atomic (the object store writes a temporary object and
/// renames it), and a blob is written before the database row that refers to it is committed,
/// so a crash leaves at most an unreferenced blob, never a version without its bytes.
#[derive(Clone, Debug)]
pub struct TarballBlobs {
    store: Arc<dyn ObjectStore>,
}

impl TarballBlobs {
    /// Blobs under `dir` on local disk (created if missing).
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            BlobError::Backend(object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })
        })?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(BlobError::Backend)?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    fn key(sha512_hex: &str) -> Result<ObjectPath, BlobError> {
        if sha512_hex.len() != 128
            || !sha512_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(BlobError::BadDigest(sha512_hex.to_owned()));
        }
        Ok(ObjectPath::from(format!(
            "sha512/{}/{}/{}",
            &sha512_hex[..2],
            &sha512_hex[2..4],
            sha512_hex
        )))
    }

    /// Stores `bytes` under their digest, unless a blob with that digest is already there.
    /// The caller has computed `sha512_hex` from `bytes`.
    pub async fn put(&self, sha512_hex: &str, bytes: Bytes) -> Result<(), BlobError> {
        let key = Self::key(sha512_hex)?;
        match self.store.head(&key).await {
            Ok(meta) if meta.size == bytes.len() as u64 => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(BlobError::Backend(e)),
        }
        self.store
            .put(&key, bytes.into())
            .await
            .map_err(BlobError::Backend)?;
        Ok(())
    }

    /// The blob's bytes as a stream, or `None` when there is no such blob.
    pub async fn get(
        &self,
        sha512_hex: &str,
    ) -> Result<Option<(u64, BoxStream<'static, object_store::Result<Bytes>>)>, BlobError> {
        let key = Self::key(sha512_hex)?;
        match self.store.get(&key).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = match result.payload {
                    // Local files: read in large chunks on the async runtime's file I/O;
                    // object_store's own stream reads 8 KiB per blocking task.
                    GetResultPayload::File(file, _) => {
                        let file = tokio::fs::File::from_std(file);
                        ReaderStream::with_capacity(file, READ_CHUNK_BYTES)
                            .map_err(|e| object_store::Error::Generic {
                                store: "local",
                                source: Box::new(e),
                            })
                            .boxed()
                    }
                    GetResultPayload::Stream(stream) => stream,
                };
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BlobError::Backend(e)),
        }
    }
}
