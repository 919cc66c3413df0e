#!/usr/bin/env python3
"""Writes the bad-input corpus: malformed Kinesis events and bad pipeline configs.

Run with: python3 tests/corpus/make_corpus.py   (then BLESS=1 cargo test -p sluice-cli --test all corpus::)
Needs `aws-kinesis-agg` from PyPI (tests/run installs it) and the `zstd` command.

Every input here is wrong in one way: `events/` are malformed Kinesis events,
`configs/` bad pipeline configs, `sources/` well-formed events whose payloads
`[source]` cannot read (corrupt KPL aggregates, compression bombs, malformed
CloudWatch Logs data; the name's prefix says how the payloads are read, see
corpus.rs). `host/cli/tests/all/corpus.rs` runs each one and
compares the error with the committed golden file next to it
(`<name>.expected`). Add a case by adding it below (or by dropping a file in
`events/` or `configs/`), re-running this script and blessing.
"""

import base64
import json
import os
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
EVENTS = HERE / "events"
CONFIGS = HERE / "configs"
SOURCES = HERE / "sources"

SHARD = "shardId-000000000000"


def seq(i):
    return f"4959033827149025660855969253836157109592157598913658{8800 + i}"


def record(i, **override):
    """A well-formed Lambda Kinesis record; `override` replaces fields
    (`kinesis.x` for nested ones; the value `DELETE` removes the field)."""
    data = base64.b64encode(json.dumps({"type": "page_view", "n": i}).encode()).decode()
    r = {
        "eventID": f"{SHARD}:{seq(i)}",
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks",
        "awsRegion": "eu-west-1",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": f"user-{i}",
            "sequenceNumber": seq(i),
            "data": data,
            "approximateArrivalTimestamp": 1700000000.5 + i,
        },
    }
    for path, value in override.items():
        target = r
        parts = path.split(".")
        for p in parts[:-1]:
            target = target[p]
        if value is DELETE:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return r


DELETE = object()


def event_with(bad):
    """Three records; the middle one is `bad` (a dict, or raw JSON text)."""
    parts = [json.dumps(record(0)), bad if isinstance(bad, str) else json.dumps(bad), json.dumps(record(2))]
    return ('{"Records": [' + ", ".join(parts) + "]}\n").encode()


def events():
    out = {}
    good = event_with(record(1))

    # The envelope itself.
    out["empty-file"] = b""
    out["whitespace-only"] = b"  \n\t\n"
    out["not-json"] = b"Records: none\n"
    out["json-null"] = b"null\n"
    out["json-number"] = b"42\n"
    out["json-string"] = b'"Records"\n'
    out["json-array"] = b'[{"Records": []}]\n'
    out["json-true"] = b"true\n"
    out["no-records-field"] = b'{"records": []}\n'
    out["records-null"] = b'{"Records": null}\n'
    out["records-object"] = b'{"Records": {"0": {}}}\n'
    out["records-string"] = b'{"Records": "[]"}\n'
    out["records-number"] = b'{"Records": 3}\n'
    out["trailing-garbage"] = good.rstrip() + b" }\n"
    out["two-documents"] = good + good
    out["trailing-comma-in-array"] = b'{"Records": [' + json.dumps(record(0)).encode() + b",]}\n"
    out["single-quotes"] = b"{'Records': []}\n"
    out["comment-in-json"] = b'{"Records": [] // none\n}\n'
    out["utf8-bom"] = b"\xef\xbb\xbf" + good
    out["invalid-utf8-in-partition-key"] = good.replace(b'"user-1"', b'"user-\xff\xfe"')
    out["raw-newline-in-string"] = good.replace(b'"user-1"', b'"user-\n1"')
    out["nan-literal"] = event_with(json.dumps(record(1)).replace('1700000001.5', 'NaN'))
    out["duplicate-records-key"] = b'{"Records": [], "Records": []}\n'
    out["unclosed-object"] = b'{"Records": [' + json.dumps(record(0)).encode() + b"]\n"
    for n in (1, 2, 11, 13, 40, 100, 200, 300, 400, 500, len(good) - 3, len(good) - 2):
        out[f"truncated-at-{n:04}"] = good[:n]

    # One record, wrong in one field.
    fields = {
        "event-id": "eventID",
        "partition-key": "kinesis.partitionKey",
        "data": "kinesis.data",
        "sequence-number": "kinesis.sequenceNumber",
        "arrival-timestamp": "kinesis.approximateArrivalTimestamp",
    }
    values = {
        "missing": DELETE,
        "null": None,
        "number": 12345,
        "bool": True,
        "array": ["a"],
        "object": {"a": 1},
        "empty-string": "",
    }
    # Variations that are valid input: an integer timestamp, empty data
    # (Kinesis allows it) and an empty partition key (Sluice does not need one).
    VALID = {("arrival-timestamp", "number"), ("data", "empty-string"), ("partition-key", "empty-string")}
    for fname, field in fields.items():
        for vname, value in values.items():
            if (fname, vname) in VALID:
                continue
            out[f"record-{fname}-{vname}"] = event_with(record(1, **{field: value}))
    out["record-kinesis-missing"] = event_with(record(1, kinesis=DELETE))
    out["record-kinesis-null"] = event_with(record(1, kinesis=None))
    out["record-kinesis-string"] = event_with(record(1, kinesis="data"))
    out["record-kinesis-array"] = event_with(record(1, kinesis=[]))
    out["record-is-null"] = event_with("null")
    out["record-is-number"] = event_with("7")
    out["record-is-string"] = event_with('"record"')
    out["record-is-array"] = event_with("[]")
    out["record-is-empty-object"] = event_with("{}")

    # Payloads that are not base64, or too big.
    b64 = {
        "percent-signs": "%%%%",
        "one-char": "Q",
        "bad-padding": "eyJhIjoxfQ=",
        "padding-in-middle": "ey=JhIjoxfQ==",
        "url-safe-alphabet": "eyJ-IjoxfQ_-",
        "embedded-space": "eyJh Ijox fQ==",
        "embedded-newline": "eyJhIjox\nfQ==",
        "non-ascii": "eyJhIjoxfQ\u00e9=",
        "too-much-padding": "eyJhIjoxfQ====",
        "trailing-bits": "eyJhIjoxfR==",
    }
    for name, value in b64.items():
        out[f"data-base64-{name}"] = event_with(record(1, **{"kinesis.data": value}))
    big = base64.b64encode(b"x" * ((1 << 20) + 1024)).decode()
    out["data-over-1mib"] = event_with(record(1, **{"kinesis.data": big}))

    # Ids and times that are there but wrong.
    out["event-id-without-colon"] = event_with(record(1, eventID=f"{SHARD}{seq(1)}"))
    out["event-id-empty-shard"] = event_with(record(1, eventID=f":{seq(1)}"))
    out["event-id-only-colon"] = event_with(record(1, eventID=":"))
    out["arrival-negative"] = event_with(record(1, **{"kinesis.approximateArrivalTimestamp": -1.0}))
    out["arrival-string-number"] = event_with(record(1, **{"kinesis.approximateArrivalTimestamp": "1700000000"}))
    out["arrival-huge-exponent"] = event_with(json.dumps(record(1)).replace("1700000001.5", "1e400"))
    out["partition-key-lone-surrogate"] = event_with(json.dumps(record(1)).replace('"user-1"', '"user-\\ud800"'))
    out["partition-key-bad-escape"] = event_with(json.dumps(record(1)).replace('"user-1"', '"user-\\x41"'))
    out["sequence-number-lone-surrogate"] = event_with(
        json.dumps(record(1)).replace(f'"sequenceNumber": "{seq(1)}"', '"sequenceNumber": "\\udc00"')
    )

    out["sequence-number-not-digits"] = event_with(record(1, **{"kinesis.sequenceNumber": "49590338271490256608559692538361571095921575989136588801x"}))
    out["sequence-number-negative"] = event_with(record(1, **{"kinesis.sequenceNumber": "-1"}))
    out["data-base64-only-padding"] = event_with(record(1, **{"kinesis.data": "===="}))
    out["records-nested-array"] = ('{"Records": [[' + json.dumps(record(0)) + "]]}\n").encode()
    out["deeply-nested-records"] = ('{"Records": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()

    # Several bad records in one batch, and every record bad.
    out["every-record-bad"] = (
        '{"Records": ['
        + ", ".join(json.dumps(record(i, **{"kinesis.data": "%%"})) for i in range(3))
        + "]}\n"
    ).encode()
    out["bad-first-and-last"] = (
        '{"Records": ['
        + ", ".join(
            [
                json.dumps(record(0, **{"kinesis.data": "%%"})),
                json.dumps(record(1)),
                json.dumps(record(2, **{"kinesis.sequenceNumber": DELETE})),
            ]
        )
        + "]}\n"
    ).encode()
    return out


PLUGIN = "../../../target/plugins/filter_field.wasm"

GOOD_STEP = f'''[[steps]]
name = "keep"
kind = "filter"
plugin = "{PLUGIN}"
config = {{ field = "type", equals = "purchase" }}
'''
GOOD_DEST = '''[destinations.out]
type = "stdout"
'''


def configs():
    c = {}
    s, d = GOOD_STEP, GOOD_DEST
    # TOML syntax.
    c["syntax-unclosed-table-header"] = "[destinations.out\ntype = \"stdout\"\n"
    c["syntax-missing-equals"] = s + "[destinations.out]\ntype \"stdout\"\n"
    c["syntax-unterminated-string"] = s + "[destinations.out]\ntype = \"stdout\n"
    c["syntax-duplicate-key"] = s + "[destinations.out]\ntype = \"stdout\"\ntype = \"file\"\n"
    c["syntax-bare-word-value"] = s + "[destinations.out]\ntype = stdout\n"
    c["syntax-bad-escape"] = s + "[destinations.out]\ntype = \"std\\qout\"\n"
    c["syntax-unterminated-inline-table"] = s.replace('equals = "purchase" }', 'equals = "purchase"') + d
    c["syntax-duplicate-table"] = s + d + d
    c["syntax-array-of-tables-clash"] = "steps = []\n" + s + d
    c["syntax-not-toml-at-all"] = "{\"steps\": []}\n"
    # Unknown fields.
    c["unknown-top-level-field"] = s + d + "version = 2\n"
    c["unknown-step-field"] = s.replace('kind = "filter"', 'kind = "filter"\nplugins = "x.wasm"') + d
    c["unknown-destination-field"] = s + d + "fromat = \"raw\"\n"
    c["unknown-sqs-field"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\ngroup = "x"\n'
    c["unknown-routing-field"] = s + d + "[routing]\ndefualt = \"out\"\n"
    c["unknown-limits-field"] = s + "limits = { timeout = 10 }\n" + d
    # Wrong types.
    c["type-steps-is-table"] = "[steps]\nname = \"x\"\n" + d
    c["type-step-name-number"] = s.replace('name = "keep"', "name = 7") + d
    c["type-kind-unknown"] = s.replace('kind = "filter"', 'kind = "map"') + d
    c["type-kind-number"] = s.replace('kind = "filter"', "kind = 1") + d
    c["type-plugin-number"] = s.replace(f'plugin = "{PLUGIN}"', "plugin = 3") + d
    c["type-sha256-number"] = s + "sha256 = 1234\n" + d
    c["type-config-is-string"] = s.replace('config = { field = "type", equals = "purchase" }', 'config = "field=type"') + d
    c["type-limits-is-string"] = s + "limits = \"fast\"\n" + d
    c["type-timeout-is-string"] = s + "limits = { timeout_ms = \"2s\" }\n" + d
    c["type-memory-negative"] = s + "limits = { memory_bytes = -1 }\n" + d
    c["type-on-error-unknown"] = s + "on_error = \"ignore\"\n" + d
    c["type-destinations-is-array"] = "destinations = [\"out\"]\n" + s
    c["step-destinations-not-aggregate"] = s + "destinations = [\"out\"]\n" + d
    c["aggregate-without-destinations"] = s.replace('kind = "filter"', 'kind = "aggregate"') + d
    c["shadow-on-aggregate"] = s.replace('kind = "filter"', 'kind = "aggregate"') + f'destinations = ["out"]\nshadow = {{ plugin = "{PLUGIN}" }}\n' + d
    c["shadow-time-share-too-big"] = s + f'shadow = {{ plugin = "{PLUGIN}", time_share = 0.9 }}\n' + d
    c["shadow-bad-pin"] = s + f'shadow = {{ plugin = "{PLUGIN}", sha256 = "abc" }}\n' + d
    c["shadow-plugin-missing"] = s + 'shadow = { plugin = "missing.wasm" }\n' + d
    c["type-shadow-unknown-field"] = s + f'shadow = {{ plugin = "{PLUGIN}", plugins = "x" }}\n' + d
    c["type-destination-type-missing"] = s + "[destinations.out]\nformat = \"raw\"\n"
    c["type-destination-type-unknown"] = s + "[destinations.out]\ntype = \"kafka\"\n"
    c["type-file-path-number"] = s + "[destinations.out]\ntype = \"file\"\npath = 5\n"
    c["type-format-unknown"] = s + "[destinations.out]\ntype = \"stdout\"\nformat = \"csv\"\n"
    c["type-sqs-max-bytes-string"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\nmax_message_bytes = "1MB"\n'
    c["type-s3-gzip-string"] = s + '[destinations.out]\ntype = "s3"\nbucket = "b"\nkey = "{shard}/{first_seq}"\ngzip = "yes"\n'
    c["type-routing-default-number"] = s + d + "[routing]\ndefault = 1\n"
    # Missing required fields.
    c["missing-step-name"] = s.replace('name = "keep"\n', "") + d
    c["missing-step-kind"] = s.replace('kind = "filter"\n', "") + d
    c["missing-step-plugin"] = s.replace(f'plugin = "{PLUGIN}"\n', "") + d
    c["missing-sqs-queue-url"] = s + "[destinations.out]\ntype = \"sqs\"\n"
    c["missing-s3-bucket"] = s + "[destinations.out]\ntype = \"s3\"\nkey = \"{shard}/{first_seq}\"\n"
    c["missing-s3-key"] = s + "[destinations.out]\ntype = \"s3\"\nbucket = \"b\"\n"
    c["missing-file-path"] = s + "[destinations.out]\ntype = \"file\"\n"
    c["no-destinations"] = s
    c["empty-file"] = ""
    # Dangling references.
    c["dangling-routing-default"] = s + d + "[routing]\ndefault = \"archive\"\n"
    c["dangling-dead-letter"] = s + d + "[routing]\ndead_letter = \"dlq\"\n"
    c["dead-letter-policy-without-destination"] = s + "on_error = \"dead-letter\"\n" + d
    c["dangling-plugin-file"] = s.replace(PLUGIN, "plugins/missing.wasm") + d
    c["default-required-with-two-destinations"] = s + d + "[destinations.other]\ntype = \"stdout\"\n"
    # Duplicates and names.
    c["duplicate-step-names"] = s + s + d
    c["empty-step-name"] = s.replace('name = "keep"', 'name = ""') + d
    c["step-name-with-space"] = s.replace('name = "keep"', 'name = "keep it"') + d
    c["step-name-leading-underscore"] = s.replace('name = "keep"', 'name = "_keep"') + d
    c["step-name-too-long"] = s.replace('name = "keep"', f'name = "{"k" * 65}"') + d
    c["destination-name-invalid"] = s + '[destinations."out put"]\ntype = "stdout"\n'
    # Values out of range or malformed.
    c["sha256-too-short"] = s + "sha256 = \"abc123\"\n" + d
    c["sha256-not-hex"] = s + f"sha256 = \"{'zz' * 32}\"\n" + d
    c["sha256-multibyte"] = s + f"sha256 = \"{'é' * 32}\"\n" + d
    c["plugin-s3-uri-no-bucket"] = s.replace(PLUGIN, "s3:///plugins/x.wasm") + d
    c["plugin-s3-uri-no-key"] = s.replace(PLUGIN, "s3://acme-plugins") + d
    c["plugin-s3-uri-folder"] = s.replace(PLUGIN, "s3://acme-plugins/plugins/") + d
    c["plugin-empty"] = s.replace(PLUGIN, "") + d
    c["queue-url-not-a-url"] = s + "[destinations.out]\ntype = \"sqs\"\nqueue_url = \"orders\"\n"
    c["group-id-on-standard-queue"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\nmessage_group_id = "{shard}"\n'
    c["group-id-unknown-placeholder"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q.fifo"\nmessage_group_id = "{user}"\n'
    c["sqs-max-bytes-too-small"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\nmax_message_bytes = 10\n'
    c["sqs-max-bytes-too-big"] = s + '[destinations.out]\ntype = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\nmax_message_bytes = 2097152\n'
    c["s3-key-without-shard"] = s + '[destinations.out]\ntype = "s3"\nbucket = "b"\nkey = "{yyyy}/{first_seq}.jsonl"\n'
    c["s3-key-unknown-placeholder"] = s + '[destinations.out]\ntype = "s3"\nbucket = "b"\nkey = "{shard}/{first_seq}/{minute}"\n'
    c["s3-key-unclosed-brace"] = s + '[destinations.out]\ntype = "s3"\nbucket = "b"\nkey = "{shard}/{first_seq"\n'
    c["s3-bucket-with-slash"] = s + '[destinations.out]\ntype = "s3"\nbucket = "b/c"\nkey = "{shard}/{first_seq}"\n'
    c["s3-bucket-empty"] = s + '[destinations.out]\ntype = "s3"\nbucket = ""\nkey = "{shard}/{first_seq}"\n'
    c["file-path-empty"] = s + "[destinations.out]\ntype = \"file\"\npath = \"\"\n"
    # The kinds of issue 31: each one's bad tables.
    dest = lambda body: s + "[destinations.out]\n" + body
    c["kinesis-missing-stream"] = dest('type = "kinesis"\n')
    c["kinesis-stream-name-invalid"] = dest('type = "kinesis"\nstream = "clicks enriched"\n')
    c["kinesis-stream-arn-of-another-service"] = dest('type = "kinesis"\nstream = "arn:aws:sqs:eu-west-1:123456789012:stream/clicks"\n')
    c["kinesis-partition-key-unknown-placeholder"] = dest('type = "kinesis"\nstream = "clicks"\npartition_key = "{user}"\n')
    c["kinesis-explicit-hash-key-empty-attr"] = dest('type = "kinesis"\nstream = "clicks"\nexplicit_hash_key = "{attr:}"\n')
    c["kinesis-max-in-flight-zero"] = dest('type = "kinesis"\nstream = "clicks"\nmax_in_flight = 0\n')
    c["firehose-missing-delivery-stream"] = dest('type = "firehose"\n')
    c["firehose-delivery-stream-too-long"] = dest('type = "firehose"\ndelivery_stream = "' + "d" * 65 + '"\n')
    c["firehose-unknown-field"] = dest('type = "firehose"\ndelivery_stream = "lake"\nbuffer_seconds = 60\n')
    c["eventbridge-missing-source"] = dest('type = "eventbridge"\ndetail_type = "click"\n')
    c["eventbridge-bus-name-invalid"] = dest('type = "eventbridge"\nevent_bus = "my bus"\nsource = "s"\ndetail_type = "d"\n')
    c["eventbridge-detail-type-unclosed-brace"] = dest('type = "eventbridge"\nsource = "s"\ndetail_type = "{attr:kind"\n')
    c["sns-topic-arn-not-an-arn"] = dest('type = "sns"\ntopic_arn = "clicks"\n')
    c["sns-group-id-on-standard-topic"] = dest('type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:clicks"\nmessage_group_id = "{shard}"\n')
    c["sns-group-id-unknown-placeholder"] = dest('type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:clicks.fifo"\nmessage_group_id = "{user}"\n')
    c["dynamodb-missing-table"] = dest('type = "dynamodb"\n')
    c["dynamodb-table-name-too-short"] = dest('type = "dynamodb"\ntable = "ab"\n')
    c["sqs-claim-check-bucket-with-slash"] = dest('type = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1/q"\nclaim_check = { bucket = "a/b" }\n')
    c["sns-claim-check-unknown-field"] = dest('type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:clicks"\nclaim_check = { bucket = "b", path = "x/" }\n')
    c["s3-key-attr-without-name"] = dest('type = "s3"\nbucket = "b"\nkey = "{attr:}/{shard}/{first_seq}"\n')
    c["dynamodb-format-unknown"] = dest('type = "dynamodb"\ntable = "clicks"\nformat = "csv"\n')
    c["limits-timeout-zero"] = s + "limits = { timeout_ms = 0 }\n" + d
    c["limits-timeout-over-15-minutes"] = s + "limits = { timeout_ms = 900001 }\n" + d
    c["limits-memory-too-small"] = s + "limits = { memory_bytes = 1024 }\n" + d
    c["limits-outputs-zero"] = s + "limits = { max_outputs_per_event = 0 }\n" + d
    c["limits-output-bytes-zero"] = s + "limits = { max_output_bytes = 0 }\n" + d
    # `[source]` and its pre-filter patterns.
    src = lambda body: "[source]\n" + body + "\n" + s + d
    c["source-format-unknown"] = src('format = "firehose"')
    c["source-decompress-unknown"] = src('decompress = "brotli"')
    c["source-max-decompressed-zero"] = src("max_decompressed_bytes = 0")
    c["source-cloudwatch-logs-zstd"] = src('format = "cloudwatch-logs"\ndecompress = "zstd"')
    c["source-filters-not-an-array"] = src("filters = '{\"data\": {\"a\": [1]}}'")
    c["source-filter-not-json"] = src("filters = ['{data: {a: [1]}}']")
    c["source-filter-a-number"] = src("filters = [7]")
    c["source-filter-empty"] = src("filters = [{}]")
    c["source-filter-unknown-key"] = src("filters = ['{\"body\": {\"a\": [1]}}']")
    c["source-filter-data-not-an-object"] = src("filters = ['{\"data\": [\"x\"]}']")
    c["source-filter-leaf-not-an-array"] = src("filters = [{ data = { type = \"click\" } }]")
    c["source-filter-empty-array"] = src("filters = [{ data = { type = [] } }]")
    c["source-filter-unknown-operator"] = src("filters = ['{\"data\": {\"a\": [{\"regex\": \"x\"}]}}']")
    c["source-filter-wildcard"] = src("filters = ['{\"data\": {\"a\": [{\"wildcard\": \"x*\"}]}}']")
    c["source-filter-numeric-bad-operator"] = src("filters = ['{\"data\": {\"a\": [{\"numeric\": [\"!=\", 1]}]}}']")
    c["source-filter-numeric-string"] = src("filters = ['{\"data\": {\"a\": [{\"numeric\": [\">\", \"1\"]}]}}']")
    c["source-filter-exists-string"] = src("filters = ['{\"data\": {\"a\": [{\"exists\": \"yes\"}]}}']")
    c["source-filter-or-one-alternative"] = src("filters = ['{\"data\": {\"$or\": [{\"a\": [1]}]}}']")
    c["source-filter-two-operators"] = src("filters = ['{\"data\": {\"a\": [{\"prefix\": \"x\", \"suffix\": \"y\"}]}}']")
    c["metrics-namespace-reserved"] = "[metrics]\nnamespace = \"AWS/Lambda\"\n" + s + d
    c["metrics-namespace-empty"] = "[metrics]\nnamespace = \"\"\n" + s + d
    c["metrics-pipeline-empty"] = "[metrics]\npipeline = \"\"\n" + s + d
    c["metrics-unknown-key"] = "[metrics]\ndimension = \"x\"\n" + s + d
    c["source-filter-anything-but-bool"] = src("filters = ['{\"data\": {\"a\": [{\"anything-but\": true}]}}']")
    return c


def event_of(payloads):
    """A well-formed event whose records carry these payloads (bytes)."""
    records = []
    for i, data in enumerate(payloads):
        r = record(i)
        r["kinesis"]["data"] = base64.b64encode(data).decode()
        records.append(r)
    return (json.dumps({"Records": records}, indent=1) + "\n").encode()


def sources():
    import gzip
    import hashlib
    import subprocess

    from aws_kinesis_agg.aggregator import RecordAggregator

    magic = bytes([0xF3, 0x89, 0x9A, 0xC2])
    good = json.dumps({"type": "page_view", "n": 0}).encode()

    def gz(data):
        return gzip.compress(data, mtime=0)

    def zstd(data):
        return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, capture_output=True, check=True).stdout

    def aggregate(n, payload=None):
        agg = RecordAggregator()
        for i in range(n):
            agg.add_user_record(f"user-{i}", payload or json.dumps({"user": i}).encode())
        return agg.clear_and_get().get_contents()[2]

    def kpl(protobuf):
        """An aggregate of these protobuf bytes, with a correct MD5 trailer."""
        return magic + protobuf + hashlib.md5(protobuf).digest()

    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(tag, wire, body):
        key = varint(tag << 3 | wire)
        return key + (varint(len(body)) + body if wire == 2 else body)

    def user_record(pk_index, data, ehk_index=None):
        body = field(1, 0, varint(pk_index))
        if ehk_index is not None:
            body += field(2, 0, varint(ehk_index))
        return field(3, 2, body + field(3, 2, data))

    five = aggregate(5)
    bomb = b"\0" * (9 << 20)
    cwl = lambda doc: gz(json.dumps(doc).encode())
    data_message = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/orders",
        "logStream": "2026/12/02/[$LATEST]abc",
        "subscriptionFilters": ["all"],
        "logEvents": [{"id": "1", "timestamp": 1700000000000, "message": "ok"}],
    }

    def cwl_with(**change):
        doc = dict(data_message)
        for k, v in change.items():
            if v is DELETE:
                doc.pop(k)
            else:
                doc[k] = v
        return cwl(doc)

    out = {}
    # KPL aggregates (read as the default `[source]`: deaggregate = true).
    out["kpl-md5-flipped"] = [good, five[:-1] + bytes([five[-1] ^ 1]), good]
    out["kpl-truncated-protobuf"] = [good, kpl(five[4:-16][:-7]), good]
    out["kpl-magic-only"] = [good, magic, good]
    out["kpl-shorter-than-trailer"] = [good, magic + b"0123456789", good]
    out["kpl-garbage-protobuf"] = [good, kpl(b"\xff\xff\xff\xff\xff\xff"), good]
    out["kpl-partition-key-index-out-of-range"] = [good, kpl(field(1, 2, b"user-0") + user_record(5, good)), good]
    out["kpl-hash-key-index-out-of-range"] = [good, kpl(field(1, 2, b"user-0") + user_record(0, good, ehk_index=3)), good]
    out["kpl-no-partition-key-table"] = [good, kpl(user_record(0, good)), good]
    out["kpl-wrong-wire-type"] = [good, kpl(field(3, 0, varint(7))), good]
    # gzip (`decompress = "gzip"`).
    out["gzip-bomb"] = [gz(good), gz(bomb), gz(good)]
    out["gzip-truncated"] = [gz(good), gz(good)[:15], gz(good)]
    out["gzip-not-gzip"] = [gz(good), good, gz(good)]
    out["gzip-bad-crc"] = [gz(good), gz(good)[:-8] + b"\0\0\0\0" + gz(good)[-4:], gz(good)]
    out["gzip-empty-payload"] = [gz(good), b"", gz(good)]
    # zstd (`decompress = "zstd"`).
    out["zstd-bomb"] = [zstd(good), zstd(bomb), zstd(good)]
    out["zstd-truncated"] = [zstd(good), zstd(good)[:10], zstd(good)]
    out["zstd-not-zstd"] = [zstd(good), good, zstd(good)]
    # `decompress = "auto"`: by magic bytes, inside aggregates too.
    out["auto-gzip-truncated"] = [good, gz(good)[:12], good]
    out["auto-zstd-bomb"] = [good, zstd(bomb), good]
    out["auto-bomb-inside-an-aggregate"] = [good, aggregate(3, payload=gz(bomb)), good]
    # CloudWatch Logs subscriptions (`format = "cloudwatch-logs"`).
    out["cwl-not-gzip"] = [cwl(data_message), json.dumps(data_message).encode(), cwl(data_message)]
    out["cwl-malformed-json"] = [cwl(data_message), gz(b'{"messageType": "DATA_MESSAGE", "logEvents": [{'), cwl(data_message)]
    out["cwl-not-an-object"] = [cwl(data_message), gz(b"[1, 2, 3]"), cwl(data_message)]
    out["cwl-unknown-message-type"] = [cwl(data_message), cwl_with(messageType="HEALTH"), cwl(data_message)]
    out["cwl-message-type-missing"] = [cwl(data_message), cwl_with(messageType=DELETE), cwl(data_message)]
    out["cwl-log-events-not-an-array"] = [cwl(data_message), cwl_with(logEvents={"id": "1"}), cwl(data_message)]
    out["cwl-log-event-without-message"] = [cwl(data_message), cwl_with(logEvents=[{"id": "1", "timestamp": 1}]), cwl(data_message)]
    out["cwl-timestamp-a-string"] = [cwl(data_message), cwl_with(logEvents=[{"id": "1", "timestamp": "noon", "message": "m"}]), cwl(data_message)]
    out["cwl-bomb"] = [cwl(data_message), gz(bomb), cwl(data_message)]
    return {name: event_of(payloads) for name, payloads in out.items()}


def main():
    cases = ((EVENTS, events(), ".json"), (CONFIGS, configs(), ".toml"), (SOURCES, sources(), ".json"))
    for folder, cases, suffix in cases:
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in cases.items():
            data = body if isinstance(body, bytes) else body.encode()
            (folder / f"{name}{suffix}").write_bytes(data)
        print(f"{folder.relative_to(HERE.parent.parent)}: {len(cases)} cases")


if __name__ == "__main__":
    main()
