//! Amazon SQS (or any SQS API, such as moto) through aws-sdk-sqs.
//!
//! # Mapping
//!
//! | [`Queue`] | SQS |
//! |---|---|
//! | `send` | `SendMessage` (standard queues; FIFO queues would need a message group id) |
//! | `receive(max, wait)` | `ReceiveMessage` with `MaxNumberOfMessages = max` (≤ 10) and `WaitTimeSeconds` = the time left, rounded up to whole seconds and at most 20; repeated until a message arrives or `wait` has elapsed. Asks for `ApproximateReceiveCount`, `SentTimestamp` and `ApproximateFirstReceiveTimestamp`. |
//! | `extend(visibility)` | `ChangeMessageVisibility` with `VisibilityTimeout` = `visibility` rounded up to whole seconds |
//! | `release(delay)` | `ChangeMessageVisibility` with `VisibilityTimeout` = `delay` rounded up (0: visible at once) |
//! | `delete` | `DeleteMessage` |
//! | `probe` | `GetQueueAttributes` for `ApproximateNumberOfMessages` |
//!
//! The visibility timeout, the message retention and the dead-letter queue are attributes of
//! the queue, set where the queue is created (Terraform in production): the dead-letter queue
//! is the queue's redrive policy, and SQS itself moves a message there once its receive count
//! exceeds the policy's `maxReceiveCount`. [`Delivery::receive_count`] is SQS's
//! `ApproximateReceiveCount`.
//!
//! # Stale receipts
//!
//! SQS does not reliably reject a receipt that is no longer the latest. `DeleteMessage` with
//! an earlier receipt of a message usually succeeds and deletes the message (AWS documents
//! that the request "succeeds, but the message might not be deleted"); moto deletes it.
//! `ChangeMessageVisibility` with an earlier receipt, or for a message that is no longer in
//! flight, fails with `InvalidParameterValue` ("Message does not exist or is not available
//! for visibility timeout change"), `MessageNotInflight` or `ReceiptHandleIsInvalid`. All of
//! these, and `ReceiptHandleIsInvalid` from `DeleteMessage`, are reported as
//! [`QueueError::StaleReceipt`]. Consumers must not rely on a stale delete failing: effects
//! are idempotent, so a redelivered message is harmless either way.
//!
//! # Errors
//!
//! Throttling, 5xx answers, timeouts and connection failures are transient
//! ([`QueueError::is_transient`]); the SDK has already retried them with its standard retry
//! policy by the time they are returned. Everything else (access denied, a missing queue, bad
//! parameters) is permanent.
//!
//! Credentials and region come from the standard AWS chain (environment, profile, ECS task
//! role, instance metadata), and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SQS` override the
//! endpoint; nothing is read from geoflow's own configuration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use crate::{check_batch, check_visibility, Delivery, Queue, QueueError, Receipt, MAX_VISIBILITY};

/// Longest `WaitTimeSeconds` SQS accepts.
const MAX_WAIT_SECONDS: u64 = 20;

/// Error codes SQS uses for throttling and for faults on its side.
const TRANSIENT_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "KmsThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// An SQS queue, addressed by its URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue reached through `client`.
    pub fn new(queue_url: impl Into<String>, client: Client) -> Self {
        SqsQueue { client, queue_url: queue_url.into() }
    }

    /// A queue reached with an SDK configuration (from `aws_config::defaults(…).load()`).
    pub fn from_config(queue_url: impl Into<String>, config: &aws_config::SdkConfig) -> Self {
        Self::new(queue_url, Client::new(config))
    }

    /// A queue reached with the standard AWS configuration chain (credentials, region and
    /// `AWS_ENDPOINT_URL` from the environment, profile files, the ECS task role or instance
    /// metadata).
    pub async fn from_env(queue_url: impl Into<String>) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        Self::from_config(queue_url, &config)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn error<E>(&self, operation: &'static str, receipt: Option<&Receipt>, err: SdkError<E, HttpResponse>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_sdk_error(operation, &self.queue_url, receipt, err)
    }

    async fn change_visibility(
        &self,
        operation: &'static str,
        receipt: &Receipt,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt.as_str())
            .visibility_timeout(whole_seconds(visibility))
            .send()
            .await
            .map_err(|e| self.error(operation, Some(receipt), e))?;
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: &str) -> Result<String, QueueError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| self.error("SendMessage", None, e))?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        check_batch(max)?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_VISIBILITY);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait_seconds = (whole_seconds(left) as u64).min(MAX_WAIT_SECONDS);
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(max as i32)
                .wait_time_seconds(wait_seconds as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
                .send()
                .await
                .map_err(|e| self.error("ReceiveMessage", None, e))?;
            let batch: Vec<Delivery> = out.messages.unwrap_or_default().into_iter().filter_map(delivery).collect();
            if !batch.is_empty() || wait_seconds == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(batch);
            }
        }
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError> {
        check_visibility("visibility extension", visibility)?;
        self.change_visibility("ChangeMessageVisibility", receipt, visibility).await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt.as_str())
            .send()
            .await
            .map_err(|e| self.error("DeleteMessage", Some(receipt), e))?;
        Ok(())
    }

    async fn release(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        check_visibility("release delay", delay)?;
        self.change_visibility("ChangeMessageVisibility", receipt, delay).await
    }

    async fn probe(&self) -> Result<(), QueueError> {
        // One attribute of the queue itself: a read that touches no message.
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", None, e))?;
        Ok(())
    }
}

/// A received message as a [`Delivery`]; `None` (after a warning) when SQS left out its id
/// or receipt, which it never does: such a message could not be acknowledged anyway.
fn delivery(m: Message) -> Option<Delivery> {
    let attribute = |name: MessageSystemAttributeName| m.attributes.as_ref().and_then(|a| a.get(&name)).cloned();
    let receive_count =
        attribute(MessageSystemAttributeName::ApproximateReceiveCount).and_then(|v| v.parse().ok()).unwrap_or(1);
    let sent_at = attribute(MessageSystemAttributeName::SentTimestamp).and_then(|v| epoch_ms(&v));
    let first_received_at =
        attribute(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp).and_then(|v| epoch_ms(&v));
    let (Some(id), Some(receipt)) = (m.message_id, m.receipt_handle) else {
        tracing::warn!("SQS returned a message without an id or receipt handle; ignored");
        return None;
    };
    Some(Delivery {
        id,
        receipt: Receipt::new(receipt),
        body: m.body.unwrap_or_default(),
        receive_count,
        sent_at,
        first_received_at,
    })
}

/// A timestamp attribute (milliseconds since the epoch, as a decimal string).
fn epoch_ms(v: &str) -> Option<SystemTime> {
    v.parse::<u64>().ok().map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// A duration in whole seconds, rounded up (so that nothing becomes visible early), capped to
/// what an `i32` holds (callers check the SQS limits first).
fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn map_sdk_error<E>(
    operation: &'static str,
    queue_url: &str,
    receipt: Option<&Receipt>,
    err: SdkError<E, HttpResponse>,
) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    if let Some(receipt) = receipt {
        let stale = match code.as_deref() {
            Some("ReceiptHandleIsInvalid" | "MessageNotInflight" | "AWS.SimpleQueueService.MessageNotInflight") => true,
            // ChangeMessageVisibility on a message no longer in flight under this receipt.
            Some("InvalidParameterValue") => err.message().is_some_and(|m| m.contains("ReceiptHandle")),
            _ => false,
        };
        if stale {
            return QueueError::StaleReceipt { receipt: receipt.to_string() };
        }
    }
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // A user error (such as an invalid endpoint) fails the same way every time.
        SdkError::DispatchFailure(d) => !d.is_user(),
        SdkError::ServiceError(s) => {
            let status = s.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || code.as_deref().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    QueueError::Sqs {
        operation,
        queue_url: queue_url.to_owned(),
        code,
        message: DisplayErrorContext(&err).to_string(),
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(20)), 20);
        assert_eq!(whole_seconds(Duration::MAX), i32::MAX);
    }

    #[test]
    fn messages_become_deliveries() {
        let m = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .build();
        let d = delivery(m).expect("delivery");
        assert_eq!((d.id.as_str(), d.receipt.as_str(), d.body.as_str(), d.receive_count), ("m1", "r1", "{}", 3));
        assert_eq!(d.sent_at, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(d.first_received_at, None);
        assert!(delivery(Message::builder().body("x").build()).is_none());
    }
}
