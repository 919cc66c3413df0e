//! What SQS's `SendMessageBatch` and SNS's `PublishBatch` say about each
//! entry, read the same way: an entry's id is its position in the request,
//! only an entry reported as sent is delivered (fail closed), a refusal is
//! the sender's fault (for good) or not (worth resending), and an entry the
//! service did not mention is failed.

use super::{Request, Verdict};

/// One entry the service did not take.
pub struct Refusal<'a> {
    /// The id the entry was sent with.
    pub id: &'a str,
    /// The service's error code.
    pub code: &'a str,
    /// The service's message, if any.
    pub message: Option<&'a str>,
    /// Whether the content is at fault (sending it again would not help).
    pub sender_fault: bool,
}

/// How one batch API names things in messages.
pub struct Service<'a> {
    /// `SQS`, `SNS`.
    pub name: &'static str,
    /// The queue URL or topic ARN.
    pub resource: &'a str,
    /// What a delivered entry is, as in "did not report the message as …".
    pub done: &'static str,
}

impl Request {
    /// The deduplication id entry `pos` is sent with: `dedup`, or a fresh
    /// one when it is a resend of an entry the destination already took.
    pub fn dedup_id(&self, pos: usize, dedup: &str) -> String {
        if self.resent.get(pos).copied().unwrap_or(false) {
            super::sqs::resent_dedup_id(dedup, self.attempt)
        } else {
            dedup.to_owned()
        }
    }
}

/// The request as a whole failed (after the SDK's own retries): every entry
/// it carried (`positions`) is failed with `reason`.
pub fn fail_all(verdicts: &mut [Verdict], positions: &[usize], reason: &str) {
    for &pos in positions {
        verdicts[pos] = Verdict::Failed(reason.to_owned());
    }
}

/// Sets the verdict of each entry sent (`positions`) from the response's
/// `sent` ids and `refused` entries.
pub fn settle<'a>(
    verdicts: &mut [Verdict],
    positions: &[usize],
    sent_ids: impl IntoIterator<Item = &'a str>,
    refused: impl IntoIterator<Item = Refusal<'a>>,
    service: &Service<'_>,
) {
    let n = verdicts.len();
    let position = |id: &str| id.parse::<usize>().ok().filter(|&p| p < n);
    let mut sent = vec![false; n];
    for p in sent_ids.into_iter().filter_map(position) {
        sent[p] = true;
    }
    let mut reported = vec![false; n];
    for f in refused {
        let Some(pos) = position(f.id) else {
            tracing::warn!(
                service = service.name,
                resource = service.resource,
                id = f.id,
                code = f.code,
                "a failure reported for an entry id that was not sent"
            );
            continue;
        };
        if sent[pos] || reported[pos] {
            continue;
        }
        reported[pos] = true;
        let reason = format!(
            "{} refused the message for `{}`: {} {}",
            service.name,
            service.resource,
            f.code,
            f.message.unwrap_or("")
        );
        verdicts[pos] = if f.sender_fault {
            Verdict::Refused(reason)
        } else {
            Verdict::Retry(reason)
        };
    }
    for &pos in positions {
        if !sent[pos] && !reported[pos] {
            verdicts[pos] = Verdict::Failed(format!(
                "{} did not report the message for `{}` as {}",
                service.name, service.resource, service.done
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_reported_sent_is_taken() {
        let service = Service {
            name: "SQS",
            resource: "q",
            done: "sent",
        };
        let mut verdicts = vec![Verdict::Taken; 4];
        let refused = [
            Refusal {
                id: "1",
                code: "InvalidMessageContents",
                message: None,
                sender_fault: true,
            },
            Refusal {
                id: "2",
                code: "ServiceUnavailable",
                message: Some("later"),
                sender_fault: false,
            },
            // An id never sent, and one also reported sent: ignored.
            Refusal {
                id: "9",
                code: "X",
                message: None,
                sender_fault: true,
            },
            Refusal {
                id: "0",
                code: "X",
                message: None,
                sender_fault: true,
            },
        ];
        settle(&mut verdicts, &[0, 1, 2, 3], ["0", "zz"], refused, &service);
        assert_eq!(verdicts[0], Verdict::Taken);
        assert!(
            matches!(&verdicts[1], Verdict::Refused(m) if m.contains("InvalidMessageContents"))
        );
        assert!(matches!(&verdicts[2], Verdict::Retry(m) if m.contains("later")));
        assert_eq!(
            verdicts[3],
            Verdict::Failed("SQS did not report the message for `q` as sent".into())
        );
    }
}
