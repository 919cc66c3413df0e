"""A `filter` plugin that misbehaves on purpose, for host/cli/tests/all/languages.rs.

What it does depends on the event's payload (plain text):

    raise   raises an exception (not an `Err`): the call traps
    invalid fails the event with `invalid`
    print   prints to stdout and stderr, then keeps the event
    probe   tries the host's environment, files and network, and fails the
            event with `invalid` and a JSON report of what it saw
    sleep   sleeps for 10 minutes (`time.sleep`), then keeps the event
    entropy fails the event with `invalid` and a reason of what it reads from
            the wall clock (`time.time_ns()`) and the randomness
            (`os.urandom(16)`), for the `deterministic` option's tests
    lookup:K looks K up in table `t` (sluice:plugin/tables) and fails the
            event with `invalid` and `lookup: <row | none | error: ...>`
    other   keeps the event
"""

import json
import os
import socket
import sys
import time

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import tables, types


def probe() -> dict:
    seen = {"environ": dict(os.environ)}
    for path in ["/etc/passwd", "/", ".", "/proc/self/environ"]:
        try:
            with open(path, "rb") as f:
                seen[path] = f"read {len(f.read())} bytes"
        except OSError as e:
            seen[path] = f"{type(e).__name__}: {e}"
    try:
        seen["listdir"] = os.listdir("/")
    except OSError as e:
        seen["listdir"] = f"{type(e).__name__}: {e}"
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 9))
        seen["socket"] = "connected"
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        seen["socket"] = f"{type(e).__name__}: {e}"
    return seen


def lookup(key: str) -> str:
    try:
        row = tables.get("t", key)
    except Err as e:
        return f"error: {e.value}"
    return "none" if row is None else row


class WitWorld(wit_world.WitWorld):
    def init(self, settings: str) -> None:
        pass

    def filter(self, batch):
        results = []
        for event in batch:
            text = bytes(event.data).decode(errors="replace")
            if text == "raise":
                raise RuntimeError(f"hostile-py raised on sequence number {event.sequence_number}")
            if text == "invalid":
                results.append(Err(types.Failure_Invalid("hostile-py says this event is invalid")))
            elif text == "print":
                print("hostile-py writes to stdout")
                print("hostile-py writes to stderr", file=sys.stderr)
                results.append(Ok(True))
            elif text == "sleep":
                time.sleep(600)
                results.append(Ok(True))
            elif text == "entropy":
                results.append(Err(types.Failure_Invalid(f"{time.time_ns()} {os.urandom(16).hex()}")))
            elif text == "probe":
                results.append(Err(types.Failure_Invalid(json.dumps(probe()))))
            elif text.startswith("lookup:"):
                results.append(Err(types.Failure_Invalid(f"lookup: {lookup(text[7:])}")))
            else:
                results.append(Ok(True))
        return results
