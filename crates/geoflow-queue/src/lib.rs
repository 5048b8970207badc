//! Message queues: where storage events wait for a worker.
//!
//! Every backend implements [`Queue`], held as `Arc<dyn Queue>`. The semantics are those of an
//! Amazon SQS standard queue, because production runs on SQS and the embedded queue must behave
//! the same way so that one worker loop is right for both:
//!
//! - **At-least-once delivery.** [`Queue::receive`] hands out messages and hides them for the
//!   queue's *visibility timeout* (a property of the queue, set when it is created or opened).
//!   A message that is not deleted before its visibility timeout ends is delivered again, to
//!   any receiver, with [`Delivery::receive_count`] one higher. Consumers must therefore make
//!   their effects idempotent, and delete a message only after its effect is committed.
//! - **Receipts.** Each delivery carries a [`Receipt`] naming that one receipt of the message.
//!   [`Queue::delete`] acknowledges, [`Queue::extend`] pushes the end of the invisibility
//!   forward (a heartbeat for long loads), and [`Queue::release`] makes the message visible
//!   again after a delay (retry with backoff). The embedded queue rejects a receipt that is no
//!   longer the message's latest with [`QueueError::StaleReceipt`]; what SQS does is described
//!   in [`sqs`].
//! - **Dead letters.** A message received more than the queue's maximum receive count is moved
//!   to a dead-letter queue instead of being delivered again, so that nothing is retried forever
//!   and nothing is dropped silently. On SQS this is the queue's redrive policy; the embedded
//!   queue keeps a dead-letter table with operator access (list, count, redrive).
//! - **Long polling.** [`Queue::receive`] returns as soon as at least one message is available,
//!   or with an empty batch when its wait elapses.
//! - **Batches** hold at most [`MAX_BATCH`] messages, the SQS limit.
//!
//! Backends: [`embedded::EmbeddedQueue`] (a SQLite file, the no-services default) and
//! [`sqs::SqsQueue`] (Amazon SQS or any SQS API through aws-sdk-sqs).
//!
//! # Consuming
//!
//! ```
//! use std::time::Duration;
//! use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), geoflow_queue::QueueError> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let queue = EmbeddedQueue::open(dir.path().join("queue.sqlite"), EmbeddedOptions::default()).await?;
//! queue.send(r#"{"key":"raw/roads/2026-01-01/a.geojson"}"#).await?;
//!
//! for delivery in queue.receive(10, Duration::from_secs(20)).await? {
//!     // Do the work (heartbeat with `extend` while it runs long), commit its effect, then ack.
//!     let ok = !delivery.body.is_empty();
//!     if ok {
//!         queue.delete(&delivery.receipt).await?;
//!     } else {
//!         // A transient failure: try again later; after too many receives it is dead-lettered.
//!         let backoff = Duration::from_secs(2u64.pow(delivery.receive_count.min(8)));
//!         queue.release(&delivery.receipt, backoff).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod embedded;
pub mod sqs;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

pub use embedded::{DeadLetter, EmbeddedOptions, EmbeddedQueue, QueueStats};
pub use sqs::SqsQueue;

/// Most messages one [`Queue::receive`] returns (the SQS limit).
pub const MAX_BATCH: usize = 10;

/// Longest visibility timeout, extension or release delay (12 hours, the SQS limit).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// A queue of text messages with SQS semantics (see the crate documentation).
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// Enqueues a message and returns its id. The message is visible at once.
    async fn send(&self, body: &str) -> Result<String, QueueError>;

    /// Receives up to `max` (1 to [`MAX_BATCH`]) messages, hiding each for the queue's
    /// visibility timeout. Waits until at least one message is available or `wait` has
    /// elapsed (at most [`MAX_VISIBILITY`]); an empty result means none became available in
    /// time.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Keeps a received message invisible for `visibility` from now (a heartbeat).
    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError>;

    /// Deletes a received message: the acknowledgement, after its effect is committed.
    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError>;

    /// Gives a received message back: it becomes visible again after `delay` (zero: at once).
    /// Its receive count is kept, so repeated releases end in the dead-letter queue.
    async fn release(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError>;

    /// One cheap call proving that the queue answers, for readiness probes; it changes
    /// nothing. A queue that does not exist is a permanent error, an unreachable one a
    /// transient error ([`QueueError::is_transient`]).
    async fn probe(&self) -> Result<(), QueueError>;
}

/// The handle of one receipt of a message; the key for extend, delete and release.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Receipt(String);

impl Receipt {
    pub fn new(handle: impl Into<String>) -> Self {
        Receipt(handle.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Receipt {
    // SQS receipt handles are long: show enough to tell them apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receipt({})", abbreviate(&self.0))
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(abbreviate(&self.0))
    }
}

fn abbreviate(s: &str) -> &str {
    match s.char_indices().nth(48) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One receipt of a message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message id (the same on every receipt of the message).
    pub id: String,
    /// This receipt's handle.
    pub receipt: Receipt,
    pub body: String,
    /// How many times the message has been received, this receipt included (1 the first time).
    pub receive_count: u32,
    /// When the message was sent, when the backend says.
    pub sent_at: Option<SystemTime>,
    /// When the message was first received, when the backend says.
    pub first_received_at: Option<SystemTime>,
}

/// What went wrong in a queue operation. [`QueueError::is_transient`] tells whether retrying
/// the same call later may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The receipt is well formed but no longer the message's latest: the message was received
    /// again (its visibility timeout ran out), deleted, or moved to the dead-letter queue.
    #[error("receipt {receipt} is stale: the message was received again, deleted or dead-lettered")]
    StaleReceipt { receipt: String },

    /// The receipt was not issued by this queue.
    #[error("receipt {receipt} is invalid: {reason}")]
    InvalidReceipt { receipt: String, reason: String },

    /// A message body over the size limit.
    #[error("message body is {size} bytes, more than the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },

    /// An argument out of range (batch size, visibility timeout, delay).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The embedded queue's database failed.
    #[error("embedded queue {path}: {operation}: {source}")]
    Sqlite {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// The embedded queue's file or directory could not be prepared.
    #[error("embedded queue {path}: {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The embedded queue's file was written by a newer version of geoflow.
    #[error("embedded queue {path}: schema version {found} is newer than the supported {supported}")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },

    /// An SQS call failed. `code` is the service's error code when it answered.
    #[error("SQS {operation} on {queue_url}: {message}")]
    Sqs { operation: &'static str, queue_url: String, code: Option<String>, message: String, transient: bool },

    /// A blocking task of the embedded queue did not finish (runtime shutdown or a panic).
    #[error("embedded queue task failed: {message}")]
    Task { message: String, cancelled: bool },
}

impl QueueError {
    /// Whether the failure is an infrastructure fault that may pass (busy or locked database,
    /// IO error, throttling, a 5xx answer, a timeout, a connection failure): retry later.
    /// Everything else is permanent: the same call would fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::StaleReceipt { .. }
            | QueueError::InvalidReceipt { .. }
            | QueueError::BodyTooLarge { .. }
            | QueueError::InvalidArgument(_)
            | QueueError::SchemaTooNew { .. } => false,
            QueueError::Sqlite { source, .. } => sqlite_is_transient(source),
            QueueError::Io { .. } => true,
            QueueError::Sqs { transient, .. } => *transient,
            QueueError::Task { cancelled, .. } => *cancelled,
        }
    }

    /// Whether this is [`QueueError::StaleReceipt`].
    pub fn is_stale_receipt(&self) -> bool {
        matches!(self, QueueError::StaleReceipt { .. })
    }
}

fn sqlite_is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(code) => matches!(
            code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen
        ),
        None => false,
    }
}

/// Checks a receive batch size.
fn check_batch(max: usize) -> Result<(), QueueError> {
    if max == 0 || max > MAX_BATCH {
        return Err(QueueError::InvalidArgument(format!("batch size {max} is outside 1..={MAX_BATCH}")));
    }
    Ok(())
}

/// Checks a visibility timeout or delay.
fn check_visibility(what: &str, d: Duration) -> Result<(), QueueError> {
    if d > MAX_VISIBILITY {
        return Err(QueueError::InvalidArgument(format!(
            "{what} of {} s is longer than the limit of {} s",
            d.as_secs(),
            MAX_VISIBILITY.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(!QueueError::StaleReceipt { receipt: "r".into() }.is_transient());
        assert!(!QueueError::InvalidArgument("x".into()).is_transient());
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(QueueError::Sqlite { path: "q".into(), operation: "receive", source: busy }.is_transient());
        let constraint =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT), None);
        assert!(!QueueError::Sqlite { path: "q".into(), operation: "send", source: constraint }.is_transient());
        assert!(QueueError::Task { message: "cancelled".into(), cancelled: true }.is_transient());
    }

    #[test]
    fn limits_are_checked() {
        assert!(check_batch(0).is_err());
        assert!(check_batch(11).is_err());
        assert!(check_batch(10).is_ok());
        assert!(check_visibility("extension", MAX_VISIBILITY + Duration::from_secs(1)).is_err());
        assert!(check_visibility("extension", MAX_VISIBILITY).is_ok());
    }

    #[test]
    fn receipts_abbreviate_on_char_boundaries() {
        let long = "é".repeat(100);
        assert_eq!(Receipt::new(long).to_string().chars().count(), 48);
        assert_eq!(Receipt::new("short").to_string(), "short");
    }
}
