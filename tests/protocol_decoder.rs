//! The decoder accepts exactly the protocol: a seeded property test generates valid messages,
//! mutates them (fields dropped or retyped, arrays for objects, empty strings, huge, negative
//! and fractional numbers, unknown fields, deep nesting, another app) and checks, case by case,
//! that `Message::decode` accepts a body exactly when `docs/protocol.schema.json` (validated by
//! the `jsonschema` crate) and the protocol's rules beyond the schema (endpoints and write
//! dependencies belong to the message's app; at most 128 levels of nesting) accept it, and
//! that a rejection names the mutated field. Then a sample of rejected bodies is published raw
//! to the real RabbitMQ: each is dead-lettered with its error.
//!
//! The seed is fixed (`PROMISCUOUS_PROPTEST_SEED` overrides it, a number); a failure prints the
//! case, shrunk.

use std::path::Path;
use std::time::Duration;

use jsonschema::Validator;
use promiscuous::{DecodeError, Message};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Map, Value, json};

mod common;

const MAX_SAFE: u64 = (1 << 53) - 1;

fn validator() -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("the protocol schema compiles")
}

fn runner(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("PROMISCUOUS_PROPTEST_SEED")
        .ok()
        .map(|s| s.parse().expect("PROMISCUOUS_PROPTEST_SEED is a number"))
        .unwrap_or(20_261_201);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    eprintln!("protocol_decoder: seed {seed}, {cases} cases");
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

// ---------- valid messages ----------

const APPS: [&str; 3] = ["crowdtap", "shop", "a-b_9"];

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,7}"
}

/// Any JSON value, a few levels deep (attributes, change values, unknown fields).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn version() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 1u64..20, 1 => 1..=MAX_SAFE, 1 => Just(MAX_SAFE)]
}

fn instance_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (0i64..1000).prop_map(Value::from),
        "[a-z0-9/ -]{1,10}".prop_map(Value::from),
    ]
}

fn key_of(endpoint: &str, id: &Value) -> String {
    match id {
        Value::String(s) => format!("{endpoint}/{s}"),
        other => format!("{endpoint}/{other}"),
    }
}

fn with_unknown(mut object: Map<String, Value>, extra: Option<(String, Value)>) -> Value {
    if let Some((k, v)) = extra {
        object.entry(format!("x_{k}")).or_insert(v);
    }
    Value::Object(object)
}

fn operation(app: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(name(), 1..3),
        prop::collection::vec("[A-Z][a-zA-Z]{0,8}", 1..3),
        instance_id(),
        0..3u8,
        version(),
        prop::collection::btree_map(name(), any_json(), 0..4),
        any::<bool>(),
        prop::option::of(prop::collection::btree_map(
            name(),
            (any_json(), any_json()),
            0..3,
        )),
        prop::option::of(any::<bool>()),
        prop::option::of((name(), any_json())),
    )
        .prop_map(
            move |(
                model,
                types,
                id,
                kind,
                version,
                attributes,
                with_attrs,
                changes,
                sync,
                extra,
            )| {
                let endpoint = format!("{app}/{}", model.join("/"));
                let kind = ["create", "update", "destroy"][kind as usize];
                let mut op = Map::new();
                op.insert("endpoint".into(), endpoint.into());
                op.insert("types".into(), json!(types));
                op.insert("id".into(), id);
                op.insert("operation".into(), kind.into());
                op.insert("version".into(), version.into());
                if kind != "destroy" || with_attrs {
                    op.insert(
                        "attributes".into(),
                        Value::Object(attributes.into_iter().collect()),
                    );
                }
                if let Some(changes) = changes {
                    let changes: Map<String, Value> = changes
                        .into_iter()
                        .map(|(k, (before, after))| (k, json!({"before": before, "after": after})))
                        .collect();
                    op.insert("changes".into(), Value::Object(changes));
                }
                if let Some(sync) = sync {
                    op.insert("sync".into(), sync.into());
                }
                with_unknown(op, extra)
            },
        )
}

fn dependency(app: Option<&'static str>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&APPS[..]),
        name(),
        instance_id(),
        version(),
        prop::option::of((name(), any_json())),
    )
        .prop_map(move |(other, model, id, version, extra)| {
            let endpoint = format!("{}/{model}", app.unwrap_or(other));
            let mut dep = Map::new();
            dep.insert("key".into(), key_of(&endpoint, &id).into());
            dep.insert("version".into(), version.into());
            with_unknown(dep, extra)
        })
}

fn message() -> impl Strategy<Value = Value> {
    prop::sample::select(&APPS[..]).prop_flat_map(|app| {
        (
            "[a-f0-9-]{1,36}",
            0..=MAX_SAFE,
            "\\PC{0,10}",
            prop::option::of(prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                "[a-z0-9]{1,5}".prop_map(Value::from),
                (-1e3f64..1e3).prop_map(|f| json!(f)),
            ]),
            prop::option::of((
                prop::option::of(prop::collection::vec(dependency(None), 0..3)),
                prop::option::of(prop::collection::vec(dependency(Some(app)), 0..3)),
            )),
            prop::collection::vec(operation(app), 1..4),
            prop::option::of((name(), any_json())),
        )
            .prop_map(move |(id, timestamp, host, user, deps, ops, extra)| {
                let mut m = Map::new();
                m.insert("protocol".into(), 1.into());
                m.insert("app".into(), app.into());
                m.insert("id".into(), id.into());
                m.insert("timestamp".into(), timestamp.into());
                m.insert("host".into(), host.into());
                if let Some(user) = user {
                    m.insert("current_user_id".into(), user);
                }
                if let Some((read, write)) = deps {
                    let mut d = Map::new();
                    if let Some(read) = read {
                        d.insert("read".into(), read.into());
                    }
                    if let Some(write) = write {
                        d.insert("write".into(), write.into());
                    }
                    m.insert("dependencies".into(), Value::Object(d));
                }
                m.insert("operations".into(), ops.into());
                with_unknown(m, extra)
            })
    })
}

// ---------- mutations ----------

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path as the decoder names it: `operations[0].changes.name.before`.
fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn paths(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(Seg::Key(k.clone()));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(value, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

/// Values that break fields: wrong types, empty, huge, negative, fractional, deep.
fn weird() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1.0)),
        Just(json!(2)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(MAX_SAFE)),
        Just(json!(MAX_SAFE + 1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(9_223_372_036_854_775_808.0f64)),
        Just(json!(-9_223_372_036_854_775_808.0f64)),
        Just(json!("")),
        Just(json!("1")),
        Just(json!("x")),
        Just(json!("a/b")),
        Just(json!("crowdtap/user/7")),
        Just(json!([])),
        Just(json!([1, "a"])),
        Just(json!({})),
        Just(json!({"key": "shop/x/1", "version": 1})),
        (110usize..140).prop_map(|depth| (0..depth).fold(json!(1), |v, _| json!([v]))),
        "\\PC{1,3}".prop_map(Value::from),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the field (or array item) at the picked path.
    Drop(Index),
    /// Put a weird value at the picked path.
    Replace(Index, Value),
    /// An object becomes the array of its values (serde's derive accepted that).
    ToArray(Index, Value),
    /// An unknown field in the picked object: must be ignored.
    Unknown(Index, String, Value),
    /// The message claims another app.
    App(&'static str),
    /// An integer written as a float (`1` → `1.0`): the same number.
    Float(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Drop),
        4 => (any::<Index>(), weird()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<Index>(), weird()).prop_map(|(i, v)| Mutation::ToArray(i, v)),
        1 => (any::<Index>(), name(), weird()).prop_map(|(i, k, v)| Mutation::Unknown(i, k, v)),
        1 => prop::sample::select(&APPS[..]).prop_map(Mutation::App),
        1 => any::<Index>().prop_map(Mutation::Float),
    ]
}

/// Applies `m`; returns the path whose field the decoder must name, when that is certain.
fn apply(value: &mut Value, m: &Mutation) -> Option<String> {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match m {
        Mutation::Drop(i) => {
            let path = pick(i);
            let (last, parent) = path.split_last()?;
            match (node_mut(value, parent), last) {
                (Value::Object(map), Seg::Key(k)) => {
                    map.remove(k);
                    Some(path_text(&path))
                }
                (Value::Array(items), Seg::Index(i)) => {
                    items.remove(*i);
                    None
                }
                _ => None,
            }
        }
        Mutation::Replace(i, v) => {
            let path = pick(i);
            *node_mut(value, &path) = v.clone();
            Some(path_text(&path))
        }
        Mutation::ToArray(i, v) => {
            let path = pick(i);
            let node = node_mut(value, &path);
            *node = match node.take() {
                Value::Object(map) => Value::Array(map.into_iter().map(|(_, v)| v).collect()),
                _ => v.clone(),
            };
            Some(path_text(&path))
        }
        Mutation::Unknown(i, k, v) => {
            let path = pick(i);
            if let Value::Object(map) = node_mut(value, &path) {
                map.entry(format!("x_{k}")).or_insert(v.clone());
            }
            None
        }
        Mutation::App(app) => {
            let root = value.as_object_mut()?;
            root.insert("app".into(), json!(app));
            Some("app".into())
        }
        Mutation::Float(i) => {
            let path = pick(i);
            let node = node_mut(value, &path);
            if let Some(n) = node.as_i64() {
                *node = json!(n as f64);
            } else if let Some(n) = node.as_u64() {
                *node = json!(n as f64);
            }
            None
        }
    }
}

// ---------- the oracle ----------

/// Whether the protocol accepts `text`: parses within the nesting limit, valid against the
/// schema, and follows the ownership rules.
fn protocol_accepts(validator: &Validator, text: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    if !validator.is_valid(&value) {
        return false;
    }
    let app = value["app"].as_str().unwrap();
    let owned = |s: &str| s.split('/').next() == Some(app);
    let ops_owned = value["operations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|op| owned(op["endpoint"].as_str().unwrap()));
    let writes_owned = value["dependencies"]["write"]
        .as_array()
        .is_none_or(|w| w.iter().all(|d| owned(d["key"].as_str().unwrap())));
    ops_owned && writes_owned
}

fn check(validator: &Validator, value: &Value, named: Option<&str>) -> Result<(), TestCaseError> {
    let text = value.to_string();
    let expected = protocol_accepts(validator, &text);
    let decoded = Message::decode(text.as_bytes());
    match (&decoded, expected) {
        (Ok(m), true) => {
            let again = Message::decode(&m.encode());
            prop_assert_eq!(again.as_ref(), Ok(m), "re-encoding changes the message");
        }
        (Err(e), false) => {
            if let (Some(path), DecodeError::Invalid { .. } | DecodeError::Protocol { .. }) =
                (named, e)
            {
                prop_assert!(
                    e.to_string().contains(path),
                    "the error does not name the mutated field {path}: {e}\n{text}"
                );
            }
        }
        (Ok(_), false) => {
            let errors: Vec<String> = serde_json::from_str::<Value>(&text)
                .map(|v| validator.iter_errors(&v).map(|e| e.to_string()).collect())
                .unwrap_or_else(|e| vec![e.to_string()]);
            return Err(TestCaseError::fail(format!(
                "decoded a body the protocol rejects ({errors:?}):\n{text}"
            )));
        }
        (Err(e), true) => {
            return Err(TestCaseError::fail(format!(
                "rejected a body the protocol accepts: {e}\n{text}"
            )));
        }
    }
    Ok(())
}

#[test]
fn generated_messages_are_valid_and_decode() {
    let validator = validator();
    runner(500)
        .run(&message(), |value| {
            prop_assert!(protocol_accepts(&validator, &value.to_string()), "{value}");
            check(&validator, &value, None)
        })
        .unwrap();
}

#[test]
fn the_decoder_and_the_schema_agree_on_mutated_messages() {
    let validator = validator();
    let cases = (message(), prop::collection::vec(mutation(), 1..4));
    runner(3_000)
        .run(&cases, |(mut value, mutations)| {
            let mut named = None;
            for m in &mutations {
                named = apply(&mut value, m);
            }
            let named = if mutations.len() == 1 { named } else { None };
            check(&validator, &value, named.as_deref())
        })
        .unwrap();
}

#[test]
fn found_in_the_field() {
    // What an independent client showed the old decoder accepted (or refused).
    let valid = json!({
        "protocol": 1, "app": "crowdtap", "id": "m1", "timestamp": 1, "host": "h",
        "operations": [{"endpoint": "crowdtap/user", "types": ["User"], "id": 1,
                        "operation": "create", "version": 1, "attributes": {"name": "Yoda"}}]
    });
    let rejected = |v: Value| {
        Message::decode(v.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    };
    let as_array = json!([99, "crowdtap", "m1", 1, "h", null, {}, []]);
    assert!(rejected(as_array).contains("JSON object"));
    let mut v = valid.clone();
    v["operations"][0] = json!(["crowdtap/user", ["User"], 1, "create", 1, {"name": "Yoda"}]);
    assert!(rejected(v).contains("operations[0]: must be an object"));
    let mut v = valid.clone();
    v["app"] = json!("shop");
    assert!(rejected(v).contains("not an endpoint of the message's app \"shop\""));
    for (field, bad) in [("id", json!("")), ("timestamp", json!(-5))] {
        let mut v = valid.clone();
        v[field] = bad;
        assert!(rejected(v).contains(&format!("{field}: ")));
    }
    let mut v = valid.clone();
    v["operations"][0]["types"] = json!([""]);
    assert!(rejected(v).contains("operations[0].types[0]: is empty"));
    let mut v = valid.clone();
    v["protocol"] = json!(1.0);
    v["operations"][0]["id"] = json!(7.0);
    let m = Message::decode(v.to_string().as_bytes()).unwrap();
    assert_eq!(m.operations[0].key(), "crowdtap/user/7");
}

/// A sample of rejected bodies, published raw to RabbitMQ by an independent client: each is
/// dead-lettered (acknowledged, not blocking) with an error naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_bodies_are_dead_lettered_with_their_error() {
    use common::servers;
    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use promiscuous::Subscriber;

    let Some(s) = servers::servers("rejected_bodies_are_dead_lettered_with_their_error") else {
        return;
    };
    let validator = validator();
    // Rejected bodies with the field their single mutation broke.
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut runner = runner(2_000);
    let cases = (message(), mutation());
    while bodies.len() < 40 {
        let (mut value, m) = cases.new_tree(&mut runner).unwrap().current();
        if let Some(path) = apply(&mut value, &m) {
            let text = value.to_string();
            if !protocol_accepts(&validator, &text)
                && matches!(
                    Message::decode(text.as_bytes()),
                    Err(DecodeError::Invalid { .. })
                )
            {
                bodies.push((text, path));
            }
        }
    }

    let name = servers::unique("promiscuous-decoder");
    let db = common::subscriber_db().await;
    let sub = Subscriber::new(name.clone(), db, servers::rabbit(&s, &name))
        .subscribe::<common::member::Model>()
        .build()
        .await
        .unwrap()
        .start();

    let connection = Connection::connect(&s.amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    for (body, _) in &bodies {
        channel
            .basic_publish(
                name.as_str().into(),
                "crowdtap".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let letters = sub.service().applier().dead_letters().await.unwrap();
        if letters.len() >= bodies.len() {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} rejected bodies dead-lettered",
            letters.len(),
            bodies.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (body, path) in &bodies {
        let letter = letters
            .iter()
            .find(|l| l.payload == body.as_bytes())
            .unwrap_or_else(|| panic!("no dead letter for {body}"));
        assert!(
            letter.error.contains(path.as_str()),
            "the dead letter's error does not name {path}: {}",
            letter.error
        );
        assert_eq!(letter.routing_key, "crowdtap");
    }
    let stats = sub.shutdown().await.unwrap();
    assert_eq!(stats.dead_lettered, bodies.len(), "{stats:?}");
    connection.close(0, "done".into()).await.unwrap();
    servers::cleanup(&s, &name).await;
}
