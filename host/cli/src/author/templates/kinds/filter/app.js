// {{name}}: a Sluice `filter` plugin. Drops events whose `type` field equals
// the `drop_type` setting; keeps the others.
import { log } from 'sluice:plugin/log@0.1.3';

const utf8 = new TextDecoder('utf-8', { fatal: true });
let dropType;

// Called once with the step's settings as JSON text; a thrown string fails start-up.
export function init(settings) {
  dropType = JSON.parse(settings).drop_type;
  if (typeof dropType !== 'string') throw 'missing `drop_type` (a string)';
  log('debug', `dropping events of type ${dropType}`);
}

// One result per event, in order: `{ tag: 'ok', val: keep }` or a failure.
export function filter(batch) {
  return batch.map((event) => {
    let payload;
    try {
      payload = JSON.parse(utf8.decode(event.data));
    } catch (e) {
      return { tag: 'err', val: { tag: 'invalid', val: `payload is not JSON: ${e.message}` } };
    }
    return { tag: 'ok', val: payload?.type !== dropType };
  });
}
