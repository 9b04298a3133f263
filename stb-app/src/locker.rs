//! The subscriber's locker as the box (or a desktop) uses it: every byte and name is sealed
//! here under KL before it leaves (`stb_protocol::locker`); the content server keeps opaque
//! objects and one sealed index, versioned so that two boxes writing at once lose nothing.
//!
//! What the box checks: every chunk opens (no byte changed, none moved, none cut off), the
//! index opens under this account's KL and for the version the server claims, and the server
//! never goes back to an older index within a session. What it cannot check: across logins
//! the box keeps nothing, so a server that serves a whole older index from before this
//! session, or withholds objects, is seen only as missing or older files.

use crate::feed::now_ms;
use stb_protocol::locker::{Entry, Index, Kind, Layout, LockerKey, ObjectId, ObjectOpener};
use stb_protocol::locker::{ObjectSealer, Recording};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Sealed bytes sent per request while uploading.
const BATCH: usize = 4 << 20;
/// Index updates tried before giving up on a busy index.
const INDEX_TRIES: usize = 8;
/// Failed upload requests in a row before an upload gives up (about a minute with backoff).
const UPLOAD_RETRIES: u32 = 10;

/// Why a locker operation did not work, in words for the person using it.
#[derive(Debug, Error)]
pub enum LockerError {
    /// The account's record has no locker key yet (see the login's log).
    #[error("this account has no locker key yet: log in again to create it")]
    NoKey,
    /// The content server could not be reached.
    #[error("cannot reach the locker: {0}")]
    Unreachable(String),
    /// The content server refused, with its status and reason.
    #[error("the locker refused ({0}): {1}")]
    Refused(u16, String),
    /// Over the subscriber's quota, or the server's disk is full.
    #[error("{0}")]
    Full(String),
    /// Something the server sent does not open: changed, cut off, moved, replayed, or made
    /// with another key.
    #[error(
        "the locker's {0} does not check out: it was changed on the server, or made with another key"
    )]
    Tampered(&'static str),
    /// No such name in the index.
    #[error("no such file in the locker: {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("a file of that name is in the locker already: {0}")]
    Exists(String),
    /// Other boxes kept changing the index.
    #[error("the locker is busy (other boxes writing): try again")]
    Busy,
    /// Reading or writing the local side.
    #[error("{0}")]
    Local(#[from] std::io::Error),
}

fn unreachable(e: reqwest::Error) -> LockerError {
    LockerError::Unreachable(e.without_url().to_string())
}

async fn refused(reply: reqwest::Response) -> LockerError {
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap_or_default().trim().to_owned();
    match status {
        507 => LockerError::Full(text),
        _ => LockerError::Refused(status, text),
    }
}

/// Quota and use, as the server counts them (sealed bytes).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Usage {
    /// The subscriber's quota.
    pub quota_bytes: u64,
    /// Bytes stored (objects, unfinished uploads, the index).
    pub used_bytes: u64,
    /// The index's version.
    pub index_version: u64,
    /// Every object the server holds.
    pub objects: Vec<StoredObject>,
}

/// One object as the server lists it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StoredObject {
    /// Its id.
    pub id: ObjectId,
    /// Sealed size.
    pub size: u64,
    /// When it was committed (Unix ms).
    pub created_ms: i64,
}

#[derive(serde::Deserialize)]
struct UploadState {
    upload: String,
    received: u64,
}

/// What a new file is, besides its bytes.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Its name in the locker (folders separated by `/`).
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// For a recording.
    pub recording: Option<Recording>,
    /// Replace a file of the same name instead of refusing.
    pub replace: bool,
}

/// The locker of the logged-in subscriber.
#[derive(Debug)]
pub struct Locker {
    http: reqwest::Client,
    base: String,
    key: LockerKey,
    /// The newest index version seen in this session: the server may not go below it.
    seen: AtomicU64,
}

impl Locker {
    /// The locker at `content_url`, over the session's mutual-TLS client.
    pub fn new(http: reqwest::Client, content_url: &str, key: LockerKey) -> Self {
        Self {
            http,
            base: format!("{}/v1/locker", content_url.trim_end_matches('/')),
            key,
            seen: AtomicU64::new(0),
        }
    }

    /// Quota, use and the server's list of objects.
    pub async fn usage(&self) -> Result<Usage, LockerError> {
        let reply = self
            .http
            .get(&self.base)
            .send()
            .await
            .map_err(unreachable)?;
        if !reply.status().is_success() {
            return Err(refused(reply).await);
        }
        reply.json().await.map_err(unreachable)
    }

    /// The index and its version (0 and empty before the first file).
    pub async fn index(&self) -> Result<(u64, Index), LockerError> {
        // The floor is what was seen before asking: a write of this session that lands
        // while the answer is on its way is not a rollback.
        let floor = self.seen.load(Ordering::SeqCst);
        let reply = self
            .http
            .get(format!("{}/index", self.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(unreachable)?;
        let status = reply.status().as_u16();
        let version = reply
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse::<u64>().ok());
        let (version, index) = match (status, version) {
            (404, _) => (0, Index::default()),
            (200, Some(version)) => {
                let sealed = reply.bytes().await.map_err(unreachable)?;
                let plain = self
                    .key
                    .open_index(version, &sealed)
                    .map_err(|_| LockerError::Tampered("index"))?;
                let index =
                    Index::decode(plain.expose()).map_err(|_| LockerError::Tampered("index"))?;
                (version, index)
            }
            (200, None) => return Err(LockerError::Refused(200, "index without a version".into())),
            _ => return Err(refused(reply).await),
        };
        // A version the server showed this session cannot come back older.
        if version < floor {
            return Err(LockerError::Tampered("index (an older version came back)"));
        }
        self.seen.fetch_max(version, Ordering::SeqCst);
        Ok((version, index))
    }

    /// Applies `change` to the newest index and stores it; when another box stored one
    /// first, reads that and applies `change` again, so neither box's change is lost.
    pub async fn update_index(
        &self,
        mut change: impl FnMut(&mut Index) -> Result<(), LockerError>,
    ) -> Result<Index, LockerError> {
        for _ in 0..INDEX_TRIES {
            let (version, mut index) = self.index().await?;
            change(&mut index)?;
            let next = version + 1;
            let sealed =
                self.key
                    .seal_index(next, stb_protocol::random_array(), index.encode().expose());
            let reply = self
                .http
                .put(format!("{}/index", self.base))
                .header(reqwest::header::IF_MATCH, format!("\"{version}\""))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(sealed)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(unreachable)?;
            match reply.status().as_u16() {
                200 => {
                    self.seen.fetch_max(next, Ordering::SeqCst);
                    return Ok(index);
                }
                412 => continue,
                _ => return Err(refused(reply).await),
            }
        }
        Err(LockerError::Busy)
    }

    /// Seals what `source` gives under a new object and uploads it, then enters it in the
    /// index. A failed request is resumed from what the server holds; a file that does not
    /// make it into the index leaves no entry (the object is deleted again).
    pub async fn put(
        &self,
        file: NewFile,
        source: &mut (impl AsyncRead + Unpin),
    ) -> Result<Entry, LockerError> {
        if !file.replace && self.index().await?.1.find(&file.name).is_some() {
            return Err(LockerError::Exists(file.name));
        }
        let (object, size) = self.upload(source).await?;
        self.enter(file, object, size).await
    }

    /// Seals what `source` gives, until it ends, under a new object and uploads it: the
    /// object id and the plaintext size. Nothing partial stays on the server if it fails.
    pub async fn upload(
        &self,
        source: &mut (impl AsyncRead + Unpin),
    ) -> Result<(ObjectId, u64), LockerError> {
        let mut upload = Upload::start(self).await?;
        let upload_url = upload.url(self);
        let object = upload.object;
        let mut plain_len = 0u64;
        let sent = async {
            let mut sealer = ObjectSealer::new(self.key.object_key(object));
            let mut buf = zeroize::Zeroizing::new(vec![0u8; 1 << 20]);
            loop {
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                plain_len += n as u64;
                upload.pending.extend(sealer.push(&buf[..n]));
                if upload.pending.len() >= BATCH {
                    upload.send(self).await?;
                }
            }
            upload.pending.extend(sealer.finish());
            upload.send(self).await?;
            upload.commit(self).await
        };
        if let Err(e) = sent.await {
            // Nothing partial stays on the server (it would also sweep it after a day).
            let _ = self.http.delete(upload_url).send().await;
            return Err(e);
        }
        Ok((object, plain_len))
    }

    /// Enters an uploaded object in the index under `file`'s name (replacing a file of that
    /// name if `file.replace`); if that fails the object is deleted again.
    pub async fn enter(
        &self,
        file: NewFile,
        object: ObjectId,
        size: u64,
    ) -> Result<Entry, LockerError> {
        let entry = Entry {
            object,
            name: file.name.clone(),
            size,
            modified_ms: now_ms(),
            kind: file.kind,
            recording: file.recording.clone(),
        };
        let mut replaced = Vec::new();
        let indexed = self
            .update_index(|index| {
                replaced.clear();
                if index.find(&file.name).is_some() && !file.replace {
                    return Err(LockerError::Exists(file.name.clone()));
                }
                index.entries.retain(|e| {
                    let same = e.name == file.name;
                    if same {
                        replaced.push(e.object);
                    }
                    !same
                });
                index.entries.push(entry.clone());
                Ok(())
            })
            .await;
        match indexed {
            Ok(_) => {}
            // The answer was lost: the index may hold the entry all the same.
            Err(LockerError::Unreachable(why)) => match self.index().await {
                Ok((_, index)) if index.entries.iter().any(|e| e.object == object) => {}
                // Not known: the object stays (a later tidy-up removes it if unnamed).
                _ => return Err(LockerError::Unreachable(why)),
            },
            Err(e) => {
                let _ = self.delete_object(object).await;
                return Err(e);
            }
        }
        for old in replaced {
            let _ = self.delete_object(old).await;
        }
        Ok(entry)
    }

    /// Writes the whole of `name` to `sink`, every chunk checked before its bytes are written.
    pub async fn get(
        &self,
        name: &str,
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<Entry, LockerError> {
        let entry = self.entry(name).await?;
        self.get_entry(&entry, sink).await?;
        Ok(entry)
    }

    /// Writes the whole of `entry` (as listed) to `sink`, every chunk checked first.
    pub async fn get_entry(
        &self,
        entry: &Entry,
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), LockerError> {
        let mut reply = self.fetch(entry, None).await?;
        let layout = sealed_layout(&reply)?;
        if layout.plain_len != entry.size {
            return Err(LockerError::Tampered("file (its size changed)"));
        }
        let mut opener = ObjectOpener::new(self.key.object_key(entry.object), layout, 0);
        while let Some(bytes) = reply.chunk().await.map_err(unreachable)? {
            for plain in opener
                .push(&bytes)
                .map_err(|_| LockerError::Tampered("file"))?
            {
                sink.write_all(plain.expose()).await?;
            }
        }
        opener
            .finish(true)
            .map_err(|_| LockerError::Tampered("file (cut off)"))?;
        sink.flush().await?;
        Ok(())
    }

    /// The plaintext bytes `range` of `entry` (clamped to its size): one HTTP range request
    /// for just the chunks that hold them, each checked.
    pub async fn read_range(
        &self,
        entry: &Entry,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, LockerError> {
        let layout = Layout::of_plain(entry.size);
        let (sealed, first, skip) = layout.sealed_range(range.clone());
        let reply = self.fetch(entry, Some(sealed.clone())).await?;
        let bytes = reply.bytes().await.map_err(unreachable)?;
        if bytes.len() as u64 != sealed.end - sealed.start {
            return Err(LockerError::Tampered("file (cut off)"));
        }
        let mut opener = ObjectOpener::new(self.key.object_key(entry.object), layout, first);
        let len = range.end.min(entry.size).saturating_sub(range.start) as usize;
        let mut out = Vec::with_capacity(len + skip);
        for plain in opener
            .push(&bytes)
            .map_err(|_| LockerError::Tampered("file"))?
        {
            out.extend_from_slice(plain.expose());
        }
        opener
            .finish(false)
            .map_err(|_| LockerError::Tampered("file (cut off)"))?;
        out.drain(..skip.min(out.len()));
        out.truncate(len);
        Ok(out)
    }

    /// Renames `from` to `to` (the index alone changes: the server sees a new index).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), LockerError> {
        self.update_index(|index| {
            if index.find(to).is_some() {
                return Err(LockerError::Exists(to.to_owned()));
            }
            let entry = index
                .entries
                .iter_mut()
                .find(|e| e.name == from)
                .ok_or_else(|| LockerError::NotFound(from.to_owned()))?;
            entry.name = to.to_owned();
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Removes `name` from the index, then its object from the server.
    pub async fn remove(&self, name: &str) -> Result<(), LockerError> {
        let mut gone = None;
        self.update_index(|index| {
            let at = index
                .entries
                .iter()
                .position(|e| e.name == name)
                .ok_or_else(|| LockerError::NotFound(name.to_owned()))?;
            gone = Some(index.entries.remove(at).object);
            Ok(())
        })
        .await?;
        if let Some(object) = gone {
            self.delete_object(object).await?;
        }
        Ok(())
    }

    /// The index entry of `name`.
    pub async fn entry(&self, name: &str) -> Result<Entry, LockerError> {
        self.index()
            .await?
            .1
            .find(name)
            .cloned()
            .ok_or_else(|| LockerError::NotFound(name.to_owned()))
    }

    async fn fetch(
        &self,
        entry: &Entry,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<reqwest::Response, LockerError> {
        let mut request = self
            .http
            .get(format!("{}/objects/{}", self.base, entry.object));
        if let Some(r) = &range {
            request = request
                .header(
                    reqwest::header::RANGE,
                    format!("bytes={}-{}", r.start, r.end - 1),
                )
                .timeout(Duration::from_secs(60));
        }
        // A whole recording may take long to read: no overall limit (connect and idle
        // limits still apply).
        let reply = request.send().await.map_err(unreachable)?;
        match (reply.status().as_u16(), &range) {
            (200, None) | (206, Some(_)) => Ok(reply),
            (404, _) => {
                // Removed by another box meanwhile, or withheld by the server.
                let still_named = self
                    .index()
                    .await
                    .map(|(_, index)| index.entries.iter().any(|e| e.object == entry.object))
                    .unwrap_or(true);
                Err(match still_named {
                    true => LockerError::Tampered("file (the server does not have it)"),
                    false => LockerError::NotFound(entry.name.clone()),
                })
            }
            _ => Err(refused(reply).await),
        }
    }

    /// Deletes objects the server holds that no index entry names and that are older than a
    /// day: left by a box that stopped between an upload and its entry. (Younger ones may
    /// be another box's upload about to be entered.) Returns how many went.
    pub async fn tidy(&self) -> Result<usize, LockerError> {
        let (_, index) = self.index().await?;
        let named: std::collections::HashSet<ObjectId> =
            index.entries.iter().map(|e| e.object).collect();
        let day_ago = now_ms() - 86_400_000;
        let mut removed = 0;
        for object in self.usage().await?.objects {
            if !named.contains(&object.id) && object.created_ms < day_ago {
                self.delete_object(object.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn delete_object(&self, object: ObjectId) -> Result<(), LockerError> {
        let reply = self
            .http
            .delete(format!("{}/objects/{object}", self.base))
            .send()
            .await
            .map_err(unreachable)?;
        match reply.status().as_u16() {
            204 | 404 => Ok(()),
            _ => Err(refused(reply).await),
        }
    }
}

fn sealed_layout(reply: &reqwest::Response) -> Result<Layout, LockerError> {
    let len = reply
        .content_length()
        .ok_or(LockerError::Tampered("file (no length)"))?;
    Layout::of_sealed(len).map_err(|_| LockerError::Tampered("file (impossible size)"))
}

/// An upload under way: sealed bytes not yet acknowledged are kept until the server has
/// them, so a broken request is resumed from what it received.
struct Upload {
    id: String,
    object: ObjectId,
    /// Bytes the server acknowledged.
    sent: u64,
    pending: Vec<u8>,
}

impl Upload {
    async fn start(locker: &Locker) -> Result<Self, LockerError> {
        let object = ObjectId::random();
        let reply = locker
            .http
            .post(format!("{}/uploads", locker.base))
            .json(&serde_json::json!({ "object": object }))
            .send()
            .await
            .map_err(unreachable)?;
        if reply.status().as_u16() != 201 {
            return Err(refused(reply).await);
        }
        let state: UploadState = reply.json().await.map_err(unreachable)?;
        Ok(Self {
            id: state.upload,
            object,
            sent: state.received,
            pending: Vec::new(),
        })
    }

    fn url(&self, locker: &Locker) -> String {
        format!("{}/uploads/{}", locker.base, self.id)
    }

    /// Sends what is pending; on a broken connection or an offset the server disagrees
    /// with, asks where it stands and goes on from there (a few times, with backoff).
    async fn send(&mut self, locker: &Locker) -> Result<(), LockerError> {
        let mut delay = Duration::from_millis(250);
        let mut failures = 0;
        while !self.pending.is_empty() {
            let before = self.sent;
            let reply = locker
                .http
                .patch(self.url(locker))
                .header("upload-offset", self.sent.to_string())
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(self.pending.clone())
                .timeout(Duration::from_secs(120))
                .send()
                .await;
            let why = match reply {
                Ok(r) if r.status().is_success() => match r.json::<UploadState>().await {
                    Ok(state) => {
                        self.acknowledge(state.received)?;
                        if self.sent > before {
                            failures = 0;
                            delay = Duration::from_millis(250);
                            continue;
                        }
                        "the server took nothing".to_owned()
                    }
                    Err(e) => e.without_url().to_string(),
                },
                // Not where the server stands: ask it, and go on from there.
                Ok(r) if r.status().as_u16() == 409 => "offset".to_owned(),
                Ok(r) => return Err(refused(r).await),
                Err(e) => e.without_url().to_string(),
            };
            failures += 1;
            if failures > UPLOAD_RETRIES {
                return Err(LockerError::Unreachable(format!(
                    "the upload keeps failing ({why})"
                )));
            }
            tracing::warn!(%why, "upload interrupted, resuming");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(8));
            let asked = locker.http.get(self.url(locker)).send().await;
            if let Ok(r) = asked.and_then(reqwest::Response::error_for_status)
                && let Ok(state) = r.json::<UploadState>().await
            {
                self.acknowledge(state.received)?;
            }
        }
        Ok(())
    }

    /// The server holds `received` bytes: drop them from what is pending.
    fn acknowledge(&mut self, received: u64) -> Result<(), LockerError> {
        let end = self.sent + self.pending.len() as u64;
        if received < self.sent || received > end {
            return Err(LockerError::Refused(
                409,
                format!("the server lost part of the upload ({received} of {end} bytes)"),
            ));
        }
        self.pending.drain(..(received - self.sent) as usize);
        self.sent = received;
        Ok(())
    }

    async fn commit(&self, locker: &Locker) -> Result<ObjectId, LockerError> {
        let reply = locker
            .http
            .post(format!("{}/commit", self.url(locker)))
            .send()
            .await;
        match reply {
            Ok(r) if r.status().as_u16() == 201 => Ok(self.object),
            // The answer lost, or a retry after it: committed if the server lists it.
            Ok(r) if r.status().as_u16() != 404 => Err(refused(r).await),
            _ => {
                let listed = locker.usage().await?;
                if listed.objects.iter().any(|o| o.id == self.object) {
                    Ok(self.object)
                } else {
                    Err(LockerError::Unreachable(
                        "the upload could not be committed".into(),
                    ))
                }
            }
        }
    }
}
