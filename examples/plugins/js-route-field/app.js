// Example `route` plugin in JavaScript: chooses destinations from a JSON field.
//
// The same behaviour as the Rust `plugins/route-field`, on the same WIT
// (`sluice:plugin/route`). Settings (the step's `config` table):
//
//   field    path of the field to route on: `type`, `a.b` or `/a/b`
//   routes   table from field value to the destination names it goes to
//   default  destinations for any other value or a missing field
//            (default []: the pipeline's default destination)
//
// Field values that are not strings are matched by their JSON text (`true`, `42`).

import { log } from 'sluice:plugin/log@0.1.3';

const SETTINGS = new Set(['field', 'routes', 'default']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

let path = [];
let routes = new Map();
let fallback = [];

// Called once with the step's settings as JSON text; throwing fails start-up
// with the message.
export function init(settings) {
  const s = JSON.parse(settings);
  for (const key of Object.keys(s)) {
    if (!SETTINGS.has(key)) throw `unknown setting \`${key}\` (expected one of: field, routes, default)`;
  }
  if (typeof s.field !== 'string') throw 'missing `field` (a string)';
  if (typeof s.routes !== 'object' || s.routes === null) throw 'missing `routes` (a table)';
  for (const [value, to] of Object.entries(s.routes)) {
    if (!Array.isArray(to) || to.some((d) => typeof d !== 'string')) {
      throw `route for \`${value}\` must be a list of destination names`;
    }
    if (to.length === 0) throw `route for \`${value}\` lists no destination`;
    routes.set(value, to);
  }
  fallback = s.default ?? [];
  path = parsePath(s.field);
  log('debug', `routing on \`${s.field}\` with ${routes.size} routes`);
}

// One result per event, in order: the destinations, or a failure.
export function route(batch) {
  return batch.map((event) => {
    let payload;
    try {
      payload = JSON.parse(utf8.decode(event.data));
    } catch (e) {
      return { tag: 'err', val: { tag: 'invalid', val: `payload is not the expected JSON: ${e.message}` } };
    }
    const value = lookup(payload, path);
    const key = value === undefined ? undefined : typeof value === 'string' ? value : JSON.stringify(value);
    return { tag: 'ok', val: routes.get(key) ?? fallback };
  });
}

// `a.b` or a JSON Pointer `/a/b` (with `~1` for `/` and `~0` for `~`).
function parsePath(text) {
  if (text.startsWith('/')) {
    return text.slice(1).split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  }
  return text.split('.');
}

function lookup(value, segments) {
  for (const key of segments) {
    if (Array.isArray(value)) {
      value = /^\d+$/.test(key) ? value[Number(key)] : undefined;
    } else if (value !== null && typeof value === 'object' && Object.hasOwn(value, key)) {
      value = value[key];
    } else {
      return undefined;
    }
  }
  return value;
}
