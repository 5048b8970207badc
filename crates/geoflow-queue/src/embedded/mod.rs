//! The embedded durable queue: SQS semantics in a SQLite file of its own.
//!
//! It is the queue of the no-services deployment (default file `./geoflow-data/queue.sqlite`,
//! [`DEFAULT_PATH`]). It lives apart from the GeoPackage because a bulk load holds that
//! file's write lock for the whole load, and the queue must stay usable meanwhile.
//!
//! # Semantics
//!
//! The same as an SQS standard queue (see the crate documentation), with these specifics:
//!
//! - **Durability.** WAL journal with `synchronous=FULL`: a message whose `send` returned, and
//!   every delete, survive a crash or power loss. Messages stay until deleted or
//!   dead-lettered; there is no retention period (unlike SQS's 4 days by default), so nothing
//!   disappears silently.
//! - **Several processes.** Any number of processes (or handles) may open the same file. A
//!   receive claims its messages in one `BEGIN IMMEDIATE` transaction, which takes SQLite's
//!   write lock before reading, so two receivers never hold the same message while it is
//!   invisible. Waiting for the lock is bounded by [`EmbeddedOptions::busy_timeout`]; past it
//!   the call fails with a transient error. The lock is not fair: a process that keeps
//!   claiming and deleting without pause can take most messages while another waits.
//! - **Receipts.** Every receive gives the message a new random receipt. Only the latest
//!   receipt is accepted by [`Queue::delete`], [`Queue::extend`] and [`Queue::release`]; an
//!   earlier one fails with [`QueueError::StaleReceipt`], as does a receipt of a message that
//!   was deleted or dead-lettered. A receipt whose visibility timeout ran out stays valid
//!   until the message is received again: until then its holder may still delete it or extend
//!   it (SQS may refuse the latter with `MessageNotInflight`).
//! - **Dead letters.** With [`EmbeddedOptions::max_receive_count`] set (5 by default), a
//!   message already received that many times is moved to the `dead_letters` table the next
//!   time a receive would hand it out, as SQS does under a redrive policy. Operators list,
//!   count, redrive and delete dead letters with [`EmbeddedQueue::dead_letters`],
//!   [`EmbeddedQueue::stats`], [`EmbeddedQueue::redrive`] and
//!   [`EmbeddedQueue::delete_dead_letter`].
//! - **Long polling.** A receive with nothing to hand out sleeps until a `send` or `release`
//!   through a handle of this process wakes it, a message's visibility timeout ends, or the
//!   poll interval ([`EmbeddedOptions::poll_interval`]) passes (which is how messages sent by
//!   other processes are noticed), whichever comes first.
//! - **Order** is oldest-visible first, best effort, as in SQS standard queues.
//!
//! A receive whose future is dropped while its claim is running may claim messages it never
//! returns: they are delivered again after the visibility timeout (at least once, never lost).
//!
//! All SQLite calls run on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::Notify;

use crate::{check_batch, check_visibility, Delivery, Queue, QueueError, Receipt, MAX_VISIBILITY};

/// Where the embedded deployment keeps its queue, relative to the working directory.
pub const DEFAULT_PATH: &str = "geoflow-data/queue.sqlite";

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 1;

/// Settings of an embedded queue, fixed when it is opened.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How long a received message stays invisible (30 s by default, as in SQS).
    pub visibility_timeout: Duration,
    /// A message received this many times goes to the dead letters instead of being delivered
    /// again (5 by default). `None` keeps redelivering forever.
    pub max_receive_count: Option<u32>,
    /// How often a waiting receive looks for messages sent by other processes (250 ms by
    /// default, at least 10 ms).
    pub poll_interval: Duration,
    /// How long a call waits for another connection's write lock before failing.
    pub busy_timeout: Duration,
    /// The largest message body accepted (1 MiB by default, as in SQS).
    pub max_body_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: Some(5),
            poll_interval: Duration::from_millis(250),
            busy_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// A message in the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub body: String,
    /// How many times it was received before it was moved.
    pub receive_count: u32,
    pub sent_at: SystemTime,
    pub first_received_at: Option<SystemTime>,
    pub dead_lettered_at: SystemTime,
}

/// Message counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages a receive could take now.
    pub visible: u64,
    /// Messages in flight or released with a delay.
    pub invisible: u64,
    /// Messages in the dead-letter table.
    pub dead_letters: u64,
}

/// A durable queue in a SQLite file. Cloning gives another handle on the same connection;
/// opening the same file again (here or in another process) gives an independent one.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: EmbeddedOptions,
    conn: Mutex<Connection>,
    /// Wakes this process's waiting receivers when a message may have become visible.
    notify: Notify,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue").field("path", &self.inner.path).field("options", &self.inner.options).finish()
    }
}

/// Adds the queue's path and the operation to SQLite errors.
trait Context<T> {
    fn ctx(self, path: &Path, operation: &'static str) -> Result<T, QueueError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, operation: &'static str) -> Result<T, QueueError> {
        self.map_err(|source| QueueError::Sqlite { path: path.to_path_buf(), operation, source })
    }
}

impl EmbeddedQueue {
    /// Opens the queue in `path`, creating the file (and its directory) if needed.
    pub async fn open(path: impl Into<PathBuf>, options: EmbeddedOptions) -> Result<Self, QueueError> {
        let path = path.into();
        check_visibility("visibility timeout", options.visibility_timeout)?;
        if options.max_receive_count == Some(0) {
            return Err(QueueError::InvalidArgument("max receive count must be at least 1".into()));
        }
        let opening = options.clone();
        let (conn, path) = tokio::task::spawn_blocking(move || open_connection(&path, &opening).map(|c| (c, path)))
            .await
            .map_err(join_error)??;
        Ok(EmbeddedQueue { inner: Arc::new(Inner { path, options, conn: Mutex::new(conn), notify: Notify::new() }) })
    }

    /// The file this queue lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &EmbeddedOptions {
        &self.inner.options
    }

    /// Counts of visible, invisible and dead-lettered messages.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.blocking(|conn, path| {
            let now = now_ms();
            conn.query_row(
                "SELECT (SELECT count(*) FROM messages WHERE visible_at_ms <= ?1),
                        (SELECT count(*) FROM messages WHERE visible_at_ms > ?1),
                        (SELECT count(*) FROM dead_letters)",
                [now],
                |r| {
                    Ok(QueueStats {
                        visible: r.get::<_, i64>(0)? as u64,
                        invisible: r.get::<_, i64>(1)? as u64,
                        dead_letters: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .ctx(path, "counting messages")
        })
        .await
    }

    /// Up to `limit` dead letters, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, body, receive_count, sent_at_ms, first_received_at_ms, dead_lettered_at_ms
                     FROM dead_letters ORDER BY seq LIMIT ?1",
                )
                .ctx(path, "listing dead letters")?;
            let rows = stmt
                .query_map([limit], |r| {
                    Ok(DeadLetter {
                        id: r.get(0)?,
                        body: r.get(1)?,
                        receive_count: count_from(r.get(2)?),
                        sent_at: time_from(r.get(3)?),
                        first_received_at: r.get::<_, Option<i64>>(4)?.map(time_from),
                        dead_lettered_at: time_from(r.get(5)?),
                    })
                })
                .ctx(path, "listing dead letters")?;
            rows.collect::<Result<Vec<_>, _>>().ctx(path, "listing dead letters")
        })
        .await
    }

    /// Moves dead letters back into the queue as fresh messages (receive count 0, visible at
    /// once): those with the given ids, or all of them when `ids` is `None`. Returns how
    /// many were moved; ids not among the dead letters are ignored.
    pub async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, QueueError> {
        let ids: Option<Vec<String>> = ids.map(<[String]>::to_vec);
        let moved = self
            .blocking(move |conn, path| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx(path, "redriving")?;
                let now = now_ms();
                let copy = "INSERT INTO messages (id, body, sent_at_ms, visible_at_ms, receive_count)
                            SELECT id, body, sent_at_ms, ?1, 0 FROM dead_letters";
                let moved = match &ids {
                    None => {
                        let n = tx.execute(copy, [now]).ctx(path, "redriving")?;
                        tx.execute("DELETE FROM dead_letters", []).ctx(path, "redriving")?;
                        n
                    }
                    Some(ids) => {
                        let mut n = 0;
                        for id in ids {
                            n += tx
                                .execute(&format!("{copy} WHERE id = ?2"), params![now, id])
                                .ctx(path, "redriving")?;
                            tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id]).ctx(path, "redriving")?;
                        }
                        n
                    }
                };
                tx.commit().ctx(path, "redriving")?;
                Ok(moved as u64)
            })
            .await?;
        if moved > 0 {
            self.inner.notify.notify_waiters();
        }
        Ok(moved)
    }

    /// Deletes one dead letter for good. Returns whether it existed.
    pub async fn delete_dead_letter(&self, id: &str) -> Result<bool, QueueError> {
        let id = id.to_owned();
        self.blocking(move |conn, path| {
            let n =
                conn.execute("DELETE FROM dead_letters WHERE id = ?1", [&id]).ctx(path, "deleting a dead letter")?;
            Ok(n > 0)
        })
        .await
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, QueueError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no open transaction behind (the
            // transaction rolls back on drop), so a poisoned connection is still usable.
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn, &inner.path)
        })
        .await
        .map_err(join_error)?
    }

    /// Claims up to `max` visible messages; also returns when the next invisible one becomes
    /// visible (ms since the epoch), if any.
    async fn claim(&self, max: usize) -> Result<(Vec<Delivery>, Option<i64>), QueueError> {
        let visibility_ms = duration_ms(self.inner.options.visibility_timeout);
        let max_receive_count = self.inner.options.max_receive_count.map(i64::from);
        self.blocking(move |conn, path| claim(conn, path, max, visibility_ms, max_receive_count)).await
    }

    /// Applies `change` to the message of `receipt`; a receipt that matches no message (or
    /// not its latest receipt) is stale.
    async fn with_receipt(&self, receipt: &Receipt, change: Change) -> Result<(), QueueError> {
        let (id, token) = parse_receipt(receipt)?;
        let handle = receipt.to_string();
        self.blocking(move |conn, path| {
            let n = match change {
                Change::VisibleIn { ms, operation } => conn
                    .execute(
                        "UPDATE messages SET visible_at_ms = ?3 + ?4 WHERE id = ?1 AND receipt = ?2",
                        params![id, token, now_ms(), ms],
                    )
                    .ctx(path, operation)?,
                Change::Delete => conn
                    .execute("DELETE FROM messages WHERE id = ?1 AND receipt = ?2", params![id, token])
                    .ctx(path, "deleting")?,
            };
            if n == 0 {
                return Err(QueueError::StaleReceipt { receipt: handle });
            }
            Ok(())
        })
        .await
    }
}

/// What `EmbeddedQueue::with_receipt` does to a message.
enum Change {
    /// Hide it until `ms` milliseconds from now.
    VisibleIn {
        ms: i64,
        operation: &'static str,
    },
    Delete,
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send(&self, body: &str) -> Result<String, QueueError> {
        let limit = self.inner.options.max_body_bytes;
        if body.len() > limit {
            return Err(QueueError::BodyTooLarge { size: body.len(), limit });
        }
        let body = body.to_owned();
        let id = self
            .blocking(move |conn, path| {
                let now = now_ms();
                conn.query_row(
                    "INSERT INTO messages (id, body, sent_at_ms, visible_at_ms)
                     VALUES (lower(hex(randomblob(16))), ?1, ?2, ?2) RETURNING id",
                    params![body, now],
                    |r| r.get::<_, String>(0),
                )
                .ctx(path, "sending")
            })
            .await?;
        self.inner.notify.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        check_batch(max)?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_VISIBILITY);
        loop {
            // Register for wakeups before looking, so a send between the look and the sleep
            // is not missed.
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let (batch, next_visible_ms) = self.claim(max).await?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(batch);
            }
            // At least 10 ms between looks, so that a zero interval does not spin.
            let poll = self.inner.options.poll_interval.clamp(Duration::from_millis(10), MAX_VISIBILITY);
            let mut until = deadline.min(now + poll);
            if let Some(at) = next_visible_ms {
                // One millisecond late so that the message is visible by then.
                let in_ms = at.saturating_sub(now_ms()).saturating_add(1).max(1) as u64;
                until = until.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError> {
        check_visibility("visibility extension", visibility)?;
        self.with_receipt(receipt, Change::VisibleIn { ms: duration_ms(visibility), operation: "extending visibility" })
            .await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.with_receipt(receipt, Change::Delete).await
    }

    async fn release(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        check_visibility("release delay", delay)?;
        self.with_receipt(receipt, Change::VisibleIn { ms: duration_ms(delay), operation: "releasing" }).await?;
        // Waiting receivers recompute when to look next (at once for a zero delay).
        self.inner.notify.notify_waiters();
        Ok(())
    }

    async fn probe(&self) -> Result<(), QueueError> {
        // A read of the messages table through this handle's connection: it proves the file
        // and its schema are readable, and takes no lock a writer waits for (WAL).
        self.blocking(|conn, path| {
            conn.query_row("SELECT EXISTS (SELECT 1 FROM messages)", [], |r| r.get::<_, bool>(0))
                .ctx(path, "probing")?;
            Ok(())
        })
        .await
    }
}

fn open_connection(path: &Path, options: &EmbeddedOptions) -> Result<Connection, QueueError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| QueueError::Io {
            path: path.to_path_buf(),
            operation: "creating its directory",
            source,
        })?;
    }
    let mut conn = Connection::open(path).ctx(path, "opening")?;
    // rusqlite panics on a timeout beyond i32 milliseconds; a day is plenty.
    let busy_timeout = options.busy_timeout.min(Duration::from_secs(24 * 60 * 60));
    conn.busy_timeout(busy_timeout).ctx(path, "setting the busy timeout")?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).ctx(path, "enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(QueueError::Io {
            path: path.to_path_buf(),
            operation: "enabling WAL",
            source: std::io::Error::other(format!("journal mode stayed {mode}")),
        });
    }
    // FULL: a send or delete that returned is on disk even after a power loss.
    conn.pragma_update(None, "synchronous", "FULL").ctx(path, "setting synchronous=FULL")?;
    // Two processes creating the file at once: the write lock makes one of them do it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx(path, "creating the schema")?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx(path, "reading the schema version")?;
    if version > SCHEMA_VERSION {
        return Err(QueueError::SchemaTooNew { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).ctx(path, "creating the schema")?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).ctx(path, "setting the schema version")?;
    }
    tx.commit().ctx(path, "creating the schema")?;
    Ok(conn)
}

/// The claim of one receive, in one IMMEDIATE transaction.
fn claim(
    conn: &mut Connection,
    path: &Path,
    max: usize,
    visibility_ms: i64,
    max_receive_count: Option<i64>,
) -> Result<(Vec<Delivery>, Option<i64>), QueueError> {
    const OP: &str = "receiving";
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx(path, OP)?;
    let now = now_ms();
    let mut batch = Vec::new();
    loop {
        let need = max - batch.len();
        if need == 0 {
            break;
        }
        let candidates: Vec<(i64, String, i64)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, id, receive_count FROM messages WHERE visible_at_ms <= ?1
                     ORDER BY visible_at_ms, seq LIMIT ?2",
                )
                .ctx(path, OP)?;
            let rows =
                stmt.query_map(params![now, need as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).ctx(path, OP)?;
            rows.collect::<Result<_, _>>().ctx(path, OP)?
        };
        if candidates.is_empty() {
            break;
        }
        for (seq, id, receive_count) in candidates {
            if max_receive_count.is_some_and(|m| receive_count >= m) {
                tx.execute(
                    "INSERT INTO dead_letters
                         (id, body, sent_at_ms, receive_count, first_received_at_ms, dead_lettered_at_ms)
                     SELECT id, body, sent_at_ms, receive_count, first_received_at_ms, ?2 FROM messages WHERE seq = ?1",
                    params![seq, now],
                )
                .ctx(path, "moving a message to the dead letters")?;
                tx.execute("DELETE FROM messages WHERE seq = ?1", [seq])
                    .ctx(path, "moving a message to the dead letters")?;
                tracing::warn!(
                    queue = %path.display(),
                    message_id = %id,
                    receive_count,
                    "message moved to the dead letters after too many receives"
                );
                continue;
            }
            let delivery = tx
                .query_row(
                    "UPDATE messages SET receive_count = receive_count + 1,
                            visible_at_ms = ?2 + ?3,
                            first_received_at_ms = coalesce(first_received_at_ms, ?2),
                            receipt = lower(hex(randomblob(16)))
                     WHERE seq = ?1
                     RETURNING id, receipt, body, receive_count, sent_at_ms, first_received_at_ms",
                    params![seq, now, visibility_ms],
                    |r| {
                        let id: String = r.get(0)?;
                        let token: String = r.get(1)?;
                        Ok(Delivery {
                            receipt: Receipt::new(format!("{id}:{token}")),
                            id,
                            body: r.get(2)?,
                            receive_count: count_from(r.get(3)?),
                            sent_at: Some(time_from(r.get(4)?)),
                            first_received_at: r.get::<_, Option<i64>>(5)?.map(time_from),
                        })
                    },
                )
                .ctx(path, OP)?;
            batch.push(delivery);
        }
    }
    let next_visible: Option<i64> =
        tx.query_row("SELECT min(visible_at_ms) FROM messages", [], |r| r.get(0)).optional().ctx(path, OP)?.flatten();
    tx.commit().ctx(path, OP)?;
    Ok((batch, next_visible))
}

/// Splits a receipt into message id and token; both are lowercase hex.
fn parse_receipt(receipt: &Receipt) -> Result<(String, String), QueueError> {
    let invalid = |reason: &str| QueueError::InvalidReceipt { receipt: receipt.to_string(), reason: reason.into() };
    let (id, token) = receipt.as_str().split_once(':').ok_or_else(|| invalid("not an embedded queue receipt"))?;
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(id) || !hex(token) {
        return Err(invalid("not an embedded queue receipt"));
    }
    Ok((id.to_owned(), token.to_owned()))
}

fn join_error(e: tokio::task::JoinError) -> QueueError {
    QueueError::Task { message: e.to_string(), cancelled: e.is_cancelled() }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn time_from(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn count_from(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
