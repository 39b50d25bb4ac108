//! Client multipart uploads: ids, parts and completion. On S3 they map 1:1 onto the store's
//! native multipart API; on local disk the parts go to one staging file (see `local`).

use super::local::local_part_paths;
use super::{lfs_key, PutError, Storage};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::multipart::PartId;
use object_store::path::Path as StorePath;
use object_store::PutPayload;
use sha2::{Digest, Sha256};

/// S3 copies objects up to 5 GiB in one request; larger ones are re-streamed.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

fn native_key(key: &str) -> StorePath {
    StorePath::from(format!("tmp/multipart/{key}"))
}

/// A client multipart upload: our key, plus the store's own upload id when it is native.
struct UploadRef {
    key: String,
    native_id: Option<String>,
}

impl UploadRef {
    /// Upload ids travel in URL paths: `<uuid>` or `<uuid>-<hex of the store's upload id>`.
    fn parse(upload_id: &str) -> Option<UploadRef> {
        match upload_id.split_once('-') {
            None => Some(UploadRef { key: upload_id.to_string(), native_id: None }),
            Some((key, hex_id)) => {
                let id = String::from_utf8(hex::decode(hex_id).ok()?).ok()?;
                Some(UploadRef { key: key.to_string(), native_id: Some(id) })
            }
        }
    }
}

impl Storage {
    /// A key as the native multipart API (which bypasses the prefix) must see it.
    fn native_path(&self, key: &StorePath) -> StorePath {
        if self.prefix.is_empty() {
            key.clone()
        } else {
            StorePath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Starts a client multipart upload; returns its id (used in part URLs).
    pub async fn begin_multipart(&self) -> Result<String, object_store::Error> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        match &self.native_multipart {
            Some(mp) => {
                let id = mp.create_multipart(&self.native_path(&native_key(&key))).await?;
                Ok(format!("{key}-{}", hex::encode(id.as_bytes())))
            }
            None => Ok(key),
        }
    }

    /// Stores part `part` (1-based) of exactly `size` bytes at `offset` of an upload of `total`
    /// bytes; returns its ETag.
    pub async fn put_part<S, E>(&self, upload_id: &str, part: u32, offset: u64, size: u64, total: u64, body: S) -> Result<String, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let upload = UploadRef::parse(upload_id).ok_or_else(|| PutError::Body("malformed upload id".into()))?;
        match (&self.native_multipart, &upload.native_id, &self.local_root) {
            (Some(mp), Some(id), _) => {
                // A native part is sent in one request: buffered, under the process-wide budget.
                let _share = self.budget.take(size as usize).await;
                let mut buf = bytes::BytesMut::new();
                let mut body = body;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
                    if (buf.len() + chunk.len()) as u64 > size {
                        return Err(PutError::SizeMismatch { expected: size, actual: (buf.len() + chunk.len()) as u64 });
                    }
                    buf.extend_from_slice(&chunk);
                }
                if buf.len() as u64 != size {
                    return Err(PutError::SizeMismatch { expected: size, actual: buf.len() as u64 });
                }
                let id = id.clone();
                let part_id = mp
                    .put_part(&self.native_path(&native_key(&upload.key)), &id, part as usize - 1, PutPayload::from(buf.freeze()))
                    .await?;
                Ok(part_id.content_id)
            }
            (_, None, Some(root)) => self.put_local_part(root, &upload.key, part, offset, size, total, body).await,
            _ => Err(PutError::Body("this upload id does not belong to this storage".into())),
        }
    }

    /// Whether a part of a local upload is stored (native parts are checked by the store).
    pub async fn part_exists(&self, upload_id: &str, part: u32) -> Result<bool, object_store::Error> {
        let Some(upload) = UploadRef::parse(upload_id) else { return Ok(false) };
        match (&upload.native_id, &self.local_root) {
            (Some(_), _) => Ok(true),
            (None, Some(root)) => Ok(local_part_paths(root, &upload.key, part).1.exists()),
            (None, None) => Ok(false),
        }
    }

    /// Completes a client multipart upload of `count` parts (with the ETags the client got),
    /// verifies size and SHA-256 of the whole, and only then publishes it under its oid.
    pub async fn complete_multipart(&self, upload_id: &str, etags: Vec<String>, oid: &str, expected_size: u64) -> Result<(), PutError> {
        let upload = UploadRef::parse(upload_id).ok_or_else(|| PutError::Body("malformed upload id".into()))?;
        let count = etags.len() as u32;
        match (&self.native_multipart, &upload.native_id, &self.local_root) {
            (Some(mp), Some(id), _) => {
                let tmp = native_key(&upload.key);
                let parts = etags.into_iter().map(|content_id| PartId { content_id }).collect();
                // Not aborted on failure: the client may still upload missing parts and retry.
                if let Err(e) = mp.complete_multipart(&self.native_path(&tmp), &id.clone(), parts).await {
                    return Err(PutError::Parts(format!("parts were not uploaded or their ETags do not match: {e}")));
                }
                let result = self.publish_from(&tmp, oid, expected_size).await;
                let _ = self.store.delete(&tmp).await;
                result
            }
            (_, None, Some(root)) => self.complete_local(root, &upload.key, count, oid, expected_size).await,
            _ => Err(PutError::Body("this upload id does not belong to this storage".into())),
        }
    }

    /// Checks a completed temporary object, then publishes it under its oid.
    async fn publish_from(&self, tmp: &StorePath, oid: &str, expected_size: u64) -> Result<(), PutError> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = self.store.get(tmp).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let sha = hex::encode(hasher.finalize());
        if size != expected_size {
            return Err(PutError::SizeMismatch { expected: expected_size, actual: size });
        }
        if sha != oid {
            return Err(PutError::HashMismatch { expected: oid.to_string(), actual: sha });
        }
        if size <= MAX_SINGLE_COPY {
            self.store.copy(tmp, &lfs_key(oid)).await?;
            Ok(())
        } else {
            let stream = self.store.get(tmp).await?.into_stream();
            self.put_verified(oid, expected_size, stream).await
        }
    }
}
