"""{{name}}: a Sluice `route` plugin. Sends events whose `urgent` field is
`true` to the destination named by the `urgent` setting; the others go to the
pipeline's default destination."""

import json

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import log, types


# componentize-py makes a new `WitWorld` for every call: what `init` sets up
# lives at module level, like a Lambda handler's globals.
urgent = None


class WitWorld(wit_world.WitWorld):
    def init(self, settings: str) -> None:
        """Called once with the step's settings as JSON text; `raise Err(...)` fails start-up."""
        global urgent
        urgent = json.loads(settings).get("urgent")
        if not isinstance(urgent, str):
            raise Err("missing `urgent` (a destination name)")
        log.log(log.Level.DEBUG, f"urgent events go to {urgent}")

    def route(self, batch):
        """One result per event, in order: Ok([destinations]) (`[]`: the default) or Err(failure)."""
        results = []
        for event in batch:
            try:
                payload = json.loads(event.data)
            except ValueError as e:
                results.append(Err(types.Failure_Invalid(f"payload is not JSON: {e}")))
                continue
            is_urgent = isinstance(payload, dict) and payload.get("urgent") is True
            results.append(Ok([urgent] if is_urgent else []))
        return results
