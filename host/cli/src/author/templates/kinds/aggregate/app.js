// {{name}}: a Sluice `aggregate` plugin. Counts each tumbling window's
// events by their `type` field (the `field` setting names another) and, when
// the window closes, emits `{"window": {...}, "counts": {"<type>": n}}`.
import { log } from 'sluice:plugin/log@0.1.3';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
let field;

// Called once with the step's settings as JSON text; a thrown string fails start-up.
export function init(settings) {
  field = JSON.parse(settings).field;
  if (typeof field !== 'string') throw 'missing `field` (a string)';
  log('debug', `counting events by ${field}`);
}

// Folds the batch into the window's state (JSON text, '' when the window
// starts): returns [newState, one result per event, in order].
export function fold(window, state, batch) {
  const counts = state === '' ? {} : JSON.parse(state);
  const results = batch.map((event) => {
    let payload;
    try {
      payload = JSON.parse(utf8.decode(event.data));
    } catch (e) {
      return { tag: 'err', val: { tag: 'invalid', val: `payload is not JSON: ${e.message}` } };
    }
    const v = payload?.[field];
    const key = typeof v === 'string' ? v : JSON.stringify(v ?? null);
    counts[key] = (counts[key] ?? 0) + 1;
    return { tag: 'ok', val: undefined };
  });
  return [JSON.stringify(counts), results];
}

// The window closed: its outputs, made of the final state.
export function emit(window, state) {
  const counts = state === '' ? {} : JSON.parse(state);
  const sorted = Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)));
  const doc = { window: { start: window.start, end: window.end }, counts: sorted };
  return [{ data: encoder.encode(JSON.stringify(doc)), partitionKey: undefined, attributes: [] }];
}
