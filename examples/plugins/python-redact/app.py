"""Example `transform` plugin in Python: redacts PII fields, adds derived ones, splits arrays.

The same behaviour as the Rust `plugins/redact`, on the same WIT
(`sluice:plugin/transform`). Settings (the step's `config` table):

    fields         paths of the fields to redact (`email`, `user.ip`, `/user/ip`)
    mode           "mask" (replace with `mask`), "hash" (salted SHA-256, hex) or "remove";
                   default "mask"
    mask           the replacement text for "mask"; default "[redacted]"
    salt           the salt for "hash"; default ""
    arrival_field  if set, adds the record's Kinesis arrival time (ms since epoch) under this key
    attributes     table from attribute name to a field path: copies field values into attributes
    split          path of an array field: one output per element, with the element under
                   `item` and the array removed (an empty array emits nothing)

The payload must be a JSON object, otherwise the event fails with `invalid`.
"""

import hashlib
import json

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import log, types

SETTINGS = {"fields", "mode", "mask", "salt", "arrival_field", "attributes", "split"}
MODES = {"mask", "hash", "remove"}
MISSING = object()


class Settings:
    """The step's settings, checked once by `init`."""

    def __init__(self, s: dict):
        unknown = sorted(set(s) - SETTINGS)
        if unknown:
            raise Err(f"unknown setting `{unknown[0]}` (expected one of: {', '.join(sorted(SETTINGS))})")
        self.fields = s.get("fields", [])
        if any(f == "" for f in self.fields):
            raise Err('`fields` holds an empty path: ""')
        self.mode = s.get("mode", "mask")
        if self.mode not in MODES:
            raise Err(f"unknown `mode` {self.mode!r}: expected mask, hash or remove")
        self.mask = s.get("mask", "[redacted]")
        self.salt = s.get("salt", "").encode()
        self.arrival_field = s.get("arrival_field")
        self.attributes = sorted(s.get("attributes", {}).items())
        self.split = s.get("split")


# componentize-py makes a new `WitWorld` for every call: what `init` sets up
# lives at module level, like a Lambda handler's globals.
settings: Settings


class WitWorld(wit_world.WitWorld):
    def init(self, text: str) -> None:
        global settings
        settings = Settings(json.loads(text))
        log.log(log.Level.DEBUG, f"redacting {len(settings.fields)} fields by {settings.mode}")

    def transform(self, batch):
        return [transform(event) for event in batch]


def transform(event: types.Event):
    try:
        payload = json.loads(event.data, parse_constant=_no_constants)
    except ValueError as e:
        return Err(types.Failure_Invalid(f"payload is not the expected JSON: {e}"))
    if not isinstance(payload, dict):
        return Err(types.Failure_Invalid("payload is not a JSON object"))
    for path in settings.fields:
        redact(payload, path)
    if settings.arrival_field is not None:
        payload[settings.arrival_field] = event.arrival_ms
    attributes = list(event.attributes)
    for name, path in settings.attributes:
        value = lookup(payload, path)
        if value is not MISSING:
            attributes.append((name, value if isinstance(value, str) else to_json(value)))
    parts = split(payload, settings.split) if settings.split is not None else [payload]
    return Ok([types.Output(to_json(part).encode(), None, attributes) for part in parts])


def redact(payload, path):
    if settings.mode == "remove":
        cut = max(path.rfind("."), path.rfind("/"))
        parent, key = (lookup(payload, path[:cut]), path[cut + 1 :]) if cut >= 0 else (payload, path)
        if isinstance(parent, dict):
            parent.pop(key, None)
        return
    found = locate(payload, path)
    if found is not None:
        container, key = found
        if settings.mode == "mask":
            container[key] = settings.mask
        else:
            value = container[key]
            text = value if isinstance(value, str) else to_json(value)
            container[key] = hashlib.sha256(settings.salt + text.encode()).hexdigest()


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def to_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def segments(path: str):
    """A dotted path (`a.b`) or a JSON Pointer (`/a/b`, `~1` for `/`, `~0` for `~`)."""
    if path.startswith("/"):
        return [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    return path.split(".")


def locate(value, path):
    """The (container, key) holding the value at `path`, or None."""
    parts = segments(path)
    for i, key in enumerate(parts):
        if isinstance(value, dict) and key in value:
            container, slot = value, key
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            container, slot = value, int(key)
        else:
            return None
        if i == len(parts) - 1:
            return container, slot
        value = container[slot]
    return None


def lookup(value, path):
    """The value at `path`, or MISSING."""
    found = locate(value, path)
    return MISSING if found is None else found[0][found[1]]


def split(payload: dict, path: str):
    """One object per element of the array at `path`; the whole object if the
    field is missing or not an array."""
    if "." not in path and "/" not in path:
        if path not in payload:
            return [payload]
        items = payload.pop(path)
        restore = lambda v: payload.__setitem__(path, v)  # noqa: E731
    else:
        found = locate(payload, path)
        if found is None:
            return [payload]
        container, key = found
        items, container[key] = container[key], None
        restore = lambda v: container.__setitem__(key, v)  # noqa: E731
    if isinstance(items, list):
        return [{**payload, "item": item} for item in items]
    restore(items)
    return [payload]
