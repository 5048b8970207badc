//! What only the embedded queue promises: durability across reopening, several handles (as
//! several processes would open it) on one file, stale receipts, and operator access to the
//! dead letters.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue, QueueError, QueueStats, Receipt};

fn options(visibility_timeout: Duration, max_receive_count: Option<u32>) -> EmbeddedOptions {
    EmbeddedOptions {
        visibility_timeout,
        max_receive_count,
        poll_interval: Duration::from_millis(50),
        ..EmbeddedOptions::default()
    }
}

async fn open(path: &Path, visibility_timeout: Duration, max_receive_count: Option<u32>) -> EmbeddedQueue {
    EmbeddedQueue::open(path, options(visibility_timeout, max_receive_count)).await.unwrap()
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, as on a first start.
    let path = dir.path().join("geoflow-data").join("queue.sqlite");
    let (kept, received) = {
        let q = open(&path, Duration::from_secs(1), Some(5)).await;
        let a = q.send("a").await.unwrap();
        let b = q.send("b").await.unwrap();
        let c = q.send("c").await.unwrap();
        let first = q.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(first[0].id, a);
        let second = q.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(second[0].id, b);
        q.delete(&second[0].receipt).await.unwrap();
        ((a, c), first[0].clone())
    };
    // Dropped: reopen as a restarted process would.
    let q = open(&path, Duration::from_secs(1), Some(5)).await;
    assert_eq!(q.stats().await.unwrap(), QueueStats { visible: 1, invisible: 1, dead_letters: 0 });
    // The one never received is visible at once; the one in flight comes back after its
    // visibility timeout, with its receive count carried over.
    let c = q.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].id.as_str(), c[0].body.as_str(), c[0].receive_count), (kept.1.as_str(), "c", 1));
    q.delete(&c[0].receipt).await.unwrap();
    let a = q.receive(10, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].id.as_str(), a[0].body.as_str(), a[0].receive_count), (kept.0.as_str(), "a", 2));
    assert_eq!(a[0].first_received_at, received.first_received_at);
    assert_eq!(a[0].sent_at, received.sent_at);
    // The receipt from before the restart is stale now that the message was received again.
    assert!(q.delete(&received.receipt).await.unwrap_err().is_stale_receipt());
}

/// Two handles on one file, each with two receiving tasks: the claim transaction keeps every
/// message with one receiver at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_never_double_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let one = open(&path, Duration::from_secs(30), Some(5)).await;
    let two = open(&path, Duration::from_secs(30), Some(5)).await;
    let mut sent = HashSet::new();
    for i in 0..100 {
        sent.insert(one.send(&format!("from one {i}")).await.unwrap());
        sent.insert(two.send(&format!("from two {i}")).await.unwrap());
    }
    let mut tasks = Vec::new();
    for q in [&one, &one, &two, &two] {
        let q: Arc<dyn Queue> = Arc::new(q.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let batch = q.receive(10, Duration::from_millis(500)).await.unwrap();
                if batch.is_empty() {
                    return ids;
                }
                for d in batch {
                    q.delete(&d.receipt).await.unwrap();
                    ids.push(d.id);
                }
            }
        }));
    }
    let mut received = Vec::new();
    for t in tasks {
        received.extend(t.await.unwrap());
    }
    assert_eq!(received.len(), 200);
    assert_eq!(received.into_iter().collect::<HashSet<_>>(), sent);
    assert_eq!(one.stats().await.unwrap(), QueueStats::default());
}

/// Drains the queue named by `GEOFLOW_QUEUE_CHILD` with two tasks, working 5 ms on each
/// message (as a worker would, which leaves the other process room to take the lock), then
/// deleting it and printing `got <id>`: the other process of [`two_processes_never_double_deliver`],
/// which runs this test binary again for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_processes_never_double_deliver in a child process"]
async fn child_process_drains() {
    let path = std::env::var("GEOFLOW_QUEUE_CHILD").expect("GEOFLOW_QUEUE_CHILD names the queue file");
    let q = open(Path::new(&path), Duration::from_secs(30), Some(5)).await;
    // Ready; wait for the start signal so that all processes drain at once.
    std::fs::write(format!("{path}.ready.{}", std::process::id()), b"").unwrap();
    let start = format!("{path}.start");
    while !Path::new(&start).exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for id in drain(&q, 2, Duration::from_millis(5)).await {
        println!("got {id}");
    }
}

/// Receives and deletes with `tasks` tasks, working `work` on each message, until a receive
/// comes back empty; returns the ids.
async fn drain(q: &EmbeddedQueue, tasks: usize, work: Duration) -> Vec<String> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let batch = q.receive(10, Duration::from_millis(500)).await.unwrap();
                if batch.is_empty() {
                    return ids;
                }
                for d in batch {
                    tokio::time::sleep(work).await;
                    q.delete(&d.receipt).await.unwrap();
                    ids.push(d.id);
                }
            }
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.unwrap());
    }
    ids
}

/// Two processes drain one file at once: every message is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_double_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let q = open(&path, Duration::from_secs(30), Some(5)).await;
    let mut sent = HashSet::new();
    for i in 0..300 {
        sent.insert(q.send(&format!("message {i}")).await.unwrap());
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args(["--exact", "child_process_drains", "--ignored", "--nocapture", "--test-threads=1"])
                .env("GEOFLOW_QUEUE_CHILD", &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ready = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".ready."))
            .count()
    };
    let started = Instant::now();
    while ready() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "the other processes did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(dir.path().join("queue.sqlite.start"), b"").unwrap();
    let mut received = Vec::new();
    let mut per_child = Vec::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stdout));
        // The test harness writes `test child_process_drains ... ` before the first line.
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once("got ").map(|(_, id)| id.to_string()))
            .collect();
        per_child.push(ids.len());
        received.extend(ids);
    }
    assert_eq!(received.len(), 300, "deliveries per process: {per_child:?}");
    assert!(per_child.iter().all(|&n| n > 0), "both processes work: {per_child:?}");
    assert_eq!(received.into_iter().collect::<HashSet<_>>(), sent);
    assert_eq!(q.stats().await.unwrap(), QueueStats::default());
}

/// A handle notices messages another handle (another process) sends while it waits.
#[tokio::test]
async fn long_poll_sees_other_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let receiver = open(&path, Duration::from_secs(30), Some(5)).await;
    let sender = open(&path, Duration::from_secs(30), Some(5)).await;
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send("from elsewhere").await.unwrap()
    });
    let started = Instant::now();
    let batch = receiver.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, send.await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn stale_receipts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir.path().join("queue.sqlite"), Duration::from_secs(1), Some(5)).await;
    q.send("m").await.unwrap();
    let first = q.receive(1, Duration::ZERO).await.unwrap().pop().unwrap();
    // Visibility ran out but nobody received it again: the receipt still holds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    q.extend(&first.receipt, Duration::from_millis(200)).await.unwrap();
    let second = q.receive(1, Duration::from_secs(2)).await.unwrap().pop().unwrap();
    assert_eq!(second.receive_count, 2);
    for result in [
        q.delete(&first.receipt).await,
        q.extend(&first.receipt, Duration::from_secs(5)).await,
        q.release(&first.receipt, Duration::ZERO).await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, QueueError::StaleReceipt { .. }), "{err}");
        assert!(!err.is_transient());
    }
    // The latest receipt is untouched by the failed calls.
    q.delete(&second.receipt).await.unwrap();
    assert!(q.delete(&second.receipt).await.unwrap_err().is_stale_receipt(), "deleted twice");
}

#[tokio::test]
async fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let q =
        EmbeddedQueue::open(&path, EmbeddedOptions { max_body_bytes: 16, ..options(Duration::from_secs(1), Some(5)) })
            .await
            .unwrap();
    for receipt in ["", "nonsense", "x:y", &format!("{}:{}", "A".repeat(32), "0".repeat(32)), "é:é"] {
        let err = q.delete(&Receipt::new(receipt)).await.unwrap_err();
        assert!(matches!(err, QueueError::InvalidReceipt { .. }), "{receipt:?}: {err}");
    }
    // Well formed, but never issued.
    let forged = Receipt::new(format!("{}:{}", "0".repeat(32), "0".repeat(32)));
    assert!(q.delete(&forged).await.unwrap_err().is_stale_receipt());
    let err = q.send(&"x".repeat(17)).await.unwrap_err();
    assert!(matches!(err, QueueError::BodyTooLarge { size: 17, limit: 16 }), "{err}");
    q.send("fits").await.unwrap();
    let d = q.receive(1, Duration::ZERO).await.unwrap().pop().unwrap();
    let err = q.extend(&d.receipt, Duration::from_secs(13 * 3600)).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err}");
    let err = EmbeddedQueue::open(&path, options(Duration::from_secs(1), Some(0))).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err}");
    // Extreme settings are clamped or refused, never a panic.
    let extreme = EmbeddedOptions {
        busy_timeout: Duration::MAX,
        poll_interval: Duration::MAX,
        ..options(Duration::from_secs(1), Some(5))
    };
    let q = EmbeddedQueue::open(dir.path().join("extreme.sqlite"), extreme).await.unwrap();
    assert!(q.receive(1, Duration::from_millis(50)).await.unwrap().is_empty());
    q.send("now").await.unwrap();
    assert_eq!(q.receive(1, Duration::MAX).await.unwrap().len(), 1);
    let spin = EmbeddedOptions { poll_interval: Duration::ZERO, ..options(Duration::from_secs(1), Some(5)) };
    let q = EmbeddedQueue::open(dir.path().join("spin.sqlite"), spin).await.unwrap();
    assert!(q.receive(1, Duration::from_millis(50)).await.unwrap().is_empty());
    let err = EmbeddedQueue::open(dir.path().join("long.sqlite"), options(Duration::MAX, Some(5))).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err}");
    // A file that is not a database.
    let not_db = dir.path().join("not.sqlite");
    std::fs::write(&not_db, vec![b'x'; 4096]).unwrap();
    let err = EmbeddedQueue::open(&not_db, EmbeddedOptions::default()).await.unwrap_err();
    assert!(matches!(err, QueueError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("not.sqlite"), "{err}");
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir.path().join("queue.sqlite"), Duration::from_secs(1), Some(1)).await;
    let poison = q.send("poison").await.unwrap();
    let other = q.send("other").await.unwrap();
    for d in q.receive(10, Duration::ZERO).await.unwrap() {
        q.release(&d.receipt, Duration::ZERO).await.unwrap();
    }
    // Both were received once, the maximum: the next receive moves them instead.
    assert!(q.receive(10, Duration::from_millis(200)).await.unwrap().is_empty());
    assert_eq!(q.stats().await.unwrap(), QueueStats { visible: 0, invisible: 0, dead_letters: 2 });
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec![poison.as_str(), other.as_str()]);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].receive_count, 1);
    assert!(dead[0].first_received_at.is_some());
    assert!(dead[0].dead_lettered_at >= dead[0].sent_at);
    assert_eq!(q.dead_letters(1).await.unwrap().len(), 1);

    // Redrive one by id: a fresh message with the same id and body.
    assert_eq!(q.redrive(Some(&[other.clone(), "unknown".to_string()])).await.unwrap(), 1);
    let back = q.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].id.as_str(), back[0].body.as_str(), back[0].receive_count), (other.as_str(), "other", 1));
    q.delete(&back[0].receipt).await.unwrap();

    // Redrive all, dead-letter again, then delete for good.
    assert_eq!(q.redrive(None).await.unwrap(), 1);
    let d = q.receive(1, Duration::ZERO).await.unwrap().pop().unwrap();
    q.release(&d.receipt, Duration::ZERO).await.unwrap();
    assert!(q.receive(1, Duration::ZERO).await.unwrap().is_empty());
    assert!(q.delete_dead_letter(&poison).await.unwrap());
    assert!(!q.delete_dead_letter(&poison).await.unwrap());
    assert_eq!(q.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test]
async fn without_a_maximum_nothing_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir.path().join("queue.sqlite"), Duration::from_secs(1), None).await;
    q.send("m").await.unwrap();
    for expected in 1..=8 {
        let d = q.receive(1, Duration::ZERO).await.unwrap().pop().expect("redelivered");
        assert_eq!(d.receive_count, expected);
        q.release(&d.receipt, Duration::ZERO).await.unwrap();
    }
    assert_eq!(q.stats().await.unwrap().dead_letters, 0);
}
