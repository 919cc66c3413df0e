// {{name}}: a Sluice `transform` plugin. Adds `"processed_by": <stamp>` to
// every JSON object payload and keeps the event's attributes.
import { log } from 'sluice:plugin/log@0.1.3';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
let stamp;

// Called once with the step's settings as JSON text; a thrown string fails start-up.
export function init(settings) {
  stamp = JSON.parse(settings).stamp;
  if (typeof stamp !== 'string') throw 'missing `stamp` (a string)';
  log('debug', `stamping events with ${stamp}`);
}

// One result per event, in order: `{ tag: 'ok', val: [outputs] }` or a failure.
export function transform(batch) {
  return batch.map((event) => {
    let payload;
    try {
      payload = JSON.parse(utf8.decode(event.data));
    } catch (e) {
      return { tag: 'err', val: { tag: 'invalid', val: `payload is not JSON: ${e.message}` } };
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      return { tag: 'err', val: { tag: 'invalid', val: 'payload is not a JSON object' } };
    }
    payload.processed_by = stamp;
    const data = encoder.encode(JSON.stringify(payload));
    return { tag: 'ok', val: [{ data, partitionKey: undefined, attributes: event.attributes }] };
  });
}
