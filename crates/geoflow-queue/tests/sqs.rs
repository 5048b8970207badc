//! SQS specifics against a moto server: how SDK failures are classified. Prints `skipped: …`
//! when moto is not installed, unless tools are required.

use std::time::{Duration, Instant};

use aws_sdk_sqs::config::retry::RetryConfig;
use geoflow_queue::{Queue, QueueError, Receipt, SqsQueue};
use geoflow_testkit::moto::unique_name;

#[tokio::test]
async fn a_missing_queue_is_a_permanent_error() {
    let Some(moto) = geoflow_testkit::moto_server().await else { return };
    let url = format!("{}/123456789012/{}", moto.endpoint_url(), unique_name("missing"));
    let q = SqsQueue::from_config(url.clone(), &moto.sdk_config().await);
    let err = q.send("x").await.unwrap_err();
    match &err {
        QueueError::Sqs { operation, queue_url, code, .. } => {
            assert_eq!(*operation, "SendMessage");
            assert_eq!(queue_url, &url);
            assert!(code.is_some(), "{err}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_probe_of_a_missing_queue_is_a_permanent_error() {
    let Some(moto) = geoflow_testkit::moto_server().await else { return };
    let url = format!("{}/123456789012/{}", moto.endpoint_url(), unique_name("missing"));
    let q = SqsQueue::from_config(url.clone(), &moto.sdk_config().await);
    let err = q.probe().await.unwrap_err();
    match &err {
        QueueError::Sqs { operation, queue_url, code, .. } => {
            assert_eq!(*operation, "GetQueueAttributes");
            assert_eq!(queue_url, &url);
            assert!(code.is_some(), "{err}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transient_error() {
    let Some(moto) = geoflow_testkit::moto_server().await else { return };
    // A port nothing listens on: bind one, note it, and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = moto.sdk_config().await;
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let q = SqsQueue::new(format!("http://127.0.0.1:{port}/123456789012/nowhere"), client);
    let started = Instant::now();
    let err = q.receive(1, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, QueueError::Sqs { operation: "ReceiveMessage", .. }), "{err:?}");
    assert!(err.is_transient(), "{err}");
    let err = q.probe().await.unwrap_err();
    assert!(matches!(err, QueueError::Sqs { operation: "GetQueueAttributes", .. }), "{err:?}");
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_foreign_receipt_is_rejected() {
    let Some(moto) = geoflow_testkit::moto_server().await else { return };
    let urls = moto.create_queue_with_dlq(&unique_name("receipts"), Duration::from_secs(5), 3).await;
    let q = SqsQueue::from_config(urls.queue_url, &moto.sdk_config().await);
    let err = q.extend(&Receipt::new("not-a-receipt"), Duration::from_secs(5)).await.unwrap_err();
    assert!(err.is_stale_receipt(), "{err:?}");
    assert!(!err.is_transient());
}
