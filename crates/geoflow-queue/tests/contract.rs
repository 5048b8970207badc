//! One contract, every queue: the SQS semantics of the crate documentation checked through
//! the `Queue` trait against the embedded queue (a SQLite file) and SQS (a moto server). The
//! SQS half prints `skipped: …` when moto is not installed, unless tools are required.
//!
//! Timeouts are short (a visibility timeout of 1 s) to keep the suite fast; assertions on
//! elapsed time leave room for SQS's whole-second granularity and moto's one-second polling.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue, QueueError, SqsQueue};
use geoflow_testkit::moto::unique_name;

const SECOND: Duration = Duration::from_secs(1);

/// A queue under test, with a way to look into its dead-letter queue.
struct Fixture {
    queue: Arc<dyn Queue>,
    dead_letters: DeadLetters,
    /// Whether the queue promises that a message is held by one receiver at a time. SQS does
    /// not: a standard queue "occasionally" delivers more than one copy (AWS documentation),
    /// and moto's ReceiveMessage is not atomic across its request threads.
    exclusive: bool,
    _dir: Option<tempfile::TempDir>,
}

enum DeadLetters {
    Embedded(EmbeddedQueue),
    Sqs(SqsQueue),
}

impl Fixture {
    /// Bodies of the messages in the dead-letter queue (waiting up to `wait` for SQS).
    async fn dead_letter_bodies(&self, wait: Duration) -> Vec<String> {
        match &self.dead_letters {
            DeadLetters::Embedded(q) => q.dead_letters(100).await.unwrap().into_iter().map(|d| d.body).collect(),
            DeadLetters::Sqs(q) => q.receive(10, wait).await.unwrap().into_iter().map(|d| d.body).collect(),
        }
    }
}

async fn embedded(visibility_timeout: Duration, max_receive_count: u32) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        visibility_timeout,
        max_receive_count: Some(max_receive_count),
        poll_interval: Duration::from_millis(50),
        ..EmbeddedOptions::default()
    };
    let queue = EmbeddedQueue::open(dir.path().join("queue.sqlite"), options).await.unwrap();
    Some(Fixture {
        queue: Arc::new(queue.clone()),
        dead_letters: DeadLetters::Embedded(queue),
        exclusive: true,
        _dir: Some(dir),
    })
}

async fn sqs(visibility_timeout: Duration, max_receive_count: u32) -> Option<Fixture> {
    let moto = geoflow_testkit::moto_server().await?;
    let urls = moto.create_queue_with_dlq(&unique_name("contract"), visibility_timeout, max_receive_count).await;
    let config = moto.sdk_config().await;
    Some(Fixture {
        queue: Arc::new(SqsQueue::from_config(urls.queue_url, &config)),
        dead_letters: DeadLetters::Sqs(SqsQueue::from_config(urls.dlq_url, &config)),
        exclusive: false,
        _dir: None,
    })
}

async fn send_receive_delete(f: Fixture) {
    let q = &*f.queue;
    let id = q.send(r#"{"hello":"world"}"#).await.unwrap();
    let batch = q.receive(10, 2 * SECOND).await.unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    let d = &batch[0];
    assert_eq!(d.id, id);
    assert_eq!(d.body, r#"{"hello":"world"}"#);
    assert_eq!(d.receive_count, 1);
    let sent_at = d.sent_at.expect("sent timestamp");
    assert!(sent_at.elapsed().unwrap_or_default() < Duration::from_secs(60), "sent at {sent_at:?}");
    assert!(d.first_received_at.is_some());
    q.delete(&d.receipt).await.unwrap();
    // Deleted for good: not delivered again once the visibility timeout is over.
    let again = q.receive(10, Duration::from_millis(2500)).await.unwrap();
    assert!(again.is_empty(), "deleted message came back: {again:?}");
}

async fn invisible_then_redelivered(f: Fixture) {
    let q = &*f.queue;
    let id = q.send("m").await.unwrap();
    let first = q.receive(1, 2 * SECOND).await.unwrap();
    assert_eq!(first.len(), 1);
    let received = Instant::now();
    assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty(), "visible while in flight");
    let second = q.receive(10, 4 * SECOND).await.unwrap();
    let after = received.elapsed();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].body, "m");
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt, "each receipt has its own handle");
    assert_eq!(second[0].first_received_at, first[0].first_received_at);
    assert!(after >= Duration::from_millis(800), "redelivered after {after:?}, before the visibility timeout");
    q.delete(&second[0].receipt).await.unwrap();
}

async fn extend_keeps_it_invisible(f: Fixture) {
    let q = &*f.queue;
    q.send("long load").await.unwrap();
    let d = q.receive(1, 2 * SECOND).await.unwrap().pop().expect("a message");
    let received = Instant::now();
    q.extend(&d.receipt, 3 * SECOND).await.unwrap();
    // Past the queue's visibility timeout of 1 s: still hidden.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty(), "visible although extended");
    let again = q.receive(10, 4 * SECOND).await.unwrap();
    let after = received.elapsed();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    assert!(after >= Duration::from_millis(2700), "visible after {after:?}, before the extension ended");
    q.delete(&again[0].receipt).await.unwrap();
}

async fn release_with_delay(f: Fixture) {
    let q = &*f.queue;
    q.send("retry later").await.unwrap();
    let d = q.receive(1, 2 * SECOND).await.unwrap().pop().expect("a message");
    let released = Instant::now();
    q.release(&d.receipt, 2 * SECOND).await.unwrap();
    assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty(), "visible before the delay");
    let again = q.receive(10, 4 * SECOND).await.unwrap();
    let after = released.elapsed();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    assert!(after >= Duration::from_millis(1700), "visible after {after:?}, before the delay of 2 s");
    q.delete(&again[0].receipt).await.unwrap();
}

async fn release_now(f: Fixture) {
    let q = &*f.queue;
    let id = q.send("again").await.unwrap();
    let d = q.receive(1, 2 * SECOND).await.unwrap().pop().expect("a message");
    q.release(&d.receipt, Duration::ZERO).await.unwrap();
    let started = Instant::now();
    let again = q.receive(10, 3 * SECOND).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(700), "released message took {:?}", started.elapsed());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].receive_count, 2);
    q.delete(&again[0].receipt).await.unwrap();
}

async fn dead_letter_after_max_receive_count(f: Fixture) {
    // The fixture allows 2 receives.
    let q = &*f.queue;
    q.send("poison").await.unwrap();
    for expected in 1..=2 {
        let d = q.receive(1, 2 * SECOND).await.unwrap().pop().expect("a message");
        assert_eq!(d.receive_count, expected);
        q.release(&d.receipt, Duration::ZERO).await.unwrap();
    }
    let third = q.receive(10, Duration::from_millis(1500)).await.unwrap();
    assert!(third.is_empty(), "delivered a third time: {third:?}");
    assert_eq!(f.dead_letter_bodies(2 * SECOND).await, vec!["poison".to_string()]);
}

async fn batches(f: Fixture) {
    let q = &*f.queue;
    let mut sent = HashSet::new();
    for i in 0..25 {
        sent.insert(q.send(&format!("message {i}")).await.unwrap());
    }
    let mut received = HashSet::new();
    let mut largest = 0;
    loop {
        let batch = q.receive(10, SECOND).await.unwrap();
        if batch.is_empty() {
            break;
        }
        largest = largest.max(batch.len());
        for d in batch {
            assert!(received.insert(d.id.clone()), "{} delivered twice", d.id);
            q.delete(&d.receipt).await.unwrap();
        }
    }
    assert_eq!(received, sent);
    assert!(largest > 1 && largest <= 10, "largest batch {largest}");
    for bad in [0, 11] {
        let err = q.receive(bad, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, QueueError::InvalidArgument(_)), "batch of {bad}: {err}");
        assert!(!err.is_transient());
    }
}

async fn long_poll_returns_early(f: Fixture) {
    let q = Arc::clone(&f.queue);
    // Nothing to receive: waits out its wait.
    let started = Instant::now();
    assert!(q.receive(10, SECOND).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(950), "returned after {:?}", started.elapsed());

    let sender = Arc::clone(&q);
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send("late").await.unwrap()
    });
    let started = Instant::now();
    let batch = q.receive(10, 10 * SECOND).await.unwrap();
    let after = started.elapsed();
    let id = send.await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, id);
    assert!(after < Duration::from_secs(3), "long poll returned after {after:?}");
    q.delete(&batch[0].receipt).await.unwrap();
}

/// Receivers running at once each get a different message; with prompt deletes every
/// message is delivered exactly once. Where the queue does not promise that (SQS), every
/// message must still arrive, and copies must stay rare.
async fn concurrent_receivers(f: Fixture) {
    let q = Arc::clone(&f.queue);
    let mut sent = HashSet::new();
    for i in 0..200 {
        sent.insert(q.send(&format!("job {i}")).await.unwrap());
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let q = Arc::clone(&q);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let batch = q.receive(10, SECOND).await.unwrap();
                if batch.is_empty() {
                    return ids;
                }
                for d in batch {
                    q.delete(&d.receipt).await.unwrap();
                    ids.push((d.id, d.receive_count));
                }
            }
        }));
    }
    let mut received = Vec::new();
    let mut per_task = Vec::new();
    for t in tasks {
        let ids = t.await.unwrap();
        per_task.push(ids.len());
        received.extend(ids);
    }
    let unique: HashSet<String> = received.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(unique, sent, "every message is delivered");
    let copies = received.len() - unique.len();
    if f.exclusive {
        assert_eq!(copies, 0, "deliveries per task {per_task:?}");
        assert!(received.iter().all(|(_, count)| *count == 1));
    } else {
        if copies > 0 {
            eprintln!("{copies} extra copies among {} deliveries (allowed for SQS)", received.len());
        }
        assert!(copies <= 10, "{copies} extra copies among {} deliveries", received.len());
    }
}

/// A probe answers and changes nothing: a message sent before is still there, unreceived.
async fn probe_answers(f: Fixture) {
    let q = &*f.queue;
    q.probe().await.unwrap();
    let id = q.send("still here").await.unwrap();
    q.probe().await.unwrap();
    let batch = q.receive(10, 2 * SECOND).await.unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!((batch[0].id.as_str(), batch[0].receive_count), (id.as_str(), 1));
    q.delete(&batch[0].receipt).await.unwrap();
    q.probe().await.unwrap();
}

macro_rules! contract {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn send_receive_delete() {
                if let Some(f) = super::$backend(SECOND, 5).await {
                    super::send_receive_delete(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn invisible_then_redelivered() {
                if let Some(f) = super::$backend(SECOND, 5).await {
                    super::invisible_then_redelivered(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn extend_keeps_it_invisible() {
                if let Some(f) = super::$backend(SECOND, 5).await {
                    super::extend_keeps_it_invisible(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn release_with_delay() {
                if let Some(f) = super::$backend(SECOND, 5).await {
                    super::release_with_delay(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn release_now() {
                if let Some(f) = super::$backend(SECOND, 5).await {
                    super::release_now(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letter_after_max_receive_count() {
                if let Some(f) = super::$backend(SECOND, 2).await {
                    super::dead_letter_after_max_receive_count(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn batches() {
                if let Some(f) = super::$backend(30 * SECOND, 5).await {
                    super::batches(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn long_poll_returns_early() {
                if let Some(f) = super::$backend(30 * SECOND, 5).await {
                    super::long_poll_returns_early(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn probe_answers() {
                if let Some(f) = super::$backend(30 * SECOND, 5).await {
                    super::probe_answers(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_receivers() {
                if let Some(f) = super::$backend(30 * SECOND, 5).await {
                    super::concurrent_receivers(f).await;
                }
            }
        }
    };
}

contract!(embedded);
contract!(sqs);
