//! The subscriber's locker (docs/protocol.md, section 12b): opaque objects the box sealed, and
//! one sealed index, on the mutual-TLS listener. The server sees ids, sizes and times only.
//!
//! On disk, under `locker_dir`:
//!
//! - `staging/<upload id>`: an upload's bytes. The database's `received` says how many count;
//!   it is raised only after the bytes are fsync'd, so after a crash the file may hold more
//!   (dropped at the next write) or, if the disk lost what it acknowledged, fewer (the count
//!   follows the file: the smaller is trusted).
//! - `objects/<subscriber key>/<object id>`: committed objects; the key is a hash of the
//!   subscriber's name, so directory listings and backups do not name subscribers.
//!
//! An object becomes visible through its row, written after its file is whole, in place and
//! on disk: a crash at any point leaves an upload (resumable, deleted when idle) or an object,
//! never part of one. Files without rows are swept at start and hourly ([`sweep`]).

use crate::routes::{AppError, AppState, authenticate};
use crate::store::{Commit, IndexWrite, LockerAccount, LockerObject, LockerUpload};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use stb_server_common::listener::ConnInfo;
use stb_server_common::now_ms;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

/// The largest index (sealed JSON naming every file).
pub const MAX_INDEX_BYTES: usize = 4 << 20;
/// The most bytes one upload request appends.
pub const MAX_PATCH_BYTES: usize = 16 << 20;
/// Unfinished uploads one subscriber may have.
pub const MAX_UPLOADS: u64 = 16;
/// The most a small JSON request body may take.
const MAX_JSON_BYTES: usize = 1024;
/// Bytes read from an object file per step of a download.
const READ_CHUNK: usize = 256 << 10;
/// Locks spreading subscribers' writes (see [`Locker::turn`]).
const TURNS: usize = 64;

static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");

/// The locker's directory and the in-process turns of its writers.
#[derive(Debug)]
pub struct Locker {
    dir: PathBuf,
    turns: Vec<tokio::sync::Mutex<()>>,
}

impl Locker {
    /// The locker under `dir` (nothing is created until [`Locker::prepare`]).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::default()).collect(),
        }
    }

    /// Creates `staging/` and `objects/` (mode 0700: the bytes are sealed, but their sizes
    /// and times are the subscribers' business).
    pub fn prepare(&self) -> io::Result<()> {
        for sub in ["staging", "objects"] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir.join(sub))?;
        }
        Ok(())
    }

    /// The staging file of an upload.
    pub fn staging_path(&self, upload: &str) -> PathBuf {
        self.dir.join("staging").join(upload)
    }

    /// The directory of a subscriber's objects.
    pub fn objects_dir(&self, subscriber: &str) -> PathBuf {
        self.dir.join("objects").join(subscriber_key(subscriber))
    }

    /// Where an object of a subscriber lives.
    pub fn object_path(&self, subscriber: &str, id: &str) -> PathBuf {
        self.objects_dir(subscriber).join(id)
    }

    /// One subscriber's writes (quota checks with the write they allow, upload counts with
    /// the upload they allow) take turns in this process. Instances sharing a database do not
    /// see each other's turns: a subscriber writing through two at once may pass the quota
    /// by one request; an upload's bytes are still guarded across instances (a file lock).
    async fn turn(&self, subscriber: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let digest = Sha256::digest(subscriber.as_bytes());
        self.turns[usize::from(digest[0]) % TURNS].lock().await
    }
}

/// The name of a subscriber's object directory: the first 16 bytes of SHA-256 of the name,
/// in hex. Stable (the sweep maps directories back to subscribers by it), not the name.
pub fn subscriber_key(subscriber: &str) -> String {
    let digest = Sha256::digest(subscriber.as_bytes());
    hex::encode(&digest[..16])
}

/// Whether `s` is an id as the locker takes them: exactly 32 lowercase hex digits (so an id
/// is always a plain file name: no path can be smuggled in).
pub fn is_id(s: &str) -> bool {
    stb_protocol::locker::ObjectId::parse(s).is_ok()
}

fn checked_id<'a>(s: &'a str, what: &str) -> Result<&'a str, LockerError> {
    if is_id(s) {
        Ok(s)
    } else {
        Err(AppError::BadRequest(format!("{what}: 32 lowercase hex digits")).into())
    }
}

/// Where an upload stands, as the box sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadState {
    /// The upload's id.
    pub upload: String,
    /// The object it becomes.
    pub object: String,
    /// Bytes the server holds (resume from here).
    pub received: u64,
}

impl From<&LockerUpload> for UploadState {
    fn from(u: &LockerUpload) -> Self {
        Self {
            upload: u.id.clone(),
            object: u.object.clone(),
            received: u.received,
        }
    }
}

/// `GET /v1/locker`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// The subscriber's quota.
    pub quota_bytes: u64,
    /// Objects, unfinished uploads and the index.
    pub used_bytes: u64,
    /// The index's version (0: none).
    pub index_version: u64,
    /// Committed objects, oldest first.
    pub objects: Vec<LockerObject>,
}

#[derive(serde::Deserialize)]
struct NewUpload {
    object: String,
}

/// Why a locker request was refused; each says only what the subscriber may know.
#[derive(Debug, thiserror::Error)]
pub enum LockerError {
    /// Refusals shared with the other endpoints: standing (403), bad requests, failures.
    #[error(transparent)]
    App(#[from] AppError),
    /// No such object of this subscriber.
    #[error("no such object")]
    NoObject,
    /// No such upload of this subscriber.
    #[error("no such upload")]
    NoUpload,
    /// No index stored yet.
    #[error("the locker has no index yet")]
    NoIndex,
    /// An index write without the version it replaces.
    #[error("If-Match required")]
    IfMatchRequired,
    /// The index is at another version (this one) than the writer read.
    #[error("the index changed")]
    IndexChanged(u64),
    /// The object id is committed already.
    #[error("object exists")]
    ObjectExists,
    /// [`MAX_UPLOADS`] unfinished.
    #[error("too many unfinished uploads")]
    TooManyUploads,
    /// The write would take the subscriber past their quota (bytes).
    #[error("the locker is full (quota {0} bytes)")]
    QuotaExceeded(u64),
    /// The server's disk is full.
    #[error("the server's storage is full")]
    StorageFull,
    /// A body over its limit (bytes).
    #[error("the request body is too large (at most {0} bytes)")]
    TooLarge(usize),
    /// A range outside the object (its size).
    #[error("range not satisfiable")]
    Unsatisfiable(u64),
    /// The upload is elsewhere than the request said (or busy with another request): the
    /// answer is where it is.
    #[error("the upload is at another offset")]
    Offset(UploadState),
}

impl From<anyhow::Error> for LockerError {
    fn from(e: anyhow::Error) -> Self {
        LockerError::App(AppError::Internal(e))
    }
}

impl From<io::Error> for LockerError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                tracing::error!(error = %e, "locker: the disk is full");
                LockerError::StorageFull
            }
            _ => anyhow::Error::from(e).context("locker file").into(),
        }
    }
}

impl IntoResponse for LockerError {
    fn into_response(self) -> Response {
        let text = format!("{self}\n");
        let etag = |v: u64| [(header::ETAG, format!("\"{v}\""))];
        let status = match self {
            LockerError::App(e) => return e.into_response(),
            LockerError::Offset(state) => {
                return (StatusCode::CONFLICT, Json(state)).into_response();
            }
            LockerError::NoIndex => return (StatusCode::NOT_FOUND, etag(0), text).into_response(),
            LockerError::IndexChanged(v) => {
                return (StatusCode::PRECONDITION_FAILED, etag(v), text).into_response();
            }
            LockerError::Unsatisfiable(size) => {
                let range = [(header::CONTENT_RANGE, format!("bytes */{size}"))];
                return (StatusCode::RANGE_NOT_SATISFIABLE, range, text).into_response();
            }
            LockerError::NoObject | LockerError::NoUpload => StatusCode::NOT_FOUND,
            LockerError::IfMatchRequired => StatusCode::PRECONDITION_REQUIRED,
            LockerError::ObjectExists => StatusCode::CONFLICT,
            LockerError::TooManyUploads => StatusCode::TOO_MANY_REQUESTS,
            LockerError::QuotaExceeded(_) | LockerError::StorageFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            LockerError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        };
        (status, text).into_response()
    }
}

/// The locker's routes (mutual TLS). Bodies are read by the handlers with their own limits
/// ([`MAX_PATCH_BYTES`], [`MAX_INDEX_BYTES`]), after the subscriber is known.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/locker", get(summary))
        .route("/v1/locker/index", get(read_index).put(write_index))
        .route("/v1/locker/uploads", post(new_upload))
        .route(
            "/v1/locker/uploads/{upload}",
            get(upload_state).patch(append).delete(abort),
        )
        .route("/v1/locker/uploads/{upload}/commit", post(commit))
        .route(
            "/v1/locker/objects/{id}",
            get(read_object).delete(delete_object),
        )
        .with_state(state)
}

/// Reads a whole body of at most `limit` bytes. A body over it is still read, and dropped,
/// up to twice the limit before the 413: the client is still sending, and an HTTP/1.1 client
/// whose body is cut off sees a broken connection instead of the answer. Beyond that (or
/// declared beyond that) the connection is given up at once.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, LockerError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_up_to = limit.saturating_mul(2);
    if declared.is_some_and(|n| n > drain_up_to as u64) {
        return Err(LockerError::TooLarge(limit));
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| (n as usize).min(limit)));
    let mut seen = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("the body broke off: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > drain_up_to {
            break;
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(LockerError::TooLarge(limit));
    }
    Ok(Bytes::from(buf))
}

fn no_store() -> [(HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "private, no-store")]
}

/// Quota and use of the subscriber.
async fn account(state: &AppState, subscriber: &str) -> Result<(LockerAccount, u64), LockerError> {
    let account = state
        .store
        .locker_accounts(Some(subscriber))
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("subscriber {subscriber} vanished"))?;
    let quota = account
        .quota_bytes
        .unwrap_or_else(|| state.config.locker_quota_bytes());
    Ok((account, quota))
}

async fn summary(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let (account, quota_bytes) = account(&state, &sub.name).await?;
    let objects = state.store.locker_objects(&sub.name).await?;
    Ok((
        no_store(),
        Json(Summary {
            quota_bytes,
            used_bytes: account.used_bytes,
            index_version: account.index_version,
            objects,
        }),
    )
        .into_response())
}

async fn read_index(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let (version, body) = state
        .store
        .locker_index(&sub.name)
        .await?
        .ok_or(LockerError::NoIndex)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (header::ETAG, format!("\"{version}\"")),
        ],
        body,
    )
        .into_response())
}

/// The version an `If-Match: "N"` names.
fn if_match(headers: &HeaderMap) -> Result<u64, LockerError> {
    let value = headers
        .get(header::IF_MATCH)
        .ok_or(LockerError::IfMatchRequired)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix('"')?.strip_suffix('"'))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::BadRequest("If-Match: \"<version>\"".into()).into())
}

/// Replaces the index if it is still at the version the writer read (optimistic
/// concurrency: of two boxes that read version N, one stores N+1, the other is told to read
/// again). An index that does not grow is taken over the quota: a box deletes a file by
/// removing its entry first.
async fn write_index(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let expected = if_match(&headers)?;
    let body = read_body(&headers, body, MAX_INDEX_BYTES).await?;
    let _turn = state.locker.turn(&sub.name).await;
    let (account, quota) = account(&state, &sub.name).await?;
    let len = body.len() as u64;
    if len > account.index_bytes
        && account.used_bytes.saturating_sub(account.index_bytes) + len > quota
    {
        return Err(LockerError::QuotaExceeded(quota));
    }
    match state
        .store
        .put_locker_index(&sub.name, expected, &body, now_ms())
        .await?
    {
        IndexWrite::Stored(v) => {
            Ok(([(header::ETAG, format!("\"{v}\""))], no_store()).into_response())
        }
        IndexWrite::Changed(v) => Err(LockerError::IndexChanged(v)),
    }
}

async fn new_upload(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let body = read_body(&headers, body, MAX_JSON_BYTES).await?;
    let wanted: NewUpload = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("expected {{\"object\": \"<id>\"}}: {e}")))?;
    let object = checked_id(&wanted.object, "object")?;
    let _turn = state.locker.turn(&sub.name).await;
    if state
        .store
        .locker_object(&sub.name, object)
        .await?
        .is_some()
    {
        return Err(LockerError::ObjectExists);
    }
    if state.store.locker_upload_count(&sub.name).await? >= MAX_UPLOADS {
        return Err(LockerError::TooManyUploads);
    }
    let upload = hex::encode(stb_protocol::random_array::<16>());
    state
        .store
        .add_locker_upload(&sub.name, &upload, object, now_ms())
        .await?;
    let created = UploadState {
        upload,
        object: object.to_owned(),
        received: 0,
    };
    Ok((StatusCode::CREATED, no_store(), Json(created)).into_response())
}

async fn upload_state(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(upload): Path<String>,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let upload = checked_id(&upload, "upload")?;
    let row = upload_row(&state, &sub.name, upload).await?;
    Ok((no_store(), Json(UploadState::from(&row))).into_response())
}

/// An upload's staging file, open and locked against every other writer of it (another
/// request, another instance sharing the directory). `None`: someone else holds it.
async fn lock_staging(path: PathBuf) -> Result<Option<File>, LockerError> {
    let opened = tokio::task::spawn_blocking(move || -> io::Result<Option<File>> {
        let mut open = std::fs::OpenOptions::new();
        open.read(true).write(true);
        let file = match open.clone().create_new(true).open(&path) {
            // A new name is made durable before any byte is acknowledged in it (fdatasync
            // covers the file, not its directory entry).
            Ok(file) => {
                sync_dir(path.parent().unwrap_or(&path))?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open.open(&path)?,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    })
    .await
    .map_err(anyhow::Error::from)??;
    Ok(opened)
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, LockerError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(anyhow::Error::from)??)
}

/// One of the subscriber's uploads (another's is unknown here too).
async fn upload_row(
    state: &AppState,
    subscriber: &str,
    upload: &str,
) -> Result<LockerUpload, LockerError> {
    state
        .store
        .locker_upload(subscriber, upload)
        .await?
        .ok_or(LockerError::NoUpload)
}

/// The upload's row and its locked staging file, in step: bytes beyond the count (written
/// before a crash, never acknowledged) are dropped, and a file shorter than the count (the
/// disk lost them) lowers the count to it.
async fn locked_upload(
    state: &AppState,
    subscriber: &str,
    upload: &str,
) -> Result<(LockerUpload, File), LockerError> {
    let mut row = upload_row(state, subscriber, upload).await?;
    let Some(file) = lock_staging(state.locker.staging_path(upload)).await? else {
        return Err(LockerError::Offset(UploadState::from(&row)));
    };
    // Read again under the lock: the count may have moved while another held it.
    row = upload_row(state, subscriber, upload).await?;
    let received = row.received;
    let (file, held) = blocking(move || {
        let len = file.metadata()?.len();
        if len > received {
            file.set_len(received)?;
            file.sync_data()?;
        }
        Ok((file, len.min(received)))
    })
    .await?;
    if held < received {
        tracing::warn!(
            upload,
            received,
            held,
            "locker: a staging file lost bytes; resuming from what it holds"
        );
        if !state
            .store
            .set_locker_received(upload, received, held, now_ms())
            .await?
        {
            return Err(LockerError::NoUpload);
        }
        row.received = held;
    }
    Ok((row, file))
}

/// `PATCH`: appends the body at `Upload-Offset` if that is what the server holds, on disk
/// before the answer. All or nothing: a body that breaks off, a quota or a full disk append
/// nothing.
async fn append(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(upload): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let upload = checked_id(&upload, "upload")?.to_owned();
    let offset = headers
        .get(&UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| AppError::BadRequest("Upload-Offset: <bytes received> required".into()))?;
    // The slow part (the network) before the turn, which covers only disk and database.
    let body = read_body(&headers, body, MAX_PATCH_BYTES).await?;
    let _turn = state.locker.turn(&sub.name).await;
    let (mut row, file) = locked_upload(&state, &sub.name, &upload).await?;
    if offset != row.received {
        return Err(LockerError::Offset(UploadState::from(&row)));
    }
    let (account, quota) = account(&state, &sub.name).await?;
    let len = body.len() as u64;
    if account.used_bytes + len > quota {
        return Err(LockerError::QuotaExceeded(quota));
    }
    let at = row.received;
    // The file stays locked until the count is moved (dropped at the end of this function).
    let file = blocking(move || {
        let written = file.write_all_at(&body, at).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Back to what the database counts, so nothing is half appended.
            let _ = file.set_len(at).and_then(|()| file.sync_data());
            return Err(e);
        }
        Ok(file)
    })
    .await?;
    if !state
        .store
        .set_locker_received(&upload, at, at + len, now_ms())
        .await?
    {
        return Err(LockerError::NoUpload);
    }
    drop(file);
    row.received = at + len;
    Ok((no_store(), Json(UploadState::from(&row))).into_response())
}

/// Links `staging` under `target` in `dir` without replacing anything (a rename would replace
/// an object another commit put there), then makes the name durable. A link this upload made
/// before (a retried commit) counts. `false`: the name is taken by other bytes.
fn place(staging: &File, staging_path: &FsPath, dir: &FsPath, target: &FsPath) -> io::Result<bool> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => sync_dir(dir.parent().unwrap_or(dir))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    match std::fs::hard_link(staging_path, target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !same_file(staging, target)? {
                return Ok(false);
            }
        }
        Err(e) => return Err(e),
    }
    sync_dir(dir)?;
    Ok(true)
}

/// Whether `path` names the open file `file`.
fn same_file(file: &File, path: &FsPath) -> io::Result<bool> {
    let (a, b) = (file.metadata()?, std::fs::metadata(path)?);
    Ok((a.dev(), a.ino()) == (b.dev(), b.ino()))
}

fn sync_dir(dir: &FsPath) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `POST .../commit`: the object appears whole or not at all. The staging file is made
/// durable, linked under the object's name (durable too), then one transaction lists the
/// object and drops the upload.
async fn commit(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(upload): Path<String>,
) -> Result<Response, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let upload = checked_id(&upload, "upload")?.to_owned();
    let _turn = state.locker.turn(&sub.name).await;
    let (row, file) = locked_upload(&state, &sub.name, &upload).await?;
    if state
        .store
        .locker_object(&sub.name, &row.object)
        .await?
        .is_some()
    {
        return Err(LockerError::ObjectExists);
    }
    let staging_path = state.locker.staging_path(&upload);
    let dir = state.locker.objects_dir(&sub.name);
    let target = dir.join(&row.object);
    let (file, placed) = {
        let (staging_path, target) = (staging_path.clone(), target.clone());
        blocking(move || {
            file.sync_all()?;
            let placed = place(&file, &staging_path, &dir, &target)?;
            Ok((file, placed))
        })
        .await?
    };
    if !placed {
        return Err(LockerError::ObjectExists);
    }
    let now = now_ms();
    // A database error leaves the placed name: the transaction may have committed, and if it
    // did not, the upload's row still covers the name (a retry finds it, the sweep spares it).
    let refused = match state
        .store
        .commit_locker_upload(&sub.name, &row, now)
        .await?
    {
        Commit::Committed => None,
        Commit::ObjectExists => Some(LockerError::ObjectExists),
        Commit::UploadGone => Some(LockerError::NoUpload),
    };
    if let Some(refused) = refused {
        // Not listed: take our name away again (only if it is still ours).
        let _ = blocking(move || {
            if same_file(&file, &target)? {
                std::fs::remove_file(&target)?;
            }
            Ok(())
        })
        .await;
        return Err(refused);
    }
    // The staging name is no longer needed; if this is lost, the sweep removes it.
    if let Err(e) = tokio::fs::remove_file(&staging_path).await {
        tracing::warn!(upload, error = %e, "locker: staging file not removed after commit");
    }
    let object = LockerObject {
        id: row.object,
        size: row.received,
        created_ms: now,
    };
    Ok((StatusCode::CREATED, no_store(), Json(object)).into_response())
}

async fn abort(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(upload): Path<String>,
) -> Result<StatusCode, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let upload = checked_id(&upload, "upload")?;
    if !state.store.delete_locker_upload(&sub.name, upload).await? {
        return Err(LockerError::NoUpload);
    }
    remove_if_there(&state.locker.staging_path(upload)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a file whose row is gone; a failure is logged (the sweep tries again).
async fn remove_if_there(path: &FsPath) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "locker: file not removed"),
    }
}

/// What one `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsked {
    /// No range, or one the server ignores (another unit, several ranges, malformed): all.
    Whole,
    /// Bytes `[start, end)`.
    Part(u64, u64),
    /// A range wholly outside the object.
    Unsatisfiable,
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` (RFC 9110, 14.1.2). Anything else
/// is ignored, as the RFC lets a server do, and the whole object is sent.
pub fn range_asked(header: Option<&str>, size: u64) -> RangeAsked {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsked::Whole;
    };
    if spec.contains(',') {
        return RangeAsked::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsked::Whole;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.is_empty(), number(first), number(last)) {
        // bytes=-n: the last n bytes.
        (true, _, Some(n)) if n == 0 || size == 0 => RangeAsked::Unsatisfiable,
        (true, _, Some(n)) => RangeAsked::Part(size.saturating_sub(n), size),
        (false, Some(a), _) if last.is_empty() => {
            if a >= size {
                RangeAsked::Unsatisfiable
            } else {
                RangeAsked::Part(a, size)
            }
        }
        (false, Some(a), Some(b)) if a <= b => {
            if a >= size {
                RangeAsked::Unsatisfiable
            } else {
                RangeAsked::Part(a, b.saturating_add(1).min(size))
            }
        }
        _ => RangeAsked::Whole,
    }
}

/// Streams an object (or one range of it) from its file: recordings are gigabytes, so it is
/// read a chunk at a time, never whole.
async fn read_object(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LockerError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let sub = authenticate(&state, &conn).await?;
    let id = checked_id(&id, "object")?;
    let object = state
        .store
        .locker_object(&sub.name, id)
        .await?
        .ok_or(LockerError::NoObject)?;
    let mut file = match tokio::fs::File::open(state.locker.object_path(&sub.name, id)).await {
        Ok(f) => f,
        // Deleted between the row and the file.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LockerError::NoObject),
        Err(e) => return Err(e.into()),
    };
    let size = object.size;
    let on_disk = file.metadata().await?.len();
    if on_disk != size {
        return Err(
            anyhow::anyhow!("locker object {id}: {on_disk} bytes on disk, {size} listed").into(),
        );
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range_asked(range, size) {
        RangeAsked::Whole => (StatusCode::OK, 0, size),
        RangeAsked::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        RangeAsked::Unsatisfiable => return Err(LockerError::Unsatisfiable(size)),
    };
    file.seek(io::SeekFrom::Start(start)).await?;
    let chunks =
        futures_util::stream::try_unfold((file, end - start), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut buf = vec![0; READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK))];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object file cut short",
                ));
            }
            buf.truncate(n);
            Ok::<_, io::Error>(Some((Bytes::from(buf), (file, left - n as u64))))
        });
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // The length is known: the box checks it against the object's layout before reading.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{size}", end - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&range).map_err(anyhow::Error::from)?,
        );
    }
    Ok(response)
}

/// Deletes the row, then the file (a file left by a crash in between is swept).
async fn delete_object(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, LockerError> {
    let sub = authenticate(&state, &conn).await?;
    let id = checked_id(&id, "object")?;
    if !state.store.delete_locker_object(&sub.name, id).await? {
        return Err(LockerError::NoObject);
    }
    remove_if_there(&state.locker.object_path(&sub.name, id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Uploads idle past `locker_upload_idle_secs` (rows and files).
    pub idle_uploads: usize,
    /// Staging files without an upload.
    pub staging_files: usize,
    /// Object files without an object or an upload of that id.
    pub object_files: usize,
}

/// The names in `dir` that are ids (anything else is not the locker's and is left alone).
fn ids_in(dir: &FsPath) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str().filter(|n| is_id(n)) {
            ids.push(name.to_owned());
        }
    }
    Ok(ids)
}

/// Deletes idle uploads, then files without rows. Safe while requests run: files are listed
/// before rows are read, and every file is created after its row (an upload's) or, for an
/// object, while its upload's row exists, which one transaction swaps for the object's.
pub async fn sweep(state: &AppState, now_ms: i64) -> anyhow::Result<Swept> {
    let locker = &state.locker;
    let mut swept = Swept::default();
    let idle_ms = i64::try_from(state.config.locker_upload_idle_secs.saturating_mul(1000))?;
    for upload in state
        .store
        .delete_idle_locker_uploads(now_ms.saturating_sub(idle_ms))
        .await?
    {
        remove_if_there(&locker.staging_path(&upload)).await;
        swept.idle_uploads += 1;
    }

    let staging_dir = locker.dir.join("staging");
    let staged = tokio::task::spawn_blocking(move || ids_in(&staging_dir)).await??;
    let uploads = state.store.locker_upload_ids().await?;
    for file in staged.iter().filter(|f| !uploads.contains(*f)) {
        remove_if_there(&locker.staging_path(file)).await;
        swept.staging_files += 1;
    }

    let objects_dir = locker.dir.join("objects");
    let dirs = tokio::task::spawn_blocking(move || -> io::Result<Vec<(String, Vec<String>)>> {
        let mut dirs = Vec::new();
        for key in ids_in(&objects_dir)? {
            let files = ids_in(&objects_dir.join(&key))?;
            dirs.push((key, files));
        }
        Ok(dirs)
    })
    .await??;
    let owners: std::collections::HashMap<String, String> = state
        .store
        .subscribers(None)
        .await?
        .into_iter()
        .map(|s| (subscriber_key(&s.name), s.name))
        .collect();
    for (key, files) in dirs {
        // A directory of no subscriber is left for the operator: its files are only deleted
        // through rows, and a database pointed at by mistake must not empty the locker.
        let Some(owner) = owners.get(&key) else {
            tracing::warn!(dir = %locker.dir.join("objects").join(&key).display(), "locker: a directory of no subscriber (left alone)");
            continue;
        };
        let in_use = state.store.locker_ids_in_use(owner).await?;
        for file in files.iter().filter(|f| !in_use.contains(*f)) {
            remove_if_there(&locker.object_path(owner, file)).await;
            swept.object_files += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lowercase_hex_digits_and_nothing_else() {
        assert!(is_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "../../../../etc/passwd0000000000",
            "0123456789abcdef/123456789abcdef",
            "0123456789abcdef 123456789abcdef",
        ] {
            assert!(!is_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn ranges_single_suffix_open_and_unsatisfiable() {
        use RangeAsked::*;
        let r = |h: &str| range_asked(Some(h), 1000);
        assert_eq!(range_asked(None, 1000), Whole);
        assert_eq!(r("bytes=0-99"), Part(0, 100));
        assert_eq!(r("bytes=900-2000"), Part(900, 1000));
        assert_eq!(r("bytes=10-"), Part(10, 1000));
        assert_eq!(r("bytes=-100"), Part(900, 1000));
        assert_eq!(r("bytes=-5000"), Part(0, 1000));
        assert_eq!(r("bytes=999-999"), Part(999, 1000));
        assert_eq!(r("bytes=1000-"), Unsatisfiable);
        assert_eq!(r("bytes=1000-1001"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(range_asked(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(range_asked(Some("bytes=-1"), 0), Unsatisfiable);
        // Ignored: the whole object.
        for ignored in [
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=x-1",
            "bytes=-",
            "bytes=1",
        ] {
            assert_eq!(r(ignored), Whole, "{ignored}");
        }
    }

    #[test]
    fn subscriber_keys_hide_the_name_and_are_stable() {
        let key = subscriber_key("alice");
        // As docs/content-server.md computes it: printf %s alice | sha256sum | cut -c1-32
        assert_eq!(key, "2bd806c97f0e00af1a1fc3328fa763a9");
        assert!(is_id(&key));
        assert_eq!(key, subscriber_key("alice"));
        assert_ne!(key, subscriber_key("bob"));
    }

    #[test]
    fn a_full_disk_is_507_and_says_so() {
        let e = LockerError::from(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(e, LockerError::StorageFull));
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
}
