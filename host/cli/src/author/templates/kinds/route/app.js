// {{name}}: a Sluice `route` plugin. Sends events whose `urgent` field is
// `true` to the destination named by the `urgent` setting; the others go to
// the pipeline's default destination.
import { log } from 'sluice:plugin/log@0.1.3';

const utf8 = new TextDecoder('utf-8', { fatal: true });
let urgent;

// Called once with the step's settings as JSON text; a thrown string fails start-up.
export function init(settings) {
  urgent = JSON.parse(settings).urgent;
  if (typeof urgent !== 'string') throw 'missing `urgent` (a destination name)';
  log('debug', `urgent events go to ${urgent}`);
}

// One result per event, in order: destination names (`[]`: the default) or a failure.
export function route(batch) {
  return batch.map((event) => {
    let payload;
    try {
      payload = JSON.parse(utf8.decode(event.data));
    } catch (e) {
      return { tag: 'err', val: { tag: 'invalid', val: `payload is not JSON: ${e.message}` } };
    }
    return { tag: 'ok', val: payload?.urgent === true ? [urgent] : [] };
  });
}
