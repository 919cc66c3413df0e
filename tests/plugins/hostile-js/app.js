// A `filter` plugin that misbehaves on purpose, for host/tests/languages.rs.
//
// What it does depends on the event's payload (plain text):
//   throw    throws an Error (not a failure result): the call traps
//   invalid  fails the event with `invalid`
//   print    writes with console.log and console.error, then keeps the event
//   probe    tries the environment and the network, and fails the event with
//            `invalid` and a JSON report of what it saw
//   lookup:K looks K up in table `t` (sluice:plugin/tables) and fails the
//            event with `invalid` and `lookup: <row | none | error: …>`
//   other    keeps the event

import { get } from 'sluice:plugin/tables@0.1.3';

const text = new TextDecoder();

function lookup(key) {
  try {
    const row = get('t', key);
    return row === undefined ? 'none' : row;
  } catch (e) {
    return `error: ${JSON.stringify(e.payload ?? String(e))}`;
  }
}

export function init(_settings) {}

function probe() {
  const seen = {};
  seen.process = typeof process === 'undefined' ? 'no process object' : JSON.stringify(process.env ?? {});
  seen.fetch = typeof fetch === 'undefined' ? 'no fetch' : 'fetch exists';
  return seen;
}

export function filter(batch) {
  return batch.map((event) => {
    const payload = text.decode(event.data);
    switch (payload) {
      case 'throw':
        throw new Error(`hostile-js threw on sequence number ${event.sequenceNumber}`);
      case 'invalid':
        return { tag: 'err', val: { tag: 'invalid', val: 'hostile-js says this event is invalid' } };
      case 'print':
        console.log('hostile-js writes to stdout');
        console.error('hostile-js writes to stderr');
        return { tag: 'ok', val: true };
      case 'probe':
        return { tag: 'err', val: { tag: 'invalid', val: JSON.stringify(probe()) } };
      default:
        if (payload.startsWith('lookup:')) {
          return { tag: 'err', val: { tag: 'invalid', val: `lookup: ${lookup(payload.slice(7))}` } };
        }
        return { tag: 'ok', val: true };
    }
  });
}
