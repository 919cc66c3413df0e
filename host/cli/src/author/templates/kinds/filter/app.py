"""{{name}}: a Sluice `filter` plugin. Drops events whose `type` field equals
the `drop_type` setting; keeps the others."""

import json

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import log, types


# componentize-py makes a new `WitWorld` for every call: what `init` sets up
# lives at module level, like a Lambda handler's globals.
drop_type = None


class WitWorld(wit_world.WitWorld):
    def init(self, settings: str) -> None:
        """Called once with the step's settings as JSON text; `raise Err(...)` fails start-up."""
        global drop_type
        drop_type = json.loads(settings).get("drop_type")
        if not isinstance(drop_type, str):
            raise Err("missing `drop_type` (a string)")
        log.log(log.Level.DEBUG, f"dropping events of type {drop_type}")

    def filter(self, batch):
        """One result per event, in order: Ok(keep) or Err(failure)."""
        results = []
        for event in batch:
            try:
                payload = json.loads(event.data)
            except ValueError as e:
                results.append(Err(types.Failure_Invalid(f"payload is not JSON: {e}")))
                continue
            kind = payload.get("type") if isinstance(payload, dict) else None
            results.append(Ok(kind != drop_type))
        return results
