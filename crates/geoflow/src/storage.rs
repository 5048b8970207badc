//! Object storage: S3 (or any S3 API) in production, a local folder in the embedded default,
//! both through `object_store`.
//!
//! The ingest pipeline reads a source twice, so it needs a file: local objects are read in
//! place, remote ones are streamed to a temporary file first (memory stays bounded whatever
//! the object's size).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use geoflow_store::protocol::{ObjectProbe, ObjectState};
use geoflow_store::{ErrorClass, StoreError};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutResult, WriteMultipart,
};
use tokio::io::AsyncWriteExt;

/// The embedded default: a folder under `./geoflow-data`.
pub const DEFAULT_STORAGE: &str = "./geoflow-data/objects";

/// User metadata naming the upload job of an object written by the upload API.
pub const UPLOAD_JOB_METADATA: &str = "geoflow-upload-job";

/// The key readiness probes look for (and never find).
const PROBE_KEY: &str = "raw/.geoflow-probe";

/// A parsed `GEOFLOW_STORAGE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `s3://bucket[/prefix]`; endpoint, region and credentials come from the standard AWS
    /// environment (an ECS task role in production, `AWS_ENDPOINT_URL` for S3 emulators).
    S3 { bucket: String, prefix: String },
    /// A folder.
    Local(PathBuf),
}

impl StorageUrl {
    pub fn parse(url: &str) -> anyhow::Result<StorageUrl> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("storage URL {url:?} names no bucket: expected s3://bucket[/prefix]");
            }
            return Ok(StorageUrl::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if url.contains("://") && !url.starts_with("file://") {
            bail!("unsupported storage URL {url:?}: expected s3://bucket[/prefix] or a folder");
        }
        Ok(StorageUrl::Local(PathBuf::from(url.strip_prefix("file://").unwrap_or(url))))
    }

    pub fn open(&self) -> anyhow::Result<Storage> {
        match self {
            StorageUrl::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                // Emulators (moto, MinIO) listen on plain HTTP.
                if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")) {
                    builder = builder.with_allow_http(true);
                }
                let store = builder.build().with_context(|| format!("configuring S3 access to bucket {bucket}"))?;
                Ok(Storage { store: Arc::new(store), local_root: None, prefix: prefix.clone() })
            }
            StorageUrl::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the storage folder {}", dir.display()))?;
                let root = dir.canonicalize().with_context(|| format!("opening {}", dir.display()))?;
                let store = LocalFileSystem::new_with_prefix(&root)?;
                Ok(Storage { store: Arc::new(store), local_root: Some(root), prefix: String::new() })
            }
        }
    }
}

/// An object store and where keys start.
#[derive(Debug, Clone)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    /// The folder of a local store, whose objects are read in place.
    local_root: Option<PathBuf>,
    /// Key prefix in the bucket (no leading or trailing `/`); empty for none.
    pub prefix: String,
}

/// An object ready to be read as a file.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub meta: ObjectMeta,
    /// Removes the spooled copy when dropped.
    _spool: Option<tempfile::TempPath>,
}

impl Storage {
    /// The folder of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The full key of `relative` (a key under the storage's prefix).
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// Writes a small object whole, in one request: readers see the previous object or the
    /// new one, never a part (S3 PUTs are atomic; a local folder writes a temporary file and
    /// renames it into place).
    pub async fn put_whole(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<PutResult, object_store::Error> {
        let mut attributes = Attributes::new();
        if self.local_root.is_none() {
            attributes.insert(Attribute::ContentType, content_type.to_string().into());
        }
        let options = PutOptions { attributes, ..PutOptions::default() };
        self.store.put_opts(&ObjectPath::from(key), body.into(), options).await
    }

    /// A small object's bytes and metadata, or `None` when it does not exist.
    pub async fn get_whole(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, object_store::Error> {
        match self.store.get(&ObjectPath::from(key)).await {
            Ok(got) => {
                let meta = got.meta.clone();
                Ok(Some((got.bytes().await?, meta)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The keys of the objects under the folder `relative` (no deeper), in no set order.
    pub async fn list_keys(&self, relative: &str) -> Result<Vec<String>, object_store::Error> {
        let folder = ObjectPath::from(self.key(relative));
        let listed = self.store.list_with_delimiter(Some(&folder)).await?;
        Ok(listed.objects.into_iter().map(|o| o.location.to_string()).collect())
    }

    /// The newest object under the folder `relative` and any depth below, by when storage last
    /// modified it, then by key (the order a dataset in replace mode follows).
    pub async fn newest_object(&self, relative: &str) -> Result<Option<ObjectMeta>, object_store::Error> {
        let folder = ObjectPath::from(self.key(relative));
        let mut listed = self.store.list(Some(&folder));
        let mut newest: Option<ObjectMeta> = None;
        while let Some(meta) = listed.next().await.transpose()? {
            let order = |m: &ObjectMeta| (m.last_modified, m.location.to_string());
            if newest.as_ref().is_none_or(|n| order(&meta) > order(n)) {
                newest = Some(meta);
            }
        }
        Ok(newest)
    }

    /// Deletes every object under the folder `relative`, at any depth, and returns the keys it
    /// deleted (in no set order). An object that is already gone is no error.
    pub async fn delete_under(&self, relative: &str) -> Result<Vec<String>, object_store::Error> {
        let folder = ObjectPath::from(self.key(relative));
        let listed = self.store.list(Some(&folder)).map(|meta| meta.map(|m| m.location)).boxed();
        let mut deletions = self.store.delete_stream(listed);
        let mut deleted = Vec::new();
        while let Some(done) = deletions.next().await {
            match done {
                Ok(location) => deleted.push(location.to_string()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// The object's metadata, or `None` when it does not exist (any more).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, object_store::Error> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Proves the storage answers: a HEAD of a key under `raw/`, where every service may read
    /// (and list, so that the missing key is a 404 rather than a 403).
    pub async fn probe(&self) -> Result<(), object_store::Error> {
        self.head(&self.key(PROBE_KEY)).await.map(drop)
    }

    /// The job of the API upload that wrote the object, from its metadata. Always `None` for
    /// a local folder, which keeps no metadata and sends no notifications of its own.
    pub async fn upload_job(&self, key: &str) -> Result<Option<String>, object_store::Error> {
        if self.local_root.is_some() {
            return Ok(None);
        }
        let head = GetOptions { head: true, ..GetOptions::default() };
        match self.store.get_opts(&ObjectPath::from(key), head).await {
            Ok(got) => Ok(got.attributes.get(&Attribute::Metadata(UPLOAD_JOB_METADATA.into())).map(|v| v.to_string())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object as a file: in place when local, else streamed to a temporary file in
    /// `spool_dir`. `None` when the object does not exist.
    pub async fn fetch(&self, key: &str, spool_dir: &Path) -> Result<Option<Fetched>, FetchError> {
        let location = ObjectPath::from(key);
        let object = |source| FetchError::Object { key: key.to_string(), source };
        if let Some(root) = &self.local_root {
            let Some(meta) = self.head(key).await.map_err(object)? else { return Ok(None) };
            let path = LocalFileSystem::new_with_prefix(root)
                .and_then(|local| local.path_to_filesystem(&location))
                .map_err(object)?;
            return Ok(Some(Fetched { path, meta, _spool: None }));
        }
        let got = match self.store.get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(object(e)),
        };
        let meta = got.meta.clone();
        let spool_error = |source| FetchError::Spool { key: key.to_string(), dir: spool_dir.to_path_buf(), source };
        let spool = tempfile::Builder::new()
            .prefix(&spool_prefix(std::process::id()))
            .tempfile_in(spool_dir)
            .map_err(spool_error)?
            .into_temp_path();
        let mut file = tokio::fs::File::create(&spool).await.map_err(spool_error)?;
        let mut chunks = got.into_stream();
        while let Some(chunk) = chunks.next().await {
            file.write_all(&chunk.map_err(object)?).await.map_err(spool_error)?;
        }
        file.flush().await.map_err(spool_error)?;
        Ok(Some(Fetched { path: spool.to_path_buf(), meta, _spool: Some(spool) }))
    }
}

/// Why an object could not be made ready to read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Storage refused or failed the read.
    #[error("reading object {key}: {source}")]
    Object {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// The local copy of a remote object could not be written (a full or missing spool folder).
    #[error("spooling object {key} into {}: {source}", dir.display())]
    Spool {
        key: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// Storage's faults by their class; a spool folder that cannot take the copy may have room
    /// again later (another load's copy is removed), so it passes.
    pub fn class(&self) -> ErrorClass {
        match self {
            FetchError::Object { source, .. } => error_class(source),
            FetchError::Spool { .. } => ErrorClass::Unavailable,
        }
    }
}

/// Why streaming an upload into storage stopped.
#[derive(Debug, thiserror::Error)]
pub enum PutStreamError {
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body is empty")]
    Empty,
    #[error("reading the body: {0}")]
    Body(String),
    #[error("writing to object storage: {0}")]
    Storage(#[from] object_store::Error),
}

/// Parts of a streamed upload (S3's minimum part size is 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Parts uploaded at once: with [`PART_BYTES`], the memory an upload holds.
const PARTS_IN_FLIGHT: usize = 2;

impl Storage {
    /// Writes a stream of bytes to `key` (replacing any object there) and returns the write's
    /// result and size. Memory stays at a few parts whatever the size; a body smaller than one
    /// part is one plain write. Metadata is kept where the storage can hold it (S3, not a
    /// local folder). Nothing is left behind on failure.
    pub async fn put_stream<S, B, E>(
        &self,
        key: &str,
        body: S,
        limit: u64,
        metadata: &[(&'static str, String)],
    ) -> Result<(PutResult, u64), PutStreamError>
    where
        S: futures_util::Stream<Item = Result<B, E>>,
        B: Into<Bytes>,
        E: std::fmt::Display,
    {
        let location = ObjectPath::from(key);
        let mut attributes = Attributes::new();
        if self.local_root.is_none() {
            for (name, value) in metadata {
                attributes.insert(Attribute::Metadata((*name).into()), value.clone().into());
            }
        }
        let mut body = std::pin::pin!(body);
        let mut size = 0u64;
        let mut next = async || -> Result<Option<Bytes>, PutStreamError> {
            match body.next().await {
                None => Ok(None),
                Some(Err(e)) => Err(PutStreamError::Body(e.to_string())),
                Some(Ok(chunk)) => {
                    let chunk: Bytes = chunk.into();
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(PutStreamError::TooLarge { limit });
                    }
                    Ok(Some(chunk))
                }
            }
        };
        // Each part is one exact buffer filled by copying: the body's chunks (slices of the
        // connection's read buffers) are freed as soon as they are copied, so an upload holds
        // the part being filled and the parts in flight, nothing more.
        let new_part = || BytesMut::with_capacity(PART_BYTES);
        let mut part = new_part();
        let mut writer: Option<WriteMultipart> = None;
        let written = loop {
            let chunk = match next().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let mut rest = &chunk[..];
            let mut failed = None;
            while !rest.is_empty() {
                let take = rest.len().min(PART_BYTES - part.len());
                part.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if part.len() < PART_BYTES {
                    continue;
                }
                let upload = match writer.as_mut() {
                    Some(upload) => upload,
                    None => {
                        let opts =
                            PutMultipartOptions { attributes: std::mem::take(&mut attributes), ..Default::default() };
                        let started = self.store.put_multipart_opts(&location, opts).await?;
                        writer.insert(WriteMultipart::new_with_chunk_size(started, PART_BYTES))
                    }
                };
                if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    failed = Some(e.into());
                    break;
                }
                upload.put(std::mem::replace(&mut part, new_part()).freeze());
            }
            if let Some(e) = failed {
                break Err(e);
            }
        };
        let Some(mut writer) = writer else {
            // Smaller than one part: one plain write.
            written?;
            if part.is_empty() {
                return Err(PutStreamError::Empty);
            }
            let opts = PutOptions { attributes, ..PutOptions::default() };
            return Ok((self.store.put_opts(&location, part.freeze().into(), opts).await?, size));
        };
        let written = written.map(|()| {
            if !part.is_empty() {
                writer.put(part.freeze());
            }
        });
        match written {
            Ok(()) => Ok((writer.finish().await?, size)),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key, error = %abort, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }
}

/// Identifies the stored content of an object: its version id where the bucket keeps
/// versions, else its ETag.
pub fn object_version(meta: &ObjectMeta) -> Option<String> {
    meta.version.clone().or_else(|| meta.e_tag.clone())
}

/// When storage last modified the object.
pub fn object_modified(meta: &ObjectMeta) -> Option<time::OffsetDateTime> {
    let nanos = i128::from(meta.last_modified.timestamp()) * 1_000_000_000
        + i128::from(meta.last_modified.timestamp_subsec_nanos());
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Whose fault a storage error is: a refused or missing permission, a bad path or an
/// unsupported call is a configuration fault that retrying does not fix; anything else
/// (a connection failure, a 5xx, throttling) may pass.
pub fn error_class(e: &object_store::Error) -> ErrorClass {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. } => ErrorClass::Internal,
        object_store::Error::NotFound { .. } => ErrorClass::NotFound,
        _ => ErrorClass::Unavailable,
    }
}

/// The object under one key, as the load protocol asks about it under the dataset's lock.
#[derive(Debug, Clone)]
pub struct StoredObject {
    storage: Storage,
    key: String,
}

impl StoredObject {
    pub fn new(storage: Storage, key: impl Into<String>) -> StoredObject {
        StoredObject { storage, key: key.into() }
    }
}

#[async_trait::async_trait]
impl ObjectProbe for StoredObject {
    async fn state(&self) -> Result<ObjectState, StoreError> {
        match self.storage.head(&self.key).await {
            Ok(Some(meta)) => Ok(ObjectState::Present { version: object_version(&meta) }),
            Ok(None) => Ok(ObjectState::Absent),
            Err(e) => {
                Err(StoreError::classified(format!("reading the current version of {}", self.key), error_class(&e), e))
            }
        }
    }
}

/// Spool files are named after the process that wrote them, so that one process can tell
/// the leftovers of a dead one (killed while loading) from the files of a live one.
fn spool_prefix(pid: u32) -> String {
    format!("geoflow-object-{pid}-")
}

/// Removes the spool files in `dir` left by processes that no longer run; returns how many.
pub fn clean_spool(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("geoflow-object-")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_have_classes() {
        let source = || Box::new(std::io::Error::other("x")) as Box<dyn std::error::Error + Send + Sync>;
        let denied = object_store::Error::PermissionDenied { path: "k".into(), source: source() };
        assert_eq!(error_class(&denied), ErrorClass::Internal);
        let flaky = object_store::Error::Generic { store: "S3", source: source() };
        assert_eq!(error_class(&flaky), ErrorClass::Unavailable);
        let missing = object_store::Error::NotFound { path: "k".into(), source: source() };
        assert_eq!(error_class(&missing), ErrorClass::NotFound);
    }

    /// Bodies around the part size, cut into chunks that straddle part boundaries, are
    /// stored byte for byte.
    #[tokio::test]
    async fn streamed_uploads_are_stored_whole_across_parts() {
        let storage =
            Storage { store: Arc::new(object_store::memory::InMemory::new()), local_root: None, prefix: String::new() };
        for len in [1, PART_BYTES - 1, PART_BYTES, PART_BYTES + 1, 2 * PART_BYTES + 12_345] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let chunks = body.chunks(777_777).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)));
            let key = format!("raw/d/{len}");
            let (_, size) = storage.put_stream(&key, futures_util::stream::iter(chunks), u64::MAX, &[]).await.unwrap();
            assert_eq!(size, len as u64);
            let stored = storage.store.get(&ObjectPath::from(key.as_str())).await.unwrap().bytes().await.unwrap();
            assert!(stored == body, "a body of {len} bytes is stored as it was sent");
        }
        let none = futures_util::stream::iter(Vec::<Result<Bytes, std::io::Error>>::new());
        assert!(matches!(storage.put_stream("raw/d/empty", none, 10, &[]).await, Err(PutStreamError::Empty)));
        let big = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 11]))]);
        assert!(matches!(storage.put_stream("raw/d/big", big, 10, &[]).await, Err(PutStreamError::TooLarge { .. })));
        assert!(storage.store.head(&ObjectPath::from("raw/d/big")).await.is_err(), "nothing is left of a refused body");
    }

    #[test]
    fn spool_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let dead = dir.path().join(format!("{}abc", spool_prefix(exited.id())));
        let ours = dir.path().join(format!("{}def", spool_prefix(std::process::id())));
        let other = dir.path().join("unrelated-file");
        for file in [&dead, &ours, &other] {
            std::fs::write(file, b"x").unwrap();
        }
        assert_eq!(clean_spool(dir.path()).unwrap(), 1);
        assert!(!dead.exists() && ours.exists() && other.exists());
    }

    #[test]
    fn urls() {
        assert_eq!(
            StorageUrl::parse("s3://bucket/a/b/").unwrap(),
            StorageUrl::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!(
            StorageUrl::parse("s3://bucket").unwrap(),
            StorageUrl::S3 { bucket: "bucket".into(), prefix: "".into() }
        );
        assert!(StorageUrl::parse("s3://").is_err());
        assert!(StorageUrl::parse("gs://bucket").is_err());
        assert_eq!(StorageUrl::parse("file:///tmp/x").unwrap(), StorageUrl::Local("/tmp/x".into()));
        assert_eq!(StorageUrl::parse("data/objects").unwrap(), StorageUrl::Local("data/objects".into()));
    }

    #[tokio::test]
    async fn local_objects_are_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageUrl::Local(dir.path().join("objects")).open().unwrap();
        storage.store.put(&ObjectPath::from("raw/roads/a b.geojson"), "{}".into()).await.unwrap();
        let spool = tempfile::tempdir().unwrap();
        let fetched = storage.fetch("raw/roads/a b.geojson", spool.path()).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&fetched.path).unwrap(), "{}");
        assert!(fetched.path.starts_with(storage.local_root().unwrap()));
        assert!(object_version(&fetched.meta).is_some());
        assert!(storage.fetch("raw/roads/missing.geojson", spool.path()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn remote_objects_are_spooled_and_a_spool_that_cannot_take_them_may_pass() {
        let storage =
            Storage { store: Arc::new(object_store::memory::InMemory::new()), local_root: None, prefix: String::new() };
        storage.store.put(&ObjectPath::from("raw/roads/a.geojson"), "{}".into()).await.unwrap();
        let spool = tempfile::tempdir().unwrap();
        let fetched = storage.fetch("raw/roads/a.geojson", spool.path()).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&fetched.path).unwrap(), "{}");
        assert!(fetched.path.starts_with(spool.path()));
        drop(fetched);
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "the spooled copy goes with its handle");
        let missing_spool = spool.path().join("gone");
        let e = storage.fetch("raw/roads/a.geojson", &missing_spool).await.unwrap_err();
        assert!(matches!(e, FetchError::Spool { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::Unavailable);
        assert!(e.to_string().contains("raw/roads/a.geojson"), "{e}");
    }
}
