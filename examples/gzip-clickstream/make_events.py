#!/usr/bin/env python3
"""Writes the cases' events from the clickstream example's: every other
payload gzipped (fixed mtime, so the bytes are the same on every run), and
one payload that is not JSON, which the pre-filter drops as Lambda would.

Run with: python3 examples/gzip-clickstream/make_events.py
"""

import base64
import copy
import gzip
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent / "clickstream" / "events" / "example-kinesis-event.json"


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def write(case, event):
    path = HERE / "tests" / case / "event.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(event, indent=2) + "\n")


def main():
    event = json.loads(SOURCE.read_text())
    mixed = copy.deepcopy(event)
    for i, r in enumerate(mixed["Records"]):
        if i % 2 == 0:
            data = base64.b64decode(r["kinesis"]["data"])
            r["kinesis"]["data"] = base64.b64encode(gz(data)).decode()
    write("gzip-and-plain", mixed)

    not_json = copy.deepcopy(event)
    not_json["Records"] = not_json["Records"][:2]
    r = not_json["Records"][1]
    r["kinesis"]["data"] = base64.b64encode(gz(b"GET /health 200")).decode()
    write("not-json-dropped", not_json)


if __name__ == "__main__":
    main()
