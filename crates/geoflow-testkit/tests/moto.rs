//! The harness starts one moto server per test process and gives SDK clients for it.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;

#[tokio::test]
async fn one_server_per_process_with_queues_and_dead_letter_queues() {
    let Some(a) = geoflow_testkit::moto_server().await else { return };
    let Some(b) = geoflow_testkit::moto_server().await else { return };
    assert_eq!(a.endpoint_url(), b.endpoint_url(), "the server is shared");
    assert!(a.endpoint_url().starts_with("http://127.0.0.1:"), "{}", a.endpoint_url());

    let name = geoflow_testkit::moto::unique_name("harness");
    let urls = a.create_queue_with_dlq(&name, Duration::from_secs(7), 3).await;
    assert!(urls.queue_url.ends_with(&name), "{}", urls.queue_url);
    assert!(urls.dlq_url.ends_with(&format!("{name}-dlq")), "{}", urls.dlq_url);

    let client = a.sqs_client().await;
    let attributes = client
        .get_queue_attributes()
        .queue_url(&urls.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    assert_eq!(attributes.get(&QueueAttributeName::VisibilityTimeout).map(String::as_str), Some("7"));
    let redrive = attributes.get(&QueueAttributeName::RedrivePolicy).expect("a redrive policy");
    assert!(redrive.contains(&format!("{name}-dlq")) && redrive.contains('3'), "{redrive}");
}
