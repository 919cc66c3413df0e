"""Writes a Lambda Kinesis event of KPL aggregates made by the real producer.

Usage: python3 tests/kpl/aggregate.py <event.json> <spec> [<spec> ...]

Each <spec> is one Kinesis record:
    <n>          an aggregate of n user records (the `aws-kinesis-agg` package
                 from PyPI, the KPL's aggregation format)
    full         user records of 10 KiB until the aggregator says the
                 aggregate is full (just under the 1 MB Kinesis record limit)
    corrupt:<n>  an aggregate of n user records whose last MD5 byte is flipped
    hashed:<n>   an aggregate of n user records, each with an explicit hash key

User record i of record k is the JSON {"record": k, "user": i}, with
partition key "user-<i mod 7>"; record k has sequence number "<k+1>00".
"""

import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator


def aggregate(k: int, n: int, hashed: bool = False) -> bytes:
    agg = RecordAggregator()
    for i in range(n):
        data = json.dumps({"record": k, "user": i}).encode()
        ehk = str(2**100 + i) if hashed else None
        full = agg.add_user_record(f"user-{i % 7}", data, explicit_hash_key=ehk)
        assert full is None, "the aggregate filled up early"
    return agg.clear_and_get().get_contents()[2]


def aggregate_full(k: int) -> bytes:
    agg = RecordAggregator()
    i = 0
    while True:
        data = json.dumps({"record": k, "user": i, "pad": "x" * 10240}).encode()
        full = agg.add_user_record(f"user-{i % 7}", data)
        if full is not None:
            return full.get_contents()[2]
        i += 1


def main() -> None:
    out, specs = sys.argv[1], sys.argv[2:]
    records = []
    for k, spec in enumerate(specs):
        if spec == "full":
            data = aggregate_full(k)
        elif spec.startswith("corrupt:"):
            data = bytearray(aggregate(k, int(spec.split(":")[1])))
            data[-1] ^= 1
            data = bytes(data)
        elif spec.startswith("hashed:"):
            data = aggregate(k, int(spec.split(":")[1]), hashed=True)
        else:
            data = aggregate(k, int(spec))
        seq = f"{k + 1}00"
        records.append(
            {
                "eventID": f"shardId-000000000000:{seq}",
                "eventSource": "aws:kinesis",
                "kinesis": {
                    "partitionKey": "aggregate",
                    "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1700000000.0 + k,
                    "kinesisSchemaVersion": "1.0",
                },
            }
        )
    with open(out, "w") as f:
        json.dump({"Records": records}, f)


if __name__ == "__main__":
    main()
