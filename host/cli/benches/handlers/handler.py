"""The benchmark's workloads as Python Lambda handlers, written the way the
usual Kinesis examples are: base64-decode, json.loads, filter, transform,
json.dumps. They are the Python column of `cargo bench -p sluice-cli --bench compare`.

- `example`: the clickstream pipeline (drop bots, hash PII, split items, route);
- `light`: drop heartbeats, hash two nested fields, route by kind;
- `passthrough`: decode each record and deliver its payload as it is.

Run alone: python3 handler.py <event.json> <seconds> [<workload> [<out dir>]]
Prints {"median_s": <seconds per batch>, "counts": {destination: outputs}};
with <out dir>, also writes each destination's outputs to <out dir>/<name>.jsonl.
"""

import base64
import hashlib
import json
import sys
import time

SALT = "clickstream-2026"
ROUTES = {"purchase": ["orders", "archive"], "page_view": ["analytics", "archive"]}
DEFAULT = ["archive"]
ENVELOPE = {"archive"}


def redact(value):
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return hashlib.sha256((SALT + text).encode()).hexdigest()


def handler(event, context=None):
    out = {"orders": [], "analytics": [], "archive": []}
    for record in event["Records"]:
        k = record["kinesis"]
        payload = json.loads(base64.b64decode(k["data"]))
        # filter: drop bots
        if payload.get("bot") is True:
            continue
        # transform: hash PII, stamp arrival, expose the type, split items
        for field in ("email", "ip"):
            if field in payload:
                payload[field] = redact(payload[field])
        payload["received_at_ms"] = round(k["approximateArrivalTimestamp"] * 1000)
        attributes = {}
        if "type" in payload:
            t = payload["type"]
            attributes["event_type"] = t if isinstance(t, str) else json.dumps(t)
        items = payload.pop("items", None)
        if isinstance(items, list):
            parts = [dict(payload, item=item) for item in items]
        else:
            if items is not None:
                payload["items"] = items
            parts = [payload]
        for index, part in enumerate(parts):
            body = json.dumps(part, separators=(",", ":"), sort_keys=True)
            # route on the type
            for dest in ROUTES.get(part.get("type"), DEFAULT):
                if dest in ENVELOPE:
                    line = json.dumps(
                        {
                            "shard_id": record["eventID"].split(":")[0],
                            "sequence_number": k["sequenceNumber"],
                            "output_index": index,
                            "partition_key": k["partitionKey"],
                            "attributes": attributes,
                        },
                        separators=(",", ":"),
                    )
                    out[dest].append(line[:-1] + ',"data":' + body + "}")
                else:
                    out[dest].append(body)
    return {dest: ("\n".join(lines) + "\n" if lines else "") for dest, lines in out.items()}


LIGHT_SALT = "light-2026"
LIGHT_ROUTES = {"click": "clicks", "view": "views"}


def light(event, context=None):
    out = {"clicks": [], "views": [], "other": []}
    for record in event["Records"]:
        payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
        kind = payload.get("kind")
        if kind == "heartbeat":
            continue
        for parent, field in (("user", "email"), ("device", "ip")):
            obj = payload.get(parent)
            if isinstance(obj, dict) and field in obj:
                value = obj[field]
                text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
                obj[field] = hashlib.sha256((LIGHT_SALT + text).encode()).hexdigest()
        out[LIGHT_ROUTES.get(kind, "other")].append(json.dumps(payload, separators=(",", ":")))
    return {dest: ("\n".join(lines) + "\n" if lines else "") for dest, lines in out.items()}


def passthrough(event, context=None):
    lines = [base64.b64decode(record["kinesis"]["data"]) for record in event["Records"]]
    return {"all": (b"\n".join(lines) + b"\n" if lines else b"").decode()}


WORKLOADS = {"example": handler, "light": light, "passthrough": passthrough}


def main():
    path, seconds = sys.argv[1], float(sys.argv[2])
    workload = WORKLOADS[sys.argv[3] if len(sys.argv) > 3 else "example"]
    with open(path, "rb") as f:
        raw = f.read()

    def once():
        # The Lambda runtime parses the event JSON before calling the handler.
        return workload(json.loads(raw))

    result = once()
    times = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < seconds:
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    times.sort()
    counts = {dest: body.count("\n") for dest, body in result.items()}
    if len(sys.argv) > 4:
        for dest, body in result.items():
            with open(f"{sys.argv[4]}/{dest}.jsonl", "w") as f:
                f.write(body)
    print(json.dumps({"median_s": times[len(times) // 2], "counts": counts}))


if __name__ == "__main__":
    main()
