//! The five destination kinds of issue 31 end to end against moto: the
//! clickstream example routed to a Kinesis stream, a Firehose delivery
//! stream (to S3), an EventBridge bus (a rule to an SQS queue), an SNS topic
//! (subscribed by an SQS queue) and a DynamoDB table, through a proxy that
//! fails entries of every batch call, each read back through the service.

use std::collections::{BTreeMap, BTreeSet};

use host::app::App;
use host::event;

use crate::support::*;

const ACCOUNT: &str = "123456789012";

/// A page view as (user, url), or a purchase item as (order, sku).
type Pair = (String, String);

/// `n` clickstream records over 7 users: every 5th a purchase of two items,
/// every 7th a bot's page view (dropped), the rest page views.
fn clicks(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let user = format!("u-{}", i % 7);
            let payload = if i % 5 == 0 {
                serde_json::json!({"type": "purchase", "user_id": user, "order_id": format!("o-{i}"),
                    "email": format!("{user}@example.com"), "currency": "EUR",
                    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]})
            } else if i % 7 == 3 {
                serde_json::json!({"type": "page_view", "user_id": "crawler", "url": format!("/p/{i}"), "bot": true})
            } else {
                serde_json::json!({"type": "page_view", "user_id": user, "url": format!("/p/{i}"), "bot": false})
            };
            (user, payload.to_string())
        })
        .collect()
}

/// Where the example routes each kind of click, and every new kind.
fn config(stream_arn: &str, topic_arn: &str) -> String {
    let text = clickstream_config(&format!(
        r#"
[destinations.next-stream]
type = "kinesis"
stream = "{stream_arn}"
max_in_flight = 2

[destinations.lake]
type = "firehose"
delivery_stream = "clicks-to-lake"
max_in_flight = 2

[destinations.bus]
type = "eventbridge"
source = "sluice.clickstream"
detail_type = "{{attr:event_type}}"
max_in_flight = 2

[destinations.topic]
type = "sns"
topic_arn = "{topic_arn}"
max_in_flight = 2

[destinations.table]
type = "dynamodb"
table = "orders"
format = "envelope"
max_in_flight = 2

[routing]
default = "lake"
"#
    ));
    text.replace(
        r#"default = ["archive"], routes = { purchase = ["orders", "archive"], page_view = ["analytics", "archive"] }"#,
        r#"default = ["lake"], routes = { purchase = ["table", "topic", "lake"], page_view = ["next-stream", "bus", "lake"] }"#,
    )
}

/// The outputs the example makes of `clicks`, computed here without Sluice:
/// (page views as (user, url), purchase items as (order, sku)).
fn expected(clicks: &[(String, String)]) -> (Vec<Pair>, BTreeSet<Pair>) {
    let mut views = Vec::new();
    let mut items = BTreeSet::new();
    for (_, payload) in clicks {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        match v["type"].as_str() {
            Some("purchase") => {
                for item in v["items"].as_array().unwrap() {
                    items.insert((
                        v["order_id"].as_str().unwrap().to_owned(),
                        item["sku"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            _ if v["bot"] == true => {}
            _ => views.push((
                v["user_id"].as_str().unwrap().to_owned(),
                v["url"].as_str().unwrap().to_owned(),
            )),
        }
    }
    (views, items)
}

fn view_of(v: &serde_json::Value) -> (String, String) {
    (
        v["user_id"].as_str().unwrap().to_owned(),
        v["url"].as_str().unwrap().to_owned(),
    )
}

fn item_of(v: &serde_json::Value) -> (String, String) {
    (
        v["order_id"].as_str().unwrap().to_owned(),
        v["item"]["sku"].as_str().unwrap().to_owned(),
    )
}

/// Sets up the stream, delivery stream, bus rule, topic and table in moto;
/// returns the stream's ARN, the topic's ARN, and the queues the rule and
/// the topic deliver to.
async fn services(aws: &host::aws::Aws) -> (String, String, String, String) {
    let shared = &aws.shared;
    let kinesis = aws_sdk_kinesis::Client::new(shared);
    kinesis
        .create_stream()
        .stream_name("clicks-enriched")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/clicks-enriched");

    create_bucket(aws, "lake").await;
    aws_sdk_firehose::Client::new(shared)
        .create_delivery_stream()
        .delivery_stream_name("clicks-to-lake")
        .extended_s3_destination_configuration(
            aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/firehose"))
                .bucket_arn("arn:aws:s3:::lake")
                .prefix("clicks/")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let bus_queue = create_queue(aws, "bus-target").await;
    let events = aws_sdk_eventbridge::Client::new(shared);
    events
        .put_rule()
        .name("page-views")
        .event_pattern(r#"{"source": ["sluice.clickstream"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("page-views")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:bus-target"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let topic_queue = create_queue(aws, "topic-target").await;
    let sns = aws_sdk_sns::Client::new(shared);
    let topic_arn = sns
        .create_topic()
        .name("clicks")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:topic-target"))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    let attribute = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    aws_sdk_dynamodb::Client::new(shared)
        .create_table()
        .table_name("orders")
        .key_schema(key("sequence_number", KeyType::Hash))
        .key_schema(key("output_index", KeyType::Range))
        .attribute_definitions(attribute("sequence_number", ScalarAttributeType::S))
        .attribute_definitions(attribute("output_index", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    (stream_arn, topic_arn, bus_queue, topic_queue)
}

/// Every record of a Kinesis stream, per shard in order: (partition key, data).
async fn stream_records(aws: &host::aws::Aws, stream: &str) -> Vec<(String, String)> {
    let kinesis = aws_sdk_kinesis::Client::new(&aws.shared);
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let r = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if r.records().is_empty() {
                break;
            }
            for rec in r.records() {
                out.push((
                    rec.partition_key().unwrap_or_default().to_owned(),
                    String::from_utf8(rec.data().as_ref().to_vec()).unwrap(),
                ));
            }
            iterator = r.next_shard_iterator;
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn the_example_reaches_all_five_new_kinds_under_faults() {
    let started = std::time::Instant::now();
    let moto = Moto::start();
    let aws = moto.aws().await;
    let (stream_arn, topic_arn, bus_queue, topic_queue) = services(&aws).await;
    eprintln!("moto set up in {:.1} s", started.elapsed().as_secs_f64());
    let proxy = ChaosProxy::start(moto.port, 50, 31).await;

    create_bucket(&aws, "config").await;
    let uri = upload_pipeline(
        &aws,
        "config",
        "pipeline.toml",
        &config(&stream_arn, &topic_arn),
    )
    .await;
    let via = host::aws::Aws::for_endpoint(&proxy.endpoint, REGION, "testing").await;
    let mut app = App::load_with(&uri, None, Some(via))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let clicks = clicks(150);
    let records: Vec<(&str, String)> = clicks
        .iter()
        .map(|(k, p)| (k.as_str(), p.clone()))
        .collect();
    // As the event source mapping does with `ReportBatchItemFailures`: a
    // batch whose records failed (an entry that failed 4 times) comes again
    // from the first failed sequence number.
    let event: serde_json::Value = serde_json::from_slice(&kinesis_event(&records)).unwrap();
    let mut from = 0;
    for invocation in 1.. {
        let mut part = event.clone();
        part["Records"] = serde_json::json!(event["Records"].as_array().unwrap()[from..]);
        let batch = event::decode(part.to_string().as_bytes(), "event.json").unwrap();
        let report = app.process(batch, None).await;
        let response = host::lambda::response(&report.outcome).unwrap();
        let Some(first) = response.batch_item_failures.first() else {
            break;
        };
        assert!(
            invocation < 4,
            "still failing after {invocation} invocations: {:?}",
            report.outcome.failures.first()
        );
        let seq = first.item_identifier.clone().unwrap();
        from = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r["kinesis"]["sequenceNumber"] == seq.as_str())
            .unwrap();
    }
    assert!(
        proxy.injected() >= 10,
        "faults injected: {}",
        proxy.injected()
    );
    let (views, items) = expected(&clicks);

    // Kinesis: every page view, with its partition key; per key, the last
    // copies in input order.
    let got = stream_records(&aws, "clicks-enriched").await;
    let mut per_key: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (key, data) in &got {
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "page_view", "only page views go to the stream");
        assert_eq!(*key, v["user_id"].as_str().unwrap());
        per_key.entry(key.clone()).or_default().push(view_of(&v));
    }
    for (key, got) in &per_key {
        let mut last: Vec<&(String, String)> = Vec::new();
        for (i, v) in got.iter().enumerate() {
            if !got[i + 1..].contains(v) {
                last.push(v);
            }
        }
        let want: Vec<&(String, String)> = views.iter().filter(|(u, _)| u == key).collect();
        assert_eq!(last, want, "stream, key {key}");
    }
    assert_eq!(per_key.values().map(Vec::len).sum::<usize>(), got.len());
    assert_eq!(
        per_key.keys().cloned().collect::<BTreeSet<_>>(),
        views.iter().map(|(u, _)| u.clone()).collect()
    );

    // EventBridge, through the rule to its queue: every page view once or
    // more, with the detail type from the output's attribute.
    let bus: BTreeSet<(String, String)> = drain(&aws, &bus_queue)
        .await
        .iter()
        .map(|m| {
            let e: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            assert_eq!(e["source"], "sluice.clickstream");
            assert_eq!(e["detail-type"], "page_view");
            view_of(&e["detail"])
        })
        .collect();
    assert_eq!(bus, views.iter().cloned().collect());

    // SNS, through the subscribed queue: every purchase item.
    let topic: BTreeSet<(String, String)> = drain(&aws, &topic_queue)
        .await
        .iter()
        .map(|m| item_of(&serde_json::from_str(&m.body).unwrap()))
        .collect();
    assert_eq!(topic, items);

    // DynamoDB: one item per purchase item, keyed by its lineage.
    let scan = aws_sdk_dynamodb::Client::new(&aws.shared)
        .scan()
        .table_name("orders")
        .send()
        .await
        .unwrap();
    let table: BTreeSet<(String, String)> = scan
        .items()
        .iter()
        .map(|item| {
            use aws_sdk_dynamodb::types::AttributeValue;
            let AttributeValue::M(data) = &item["data"] else {
                panic!("data is a map: {item:?}")
            };
            let AttributeValue::M(line) = &data["item"] else {
                panic!("item is a map: {data:?}")
            };
            let s = |v: &AttributeValue| v.as_s().unwrap().clone();
            (s(&data["order_id"]), s(&line["sku"]))
        })
        .collect();
    assert_eq!(scan.items().len(), items.len());
    assert_eq!(table, items);

    // Firehose, delivered to S3: every output, one JSON line each.
    let mut lake_views = BTreeSet::new();
    let mut lake_items = BTreeSet::new();
    for key in keys(&aws, "lake").await {
        let body = aws
            .s3
            .get_object()
            .bucket("lake")
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        for line in std::str::from_utf8(&body).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["type"] == "purchase" {
                lake_items.insert(item_of(&v));
            } else {
                lake_views.insert(view_of(&v));
            }
        }
    }
    assert_eq!(lake_items, items);
    assert_eq!(lake_views, views.iter().cloned().collect());
}

/// The example pipeline of each new kind is valid, names plugins that exist,
/// and `sluice iam` grants its destination.
#[test]
fn each_kinds_example_pipeline_is_valid() {
    let account = host::config::destination::iam::Account {
        partition: "aws",
        region: "eu-west-1",
        account: ACCOUNT,
    };
    for (kind, action) in [
        ("kinesis", "kinesis:PutRecords"),
        ("firehose", "firehose:PutRecordBatch"),
        ("eventbridge", "events:PutEvents"),
        ("sns", "sns:Publish"),
        ("dynamodb", "dynamodb:BatchWriteItem"),
    ] {
        let path = root().join(format!("examples/destinations/{kind}.toml"));
        let plan = host::config::load(&path).unwrap_or_else(|e| panic!("{kind}: {e}"));
        plan.check_local_plugins()
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(plan.destinations.len(), 1, "{kind}");
        assert_eq!(plan.destinations[0].kind.name(), kind);
        let policy = plan.iam_policy(account).to_string();
        assert!(policy.contains(action), "{kind}: {policy}");
    }
}

/// Reads every message of `queue_url` with AWS's Python extended client
/// (`amazon-sqs-extended-client`), which fetches claim-checked payloads
/// from S3; returns (SHA-256, length) of each body it hands over.
fn read_with_extended_client(moto: &Moto, queue_url: &str) -> Vec<(String, usize)> {
    let script = r#"
import hashlib, json, sys
import boto3, sqs_extended_client  # noqa: F401 (patches boto3's session)
sqs = boto3.session.Session().client("sqs")
out = []
while True:
    r = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    messages = r.get("Messages", [])
    if not messages:
        break
    for m in messages:
        body = m["Body"].encode()
        out.append([hashlib.sha256(body).hexdigest(), len(body)])
        sqs.delete_message(QueueUrl=sys.argv[1], ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, queue_url])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("python3 with amazon-sqs-extended-client (tests/run installs it)");
    assert!(
        out.status.success(),
        "the extended client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(String, usize)>>(&out.stdout).unwrap()
}

/// A 2 MiB message and a small one through `destination` (a TOML table
/// with `claim_check` into bucket `large-messages`, prefix `{prefix}`),
/// then read from `queue_url` with AWS's Python extended client: the big one
/// whole, through S3, the small one as it is.
async fn claim_check_round_trip(
    moto: &Moto,
    aws: &host::aws::Aws,
    destination: &str,
    queue_url: &str,
    object: &str,
) {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let text = format!("[source]\ndecompress = \"auto\"\n\n{destination}");
    let plan = host::config::parse(&text, &host::config::Location::File("cc.toml".into())).unwrap();
    let destinations = plan
        .destinations
        .iter()
        .map(|d| host::destination::Destination::open(d, Some(aws)).unwrap())
        .collect();
    let mut app = App::with_destinations(plan, destinations).unwrap();

    // Kinesis records are at most 1 MiB: the 2 MiB payload comes gzipped.
    let big = serde_json::json!({"type": "export", "rows": "r".repeat(2 << 20)}).to_string();
    let small = r#"{"type":"page_view"}"#.to_owned();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, big.as_bytes()).unwrap();
    let payloads = [small.as_bytes().to_vec(), gz.finish().unwrap()];
    let records: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"{{"eventID":"shardId-000000000000:{n}00","kinesis":{{"partitionKey":"k","data":"{}","sequenceNumber":"{n}00","approximateArrivalTimestamp":1.0}}}}"#,
                base64::engine::general_purpose::STANDARD.encode(p),
                n = i + 1
            )
        })
        .collect();
    let event = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let batch = event::decode(event.as_bytes(), "event.json").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert!(
        keys(aws, "large-messages")
            .await
            .contains(&object.to_owned()),
        "{object}"
    );

    let mut got = read_with_extended_client(moto, queue_url);
    got.sort_by_key(|(_, len)| *len);
    let digest = |s: &str| {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        got,
        [(digest(&small), small.len()), (digest(&big), big.len())]
    );
}

/// A 2 MiB message to a queue with `claim_check` goes through S3, and AWS's
/// Python extended client reads it back whole; a small one goes as it is.
#[tokio::test(flavor = "current_thread")]
async fn a_2_mib_message_with_claim_check_is_read_whole_by_the_extended_client() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "large-messages").await;
    let queue = create_queue(&aws, "big").await;
    let destination = format!(
        "[destinations.big]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\nclaim_check = {{ bucket = \"large-messages\", prefix = \"sqs/\" }}\n"
    );
    claim_check_round_trip(
        &moto,
        &aws,
        &destination,
        &queue,
        "sqs/shardId-000000000000/200-0-0",
    )
    .await;
}

/// The same through an SNS topic whose SQS subscription has raw message
/// delivery (how the SNS extended client's messages reach SQS readers).
#[tokio::test(flavor = "current_thread")]
async fn a_2_mib_sns_message_with_claim_check_reaches_the_extended_client() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "large-messages").await;
    let queue = create_queue(&aws, "from-topic").await;
    let sns = aws_sdk_sns::Client::new(&aws.shared);
    let topic = sns
        .create_topic()
        .name("big")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:from-topic"))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let destination = format!(
        "[destinations.big]\ntype = \"sns\"\ntopic_arn = \"{topic}\"\nclaim_check = {{ bucket = \"large-messages\", prefix = \"sns/\" }}\n"
    );
    claim_check_round_trip(
        &moto,
        &aws,
        &destination,
        &queue,
        "sns/shardId-000000000000/200-0-0",
    )
    .await;
}
