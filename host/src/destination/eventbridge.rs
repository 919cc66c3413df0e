//! The `eventbridge` destination: one event per output on an EventBridge
//! bus, sent with `PutEvents`.
//!
//! - The event's `detail` is the output's JSON object (`format = "raw"`) or
//!   its envelope; `source` and `detail-type` come from the destination's
//!   templates. An output that is not a JSON object, or an empty `source`
//!   or `detail-type`, is refused for good (class `contract`).
//! - Requests hold at most 10 entries and 256 KiB, counted as EventBridge
//!   counts an entry (`source`, `detail-type` and `detail` in UTF-8 bytes;
//!   EventBridge user guide, "Calculating PutEvents event entry size"). A
//!   larger event is refused for good.
//! - Entries failed with `ThrottlingException` or `InternalFailure` are
//!   resent by the dispatcher with backoff; `MalformedDetail`,
//!   `InvalidArgument` and `ValidationException` are refused for good;
//!   any other entry error fails the record, to be retried by Lambda.
//! - Order: EventBridge keeps none, so requests are independent.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{Batch, Request, Sink, SinkFuture, Verdict, encode_one, pack_unordered, placeholder};
use crate::config::destination::eventbridge::EventBridgePlan;
use crate::outcome::Routed;

/// Most entries in one `PutEvents` request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes in one `PutEvents` request, and so in one event.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Puts outputs on one EventBridge bus.
#[derive(Debug)]
pub struct EventBridgeDestination {
    name: String,
    client: aws_sdk_eventbridge::Client,
    plan: EventBridgePlan,
    trace_header: Option<String>,
}

/// One event, ready to put.
struct Event {
    source: String,
    detail_type: String,
    detail: String,
}

impl Event {
    fn bytes(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

impl EventBridgeDestination {
    /// The destination `plan` describes, putting with `client`.
    pub fn new(name: &str, plan: &EventBridgePlan, client: aws_sdk_eventbridge::Client) -> Self {
        EventBridgeDestination {
            name: name.to_owned(),
            client,
            plan: plan.clone(),
            trace_header: None,
        }
    }

    /// The event `r` becomes, or why EventBridge would refuse it every time.
    fn event(&self, r: &Routed) -> Result<Event, String> {
        let mut detail = Vec::new();
        encode_one(self.plan.format, r, &mut detail);
        match serde_json::from_slice::<serde::de::IgnoredAny>(&detail) {
            Ok(_) if detail.trim_ascii_start().first() == Some(&b'{') => {}
            _ => {
                return Err(
                    "output is not a JSON object; an EventBridge event's `detail` must be one"
                        .into(),
                );
            }
        }
        let detail = String::from_utf8(detail)
            .map_err(|_| "output is not UTF-8; an EventBridge `detail` must be".to_owned())?;
        let source = self.plan.source.render(|v| placeholder(r, v));
        let detail_type = self.plan.detail_type.render(|v| placeholder(r, v));
        for (field, value, template) in [
            ("source", &source, &self.plan.source),
            ("detail_type", &detail_type, &self.plan.detail_type),
        ] {
            if value.is_empty() || value.len() > 256 {
                return Err(format!(
                    "`{field} = \"{template}\"` renders to {} bytes; EventBridge takes 1 to 256",
                    value.len()
                ));
            }
        }
        let event = Event {
            source,
            detail_type,
            detail,
        };
        if event.bytes() > MAX_BATCH_BYTES {
            return Err(format!(
                "event is {} bytes; EventBridge takes at most {MAX_BATCH_BYTES}",
                event.bytes()
            ));
        }
        Ok(event)
    }

    /// One `PutEvents` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        let mut batch = Batch::build(request, |i| {
            let e = self.event(outputs[i])?;
            Ok(PutEventsRequestEntry::builder()
                .event_bus_name(&self.plan.event_bus)
                .source(e.source)
                .detail_type(e.detail_type)
                .detail(e.detail)
                .set_trace_header(self.trace_header.clone())
                .build())
        });
        if batch.entries.is_empty() {
            return batch.verdicts;
        }
        let bus = &self.plan.event_bus;
        let response = self
            .client
            .put_events()
            .set_entries(Some(std::mem::take(&mut batch.entries)))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return batch.failed(format!(
                    "PutEvents to `{bus}` failed: {}",
                    aws_sdk_eventbridge::error::DisplayErrorContext(&e)
                ));
            }
        };
        batch.answered(
            response.entries(),
            |result| match result.error_code() {
                None if result.event_id().is_some() => Verdict::Taken,
                None => Verdict::Failed(format!(
                    "EventBridge gave no event id for the event put on `{bus}`"
                )),
                Some(code) => {
                    let reason = format!(
                        "EventBridge did not take the event for `{bus}`: {code} {}",
                        result.error_message().unwrap_or("")
                    );
                    match code {
                        "ThrottlingException" | "InternalFailure" | "InternalException" => {
                            Verdict::Retry(reason)
                        }
                        "MalformedDetail" | "InvalidArgument" | "ValidationException" => {
                            Verdict::Refused(reason)
                        }
                        _ => Verdict::Failed(reason),
                    }
                }
            },
            &format!("EventBridge gave no result for an event put on `{bus}`"),
        )
    }
}

impl Sink for EventBridgeDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("eventbridge {}", self.plan.event_bus)
    }

    fn refusal(&self, r: &Routed) -> Option<String> {
        self.event(r).err()
    }

    fn set_trace_header(&mut self, header: Option<&str>) {
        self.trace_header = header.filter(|h| !h.is_empty()).map(str::to_owned);
    }

    fn max_in_flight(&self) -> usize {
        self.plan.max_in_flight
    }

    /// Requests of at most 10 events and 256 KiB, in input order,
    /// independent of each other.
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        pack_unordered(outputs, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES, |r| {
            self.event(r).map_or(0, |e| e.bytes())
        })
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(self.send_request(outputs, request))
    }
}
