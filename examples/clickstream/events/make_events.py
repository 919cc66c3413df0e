"""Writes Kinesis events in the exact shape Lambda delivers, for the examples and fixtures.

Run with: python3 examples/clickstream/events/make_events.py
"""
import base64, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/clickstream"
BASE_SEQ = 49590338271490256608559692538361571095921575989136588800
T0 = 1795334400.0  # 2026-11-22T08:00:00Z


def record(payload, shard=0, n=0, key=None, raw=None):
    seq = str(BASE_SEQ + shard * 10**6 + n)
    data = raw if raw is not None else base64.b64encode(
        (payload if isinstance(payload, (bytes, bytearray)) else json.dumps(payload, separators=(",", ":")).encode())
    ).decode()
    shard_id = f"shardId-{shard:012d}"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key or (payload.get("user_id", "anon") if isinstance(payload, dict) else "anon"),
            "sequenceNumber": seq,
            "data": data,
            "approximateArrivalTimestamp": T0 + shard * 60 + n * 0.25,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice-clickstream",
        "awsRegion": "eu-west-1",
        "eventSourceARN": ARN,
    }


def page_view(user, url, bot=False, **extra):
    return {"type": "page_view", "user_id": user, "email": f"{user}@example.com", "ip": "203.0.113.7",
            "url": url, "user_agent": "Googlebot/2.1" if bot else "Mozilla/5.0", "bot": bot, **extra}


def purchase(user, order, items):
    return {"type": "purchase", "user_id": user, "email": f"{user}@example.com", "ip": "198.51.100.23",
            "order_id": order, "currency": "EUR", "items": items}


def write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"Records": records}, f, indent=2)
        f.write("\n")


def main():
    ex = os.path.dirname(HERE)
    tests = os.path.join(ex, "tests")
    example = [
        (page_view("u-1001", "/"), 0, 0),
        (page_view("u-1001", "/products/42"), 0, 1),
        (page_view("crawler", "/robots.txt", bot=True), 0, 2),
        (purchase("u-1001", "o-5001", [{"sku": "SKU-42", "qty": 1, "price_cents": 1999},
                                       {"sku": "SKU-7", "qty": 2, "price_cents": 450}]), 0, 3),
        (page_view("u-2002", "/cart"), 1, 0),
        ({"type": "signup", "user_id": "u-3003", "email": "u-3003@example.com", "ip": "192.0.2.1"}, 1, 1),
        (purchase("u-2002", "o-5002", [{"sku": "SKU-9", "qty": 1, "price_cents": 12900}]), 1, 2),
        (page_view("crawler", "/sitemap.xml", bot=True), 1, 3),
    ]
    write(os.path.join(HERE, "example-kinesis-event.json"), [record(*r) for r in example])
    # The same payloads as JSON Lines, for `sluice put` (the README's local loop).
    with open(os.path.join(HERE, "clicks.jsonl"), "w") as f:
        for payload, _, _ in example:
            f.write(json.dumps(payload, separators=(",", ":")) + "\n")
    write(os.path.join(tests, "page-views", "event.json"), [
        record(page_view("u-1", "/"), 0, 0), record(page_view("u-2", "/about"), 0, 1),
        record(page_view("u-1", "/pricing"), 0, 2)])
    write(os.path.join(tests, "purchase-split-into-items", "event.json"), [
        record(purchase("u-9", "o-1", [{"sku": "A", "qty": 1, "price_cents": 100},
                                       {"sku": "B", "qty": 3, "price_cents": 250},
                                       {"sku": "C", "qty": 1, "price_cents": 999}]), 0, 0),
        record(purchase("u-9", "o-2", []), 0, 1)])
    write(os.path.join(tests, "bots-dropped", "event.json"), [
        record(page_view("crawler", "/", bot=True), 0, 0), record(page_view("u-5", "/"), 0, 1),
        record({"type": "page_view", "user_id": "u-6", "url": "/no-bot-field"}, 0, 2),
        record(page_view("crawler", "/a", bot=True), 0, 3)])
    write(os.path.join(tests, "not-json-payload", "event.json"), [
        record(page_view("u-1", "/"), 0, 0), record(b"\x00\xffnot json at all", 0, 1, key="k-1"),
        record(page_view("u-1", "/next"), 0, 2)])
    write(os.path.join(tests, "invalid-base64", "event.json"), [
        record(page_view("u-1", "/"), 0, 0), record(None, 0, 1, key="k-1", raw="%%% not base64 %%%"),
        record(page_view("u-1", "/next"), 0, 2)])
    write(os.path.join(tests, "empty-batch", "event.json"), [])
    write(os.path.join(tests, "two-shards-keep-lineage", "event.json"), [
        record(page_view("u-1", "/a"), 0, 0), record(page_view("u-2", "/b"), 3, 0),
        record(purchase("u-2", "o-9", [{"sku": "Z", "qty": 1, "price_cents": 5}]), 3, 1),
        record(page_view("u-1", "/c"), 0, 1)])
    write(os.path.join(tests, "unknown-destination", "event.json"), [
        record(page_view("u-1", "/"), 0, 0), record(purchase("u-1", "o-1", [{"sku": "A", "qty": 1, "price_cents": 1}]), 0, 1)])
    write(os.path.join(tests, "payload-not-an-object", "event.json"), [
        record([1, 2, 3], 0, 0, key="k"), record("just a string", 0, 1, key="k"), record(page_view("u-1", "/"), 0, 2)])
    os.makedirs(os.path.join(tests, "malformed-envelope"), exist_ok=True)
    with open(os.path.join(tests, "malformed-envelope", "event.json"), "w") as f:
        f.write('{"Records": [{"kinesis": {"data": "e30="}}, \n')


if __name__ == "__main__":
    sys.exit(main())
