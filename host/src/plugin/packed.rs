//! Packs a step's events into one `packed.batch` for the `packed-*` worlds.
//!
//! A `list<event>` lowers into the guest with one guest allocation (a call
//! into the plugin's `cabi_realloc`) per string and payload of every event:
//! four per event. A [`Batch`] makes one per event (its payload) and three
//! per call: [`pack`] lays every event's strings end to end in `text` and
//! records, per event, where its own lie.
//!
//! Payloads are not copied to pack them: [`pack`] moves each out of its
//! event into the batch, and [`unpack`] moves them back after the call, so
//! the one copy of a payload is wasmtime's, into the guest's memory.

use super::bindings::Event;
use super::bindings::packed::{Attribute, Batch, Event as PackedEvent, Span};

/// A batch whose strings add up to more than a `u32` can address (4 GiB):
/// it cannot be packed, and no plugin memory could hold it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the batch's strings add up to {bytes} bytes, more than a packed batch can address (4 GiB)"
)]
pub struct TooBig {
    /// The bytes the batch's strings would take.
    pub bytes: u64,
}

/// Lays `events` out as one [`Batch`], moving each payload into it (the
/// events are left with empty `data` until [`unpack`]). Shard IDs repeat
/// from event to event (a Kinesis batch comes from one shard), so an event
/// whose shard ID is its predecessor's points at the same text.
pub fn pack(events: &mut [Event]) -> Result<Batch, TooBig> {
    let mut total = 0u64;
    let mut attributes = 0usize;
    for e in events.iter() {
        total += (e.partition_key.len() + e.sequence_number.len() + e.shard_id.len()) as u64;
        for (k, v) in &e.attributes {
            total += (k.len() + v.len()) as u64;
        }
        attributes += e.attributes.len();
    }
    if total > u64::from(u32::MAX) {
        return Err(TooBig { bytes: total });
    }
    let mut batch = Batch {
        events: Vec::with_capacity(events.len()),
        attributes: Vec::with_capacity(attributes),
        text: String::with_capacity(total as usize),
    };
    // The previous event's shard ID and where it went.
    let mut last_shard: Option<(&str, Span)> = None;
    for e in events.iter_mut() {
        let shard_id = match last_shard {
            Some((id, span)) if id == e.shard_id => span,
            _ => put(&mut batch.text, &e.shard_id),
        };
        let first_attribute = batch.attributes.len() as u32;
        for (k, v) in &e.attributes {
            let key = put(&mut batch.text, k);
            let value = put(&mut batch.text, v);
            batch.attributes.push(Attribute { key, value });
        }
        batch.events.push(PackedEvent {
            partition_key: put(&mut batch.text, &e.partition_key),
            sequence_number: put(&mut batch.text, &e.sequence_number),
            sub_sequence_number: e.sub_sequence_number,
            shard_id,
            arrival_ms: e.arrival_ms,
            data: std::mem::take(&mut e.data),
            attributes: Span {
                start: first_attribute,
                len: e.attributes.len() as u32,
            },
        });
        last_shard = Some((&e.shard_id, shard_id));
    }
    Ok(batch)
}

/// Gives each event back the payload [`pack`] moved into `batch`.
pub fn unpack(batch: Batch, events: &mut [Event]) {
    for (e, packed) in events.iter_mut().zip(batch.events) {
        e.data = packed.data;
    }
}

/// Appends `value` to `text` and says where it went. (`pack` checked that
/// everything fits in `u32` offsets.)
fn put(text: &mut String, value: &str) -> Span {
    let start = text.len() as u32;
    text.push_str(value);
    Span {
        start,
        len: value.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(shard: &str, seq: &str, data: &[u8], attributes: &[(&str, &str)]) -> Event {
        Event {
            partition_key: format!("key-{seq}"),
            sequence_number: seq.into(),
            sub_sequence_number: seq.len().is_multiple_of(2).then_some(seq.len() as u32),
            shard_id: shard.into(),
            arrival_ms: 1_700_000_000_000 + seq.len() as u64,
            data: data.to_vec(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    /// What a guest reads from a packed batch.
    fn read(batch: &Batch) -> Vec<Event> {
        let text = |s: Span| batch.text[s.start as usize..][..s.len as usize].to_owned();
        batch
            .events
            .iter()
            .map(|e| Event {
                partition_key: text(e.partition_key),
                sequence_number: text(e.sequence_number),
                sub_sequence_number: e.sub_sequence_number,
                shard_id: text(e.shard_id),
                arrival_ms: e.arrival_ms,
                data: e.data.clone(),
                attributes: batch.attributes[e.attributes.start as usize..]
                    [..e.attributes.len as usize]
                    .iter()
                    .map(|a| (text(a.key), text(a.value)))
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn a_packed_batch_holds_every_field_and_unpacking_restores_the_events() {
        let events = vec![
            event("shardId-000000000001", "49590", br#"{"a":1}"#, &[]),
            event(
                "shardId-000000000001",
                "495901",
                b"",
                &[("k", "v"), ("type", "")],
            ),
            event(
                "shardId-000000000002",
                "7",
                "é\u{0}x".as_bytes(),
                &[("ключ", "w")],
            ),
            event("shardId-000000000001", "8", &[0xff, 0, 1], &[]),
        ];
        let fields = |e: &[Event]| e.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
        let mut moved = events.clone();
        let batch = pack(&mut moved).unwrap();
        assert_eq!(fields(&read(&batch)), fields(&events));
        // The payloads were moved, not copied: the events are left without.
        assert!(moved.iter().all(|e| e.data.is_empty()));
        assert_eq!(batch.attributes.len(), 3);
        // The first two share one copy of their shard ID; a change of shard
        // (and a change back) gets its own.
        let shard = |i: usize| (batch.events[i].shard_id.start, batch.events[i].shard_id.len);
        assert_eq!(shard(0), shard(1));
        assert_ne!(shard(2), shard(3));
        assert_ne!(shard(1), shard(3));
        unpack(batch, &mut moved);
        assert_eq!(fields(&moved), fields(&events));
    }

    #[test]
    fn an_empty_batch_packs_to_empty_lists() {
        let batch = pack(&mut []).unwrap();
        assert!(batch.events.is_empty() && batch.attributes.is_empty() && batch.text.is_empty());
    }
}
