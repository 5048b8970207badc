//! `SqsQueue::from_env` finds the endpoint, region and credentials through the standard AWS
//! chain. A test binary of its own, because it sets process environment variables.

use std::time::Duration;

use geoflow_queue::{Queue, SqsQueue};
use geoflow_testkit::moto::unique_name;

#[tokio::test]
async fn from_env_honours_aws_endpoint_url() {
    let Some(moto) = geoflow_testkit::moto_server().await else { return };
    let urls = moto.create_queue_with_dlq(&unique_name("from-env"), Duration::from_secs(5), 3).await;
    // The only test in this binary: nothing else reads the environment meanwhile.
    for (key, value) in [
        ("AWS_ENDPOINT_URL", moto.endpoint_url()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/geoflow-test-aws-config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/geoflow-test-aws-credentials"),
    ] {
        std::env::set_var(key, value);
    }
    std::env::remove_var("AWS_PROFILE");
    std::env::remove_var("AWS_ENDPOINT_URL_SQS");

    let q = SqsQueue::from_env(urls.queue_url.clone()).await;
    assert_eq!(q.queue_url(), urls.queue_url);
    let id = q.send("through the default chain").await.unwrap();
    let batch = q.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, id);
    q.delete(&batch[0].receipt).await.unwrap();
}
