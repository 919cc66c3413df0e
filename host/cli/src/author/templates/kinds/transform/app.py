"""{{name}}: a Sluice `transform` plugin. Adds `"processed_by": <stamp>` to
every JSON object payload and keeps the event's attributes."""

import json

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import log, types


# componentize-py makes a new `WitWorld` for every call: what `init` sets up
# lives at module level, like a Lambda handler's globals.
stamp = None


class WitWorld(wit_world.WitWorld):
    def init(self, settings: str) -> None:
        """Called once with the step's settings as JSON text; `raise Err(...)` fails start-up."""
        global stamp
        stamp = json.loads(settings).get("stamp")
        if not isinstance(stamp, str):
            raise Err("missing `stamp` (a string)")
        log.log(log.Level.DEBUG, f"stamping events with {stamp}")

    def transform(self, batch):
        """One result per event, in order: Ok([outputs]) or Err(failure)."""
        results = []
        for event in batch:
            try:
                payload = json.loads(event.data)
            except ValueError as e:
                results.append(Err(types.Failure_Invalid(f"payload is not JSON: {e}")))
                continue
            if not isinstance(payload, dict):
                results.append(Err(types.Failure_Invalid("payload is not a JSON object")))
                continue
            payload["processed_by"] = stamp
            data = json.dumps(payload, separators=(",", ":")).encode()
            results.append(Ok([types.Output(data, None, event.attributes)]))
        return results
