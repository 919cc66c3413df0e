// The benchmark's workloads as Node.js Lambda handlers, written the way the
// usual Kinesis examples are: base64-decode, JSON.parse, filter, transform,
// JSON.stringify. They are the Node.js column of `cargo bench -p sluice-cli --bench compare`.
// The workloads are those of handler.py (example, light, passthrough).
//
// Run alone: node handler.js <event.json> <seconds> [<workload> [<out dir>]]
// Prints {"median_s": <seconds per batch>, "counts": {destination: outputs}};
// with <out dir>, also writes each destination's outputs to <out dir>/<name>.jsonl.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");

const SALT = "clickstream-2026";
const ROUTES = { purchase: ["orders", "archive"], page_view: ["analytics", "archive"] };
const DEFAULT = ["archive"];
const ENVELOPE = new Set(["archive"]);

function redact(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return crypto.createHash("sha256").update(SALT + text).digest("hex");
}

function handler(event) {
  const out = { orders: [], analytics: [], archive: [] };
  for (const record of event.Records) {
    const k = record.kinesis;
    const payload = JSON.parse(Buffer.from(k.data, "base64").toString("utf8"));
    // filter: drop bots
    if (payload.bot === true) continue;
    // transform: hash PII, stamp arrival, expose the type, split items
    for (const field of ["email", "ip"]) {
      if (field in payload) payload[field] = redact(payload[field]);
    }
    payload.received_at_ms = Math.round(k.approximateArrivalTimestamp * 1000);
    const attributes = {};
    if ("type" in payload) {
      const t = payload.type;
      attributes.event_type = typeof t === "string" ? t : JSON.stringify(t);
    }
    const items = payload.items;
    delete payload.items;
    let parts;
    if (Array.isArray(items)) {
      parts = items.map((item) => ({ ...payload, item }));
    } else {
      if (items !== undefined) payload.items = items;
      parts = [payload];
    }
    parts.forEach((part, index) => {
      const body = JSON.stringify(part);
      // route on the type
      for (const dest of ROUTES[part.type] || DEFAULT) {
        if (ENVELOPE.has(dest)) {
          const head = JSON.stringify({
            shard_id: record.eventID.split(":")[0],
            sequence_number: k.sequenceNumber,
            output_index: index,
            partition_key: k.partitionKey,
            attributes,
          });
          out[dest].push(head.slice(0, -1) + ',"data":' + body + "}");
        } else {
          out[dest].push(body);
        }
      }
    });
  }
  const result = {};
  for (const [dest, lines] of Object.entries(out)) {
    result[dest] = lines.length ? lines.join("\n") + "\n" : "";
  }
  return result;
}

const LIGHT_SALT = "light-2026";
const LIGHT_ROUTES = { click: "clicks", view: "views" };

function light(event) {
  const out = { clicks: [], views: [], other: [] };
  for (const record of event.Records) {
    const payload = JSON.parse(Buffer.from(record.kinesis.data, "base64").toString("utf8"));
    if (payload.kind === "heartbeat") continue;
    for (const [parent, field] of [["user", "email"], ["device", "ip"]]) {
      const obj = payload[parent];
      if (obj !== null && typeof obj === "object" && !Array.isArray(obj) && field in obj) {
        const value = obj[field];
        const text = typeof value === "string" ? value : JSON.stringify(value);
        obj[field] = crypto.createHash("sha256").update(LIGHT_SALT + text).digest("hex");
      }
    }
    out[LIGHT_ROUTES[payload.kind] || "other"].push(JSON.stringify(payload));
  }
  const result = {};
  for (const [dest, lines] of Object.entries(out)) {
    result[dest] = lines.length ? lines.join("\n") + "\n" : "";
  }
  return result;
}

function passthrough(event) {
  const lines = event.Records.map((r) => Buffer.from(r.kinesis.data, "base64").toString("utf8"));
  return { all: lines.length ? lines.join("\n") + "\n" : "" };
}

const WORKLOADS = { example: handler, light, passthrough };

function main() {
  const [path, seconds] = [process.argv[2], Number(process.argv[3])];
  const workload = WORKLOADS[process.argv[4] || "example"];
  const raw = fs.readFileSync(path);
  // The Lambda runtime parses the event JSON before calling the handler.
  const once = () => workload(JSON.parse(raw));
  const result = once();
  const times = [];
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  while (times.length < 5 || elapsed() < seconds) {
    const t = process.hrtime.bigint();
    once();
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  const counts = {};
  for (const [dest, body] of Object.entries(result)) counts[dest] = body.split("\n").length - 1;
  if (process.argv[5]) {
    for (const [dest, body] of Object.entries(result)) fs.writeFileSync(`${process.argv[5]}/${dest}.jsonl`, body);
  }
  console.log(JSON.stringify({ median_s: times[Math.floor(times.length / 2)], counts }));
}

main();
