#!/usr/bin/env bash
# `sluice replay` throughput (records/s from a local archive and from a moto
# S3 on a loopback port) and the per-record cost of a shadow step, with the
# release build of `sluice`. The figures go to BENCHMARKS.md.
#
#   cargo build --release -p sluice-cli && host/cli/benches/replay-and-shadow.sh
#
# Needs python3 (and moto[server], which tests/run installs, for the S3 part).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root="$PWD"
sluice="$root/target/release/sluice"
records="${RECORDS:-100000}"
work="$(mktemp -d)"
trap 'kill "${moto_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# An archive as the s3 destination writes it: gzip envelopes, one object per
# shard and 1,000 records, and the same records as one Kinesis event.
python3 - "$work" "$records" <<'PY'
import base64, gzip, json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/archive", exist_ok=True)
lines, event = {0: [], 1: []}, []
for i in range(n):
    shard, user = i % 2, f"u-{i % 13}"
    if i % 5 == 0:
        e = {"type": "purchase", "user_id": user, "email": f"{user}@example.com",
             "items": [{"sku": f"sku-{k}", "qty": 1} for k in range(1 + i % 2)]}
    else:
        e = {"type": "page_view", "user_id": user, "url": f"/p/{i}", "ip": "10.0.0.1", "bot": i % 7 == 0}
    data, seq, arrival = json.dumps(e), str(49_000_000 + i), 1_795_334_400_000 + i
    lines[shard].append(json.dumps({"shard_id": f"shardId-00000000000{shard}", "sequence_number": seq,
        "output_index": 0, "partition_key": user, "arrival_ms": arrival, "data": e}, separators=(",", ":")))
    event.append({"eventSource": "aws:kinesis", "eventID": f"shardId-00000000000{shard}:{seq}",
        "kinesis": {"partitionKey": user, "sequenceNumber": seq, "approximateArrivalTimestamp": arrival / 1000,
                    "data": base64.b64encode(data.encode()).decode()}})
for shard, ls in lines.items():
    for k in range(0, len(ls), 1000):
        with gzip.open(f"{work}/archive/shardId-00000000000{shard}-{k:09d}.jsonl.gz", "wt") as f:
            f.write("\n".join(ls[k:k + 1000]) + "\n")
json.dump({"Records": event[:10000]}, open(f"{work}/event.json", "w"))
PY

steps="$(sed -n '/^\[\[steps\]\]/,/^\[destinations/p' examples/clickstream/pipeline.toml | sed '$d' |
  sed "s#../../target/plugins/#$root/target/plugins/#")"
destinations='
[destinations.orders]
type = "file"
path = "out/orders.jsonl"
[destinations.analytics]
type = "file"
path = "out/analytics.jsonl"
[destinations.archive]
type = "file"
path = "out/archive.jsonl"
format = "envelope"
[routing]
default = "archive"'
printf '%s\n%s\n' "$steps" "$destinations" >"$work/pipeline.toml"
printf '%s\n%s\n' "$(printf '%s\n' "$steps" | sed '/^name = "redact-pii"/,/^config/{/^config/a\
shadow = { plugin = "'"$root"'/target/plugins/redact.wasm" }
}')" "$destinations" >"$work/shadow.toml"

cd "$work"
echo "== replay from a local archive: $records records"
for _ in 1 2 3; do "$sluice" replay --from archive -c pipeline.toml --checkpoint cp.json | head -1; done

if command -v moto_server >/dev/null; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  moto_pid=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true
  for _ in $(seq 50); do curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && break; sleep 0.2; done
  python3 - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="eu-west-1")
s3.create_bucket(Bucket="archive", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
for name in sorted(os.listdir("archive")):
    s3.upload_file(f"archive/{name}", "archive", f"clicks/{name}")
PY
  echo "== replay from moto S3 (loopback): $records records"
  for _ in 1 2 3; do "$sluice" replay --from s3://archive/clicks/ -c pipeline.toml --checkpoint cp.json | head -1; done
fi

echo "== sluice run on 10,000 records, without and with a shadow on redact-pii (ran in, 5 runs each)"
for config in pipeline.toml shadow.toml; do
  printf '%s:' "$config"
  for _ in 1 2 3 4 5; do printf ' %s' "$("$sluice" run -c "$config" -e event.json | sed -n 's/.*ran in \([0-9.]*\) ms/\1/p')"; done
  echo " ms"
done
