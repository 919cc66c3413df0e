"""{{name}}: a Sluice `aggregate` plugin. Counts each tumbling window's events
by their `type` field (the `field` setting names another) and, when the
window closes, emits `{"window": {...}, "counts": {"<type>": n}}`."""

import json

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import log, types


# componentize-py makes a new `WitWorld` for every call: what `init` sets up
# lives at module level, like a Lambda handler's globals.
field = None


class WitWorld(wit_world.WitWorld):
    def init(self, settings: str) -> None:
        """Called once with the step's settings as JSON text; `raise Err(...)` fails start-up."""
        global field
        field = json.loads(settings).get("field")
        if not isinstance(field, str):
            raise Err("missing `field` (a string)")
        log.log(log.Level.DEBUG, f"counting events by {field}")

    def fold(self, window, state, batch):
        """Folds the batch into the window's state (JSON text, "" when the
        window starts): returns (new state, one result per event, in order)."""
        counts = json.loads(state) if state else {}
        results = []
        for event in batch:
            try:
                payload = json.loads(event.data)
            except ValueError as e:
                results.append(Err(types.Failure_Invalid(f"payload is not JSON: {e}")))
                continue
            value = payload.get(field) if isinstance(payload, dict) else None
            key = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            counts[key] = counts.get(key, 0) + 1
            results.append(Ok(None))
        return (json.dumps(counts, separators=(",", ":")), results)

    def emit(self, window, state):
        """The window closed: its outputs, made of the final state."""
        counts = json.loads(state) if state else {}
        doc = {"window": {"start": window.start, "end": window.end}, "counts": dict(sorted(counts.items()))}
        return [types.Output(json.dumps(doc, separators=(",", ":")).encode(), None, [])]
