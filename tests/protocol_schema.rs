//! The wire protocol's documentation, its JSON Schema and the real publisher agree:
//! the example messages of `docs/PROTOCOL.md` and every message the SeaORM publisher writes are
//! valid against `docs/protocol.schema.json` (and decode with `Message::decode`), and invalid
//! messages are rejected by both.

use std::path::Path;

use jsonschema::Validator;
use promiscuous::pipeline::schema;
use promiscuous::{Message, OperationKind};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    IntoActiveModel, ModelTrait, Schema, Set, TransactionTrait,
};
use serde_json::{Value, json};

mod common;
use common::user;

fn doc(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn schema_value() -> Value {
    serde_json::from_str(&doc("docs/protocol.schema.json"))
        .expect("docs/protocol.schema.json is JSON")
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&schema_value()).expect("the protocol schema compiles")
}

/// Every schema error for `instance`, one per line, empty if it is valid.
fn errors(validator: &Validator, instance: &Value) -> String {
    validator
        .iter_errors(instance)
        .map(|e| format!("  at `{}`: {e}", e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors = errors(validator, instance);
    assert!(
        errors.is_empty(),
        "{what} is not valid against docs/protocol.schema.json:\n{errors}\n{instance:#}"
    );
}

/// The contents of the ```json code blocks of a markdown document, in order.
fn json_blocks(markdown: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence.starts_with("```json") => current = Some(String::new()),
            None => {}
            Some(_) if fence.starts_with("```") => {
                let text = current.take().unwrap();
                let value = serde_json::from_str(&text).unwrap_or_else(|e| {
                    panic!("a ```json block of docs/PROTOCOL.md is not JSON ({e}):\n{text}")
                });
                blocks.push(value);
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "unterminated ```json block in docs/PROTOCOL.md"
    );
    blocks
}

fn documented_examples() -> Vec<Value> {
    json_blocks(&doc("docs/PROTOCOL.md"))
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema_value();
    assert_eq!(
        schema["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("docs/protocol.schema.json violates its meta-schema: {e}");
    }
}

#[test]
fn the_documented_examples_are_valid_and_decode() {
    let validator = validator();
    let examples = documented_examples();
    assert!(
        examples.len() >= 2,
        "docs/PROTOCOL.md should hold at least two ```json example messages, found {}",
        examples.len()
    );
    for (i, example) in examples.iter().enumerate() {
        assert_valid(
            &validator,
            example,
            &format!("example {i} of docs/PROTOCOL.md"),
        );
        let message = Message::decode(example.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("example {i} of docs/PROTOCOL.md does not decode: {e}"));
        // Rules the schema cannot express.
        for op in &message.operations {
            assert!(
                op.endpoint.starts_with(&format!("{}/", message.app)),
                "example {i}: endpoint {} is not under app {}",
                op.endpoint,
                message.app
            );
        }
        let keys: Vec<_> = message
            .operations
            .iter()
            .map(|op| (op.key(), op.version))
            .collect();
        let writes: Vec<_> = message
            .dependencies
            .write
            .iter()
            .map(|d| (d.key.clone(), d.version))
            .collect();
        assert_eq!(keys, writes, "example {i}: write dependencies = operations");
    }
    let kinds: Vec<&Value> = examples
        .iter()
        .map(|e| &e["operations"][0]["operation"])
        .collect();
    assert!(kinds.contains(&&json!("create")), "no create example");
    let update = examples
        .iter()
        .find(|e| e["operations"][0]["operation"] == "update")
        .expect("an update example");
    assert!(
        update["operations"][0]["changes"].is_object(),
        "the update example carries changes"
    );
}

async fn publisher_db() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1);
    let db = Database::connect(options).await.unwrap();
    let table = Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity);
    db.execute(&table).await.unwrap();
    schema::setup_publisher(&db).await.unwrap();
    db
}

#[tokio::test]
async fn every_message_of_the_real_publisher_is_valid() {
    let db = publisher_db().await;

    let txn = db.begin().await.unwrap();
    let yoda = user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("yoda@dagobah.org".into()),
        password: Set("do-or-do-not".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();

    let txn = db.begin().await.unwrap();
    let mut renamed = yoda.into_active_model();
    renamed.name = Set("Master Yoda".into());
    let yoda = renamed.update(&txn).await.unwrap();
    txn.commit().await.unwrap();

    // An initial sync resends the whole state, flagged `sync`.
    let txn = db.begin().await.unwrap();
    promiscuous::pipeline::record_sync(&yoda, &txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();

    let txn = db.begin().await.unwrap();
    let id = yoda.id;
    yoda.delete(&txn).await.unwrap();
    txn.commit().await.unwrap();

    let rows = promiscuous::pipeline::outbox_messages(&db, None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "one message per transaction");

    let validator = validator();
    let mut seen = Vec::new();
    for row in &rows {
        let bytes = row.message.encode();
        let payload: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("outbox row {} is not JSON ({e})", row.id));
        assert_valid(&validator, &payload, &format!("outbox row {}", row.id));
        let message = Message::decode(&bytes)
            .unwrap_or_else(|e| panic!("outbox row {} does not decode: {e}", row.id));
        assert_eq!(row.routing_key, message.app, "routing key = app");
        assert_eq!(message.app, "crowdtap");
        for op in &message.operations {
            assert!(op.endpoint.starts_with("crowdtap/"));
            assert_eq!(op.id, json!(id));
            seen.push((op.operation, op.version, op.clone()));
        }
    }

    let summary: Vec<_> = seen.iter().map(|(k, v, _)| (*k, *v)).collect();
    assert_eq!(
        summary,
        vec![
            (OperationKind::Create, 1),
            (OperationKind::Update, 2),
            (OperationKind::Update, 3),
            (OperationKind::Destroy, 4)
        ]
    );
    let (create, update, synced, destroy) = (&seen[0].2, &seen[1].2, &seen[2].2, &seen[3].2);
    assert!(!create.sync && !update.sync && !destroy.sync);
    assert!(synced.sync && synced.changes.is_none());
    assert_eq!(synced.attributes, update.attributes, "the whole state");
    assert_eq!(
        create.attributes.clone().map(Value::Object),
        Some(json!({
            "name": "Yoda",
            "email": "yoda@dagobah.org",
            "full_name": "Yoda <yoda@dagobah.org>"
        }))
    );
    let changes =
        serde_json::to_value(update.changes.as_ref().expect("update has changes")).unwrap();
    assert_eq!(
        changes,
        json!({
            "name": {"before": "Yoda", "after": "Master Yoda"},
            "full_name": {
                "before": "Yoda <yoda@dagobah.org>",
                "after": "Master Yoda <yoda@dagobah.org>"
            }
        })
    );
    assert!(
        destroy.attributes.is_none(),
        "destroy carries no attributes"
    );
}

fn remove(object: &mut Value, field: &str) {
    object.as_object_mut().expect("an object").remove(field);
}

#[test]
fn invalid_messages_are_rejected() {
    let validator = validator();
    let examples = documented_examples();
    let create = examples
        .iter()
        .find(|e| e["operations"][0]["operation"] == "create")
        .expect("a create example")
        .clone();

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut v = create.clone();
    remove(&mut v, "operations");
    cases.push(("missing operations", v));
    let mut v = create.clone();
    v["operations"] = json!([]);
    cases.push(("empty operations", v));
    let mut v = create.clone();
    v["operations"][0]["version"] = json!(0);
    cases.push(("version 0", v));
    let mut v = create.clone();
    remove(&mut v["operations"][0], "attributes");
    cases.push(("create without attributes", v));
    let mut v = create.clone();
    v["operations"][0]["operation"] = json!("update");
    remove(&mut v["operations"][0], "attributes");
    cases.push(("update without attributes", v));
    let mut v = create.clone();
    v["operations"][0]["operation"] = json!("explode");
    cases.push(("operation \"explode\"", v));
    let mut v = create.clone();
    v["operations"][0]["id"] = json!({"id": 7});
    cases.push(("id neither string nor number", v));
    let mut v = create.clone();
    v["protocol"] = json!(2);
    cases.push(("a newer protocol", v));
    let mut v = create.clone();
    remove(&mut v, "timestamp");
    cases.push(("missing timestamp", v));

    for (what, message) in &cases {
        assert!(
            !validator.is_valid(message),
            "the schema accepts a message with {what}:\n{message:#}"
        );
        assert!(
            Message::decode(message.to_string().as_bytes()).is_err(),
            "Message::decode accepts a message with {what}"
        );
    }

    // Not errors: a destroy without attributes, a string id, unknown fields (forward
    // compatibility), and no dependencies at all.
    let mut destroy = create.clone();
    destroy["operations"][0]["operation"] = json!("destroy");
    remove(&mut destroy["operations"][0], "attributes");
    let mut string_id = create.clone();
    string_id["operations"][0]["id"] = json!("7f3c");
    let mut unknown_fields = create.clone();
    unknown_fields["trace_id"] = json!("abc");
    unknown_fields["operations"][0]["shard"] = json!(3);
    unknown_fields["dependencies"]["causal"] = json!([]);
    let mut no_dependencies = create;
    remove(&mut no_dependencies, "dependencies");
    for (what, message) in [
        ("destroy without attributes", destroy),
        ("string id", string_id),
        ("unknown fields", unknown_fields),
        ("no dependencies", no_dependencies),
    ] {
        assert_valid(&validator, &message, what);
        if let Err(e) = Message::decode(message.to_string().as_bytes()) {
            panic!("Message::decode rejects a valid message ({what}): {e}");
        }
    }
}
