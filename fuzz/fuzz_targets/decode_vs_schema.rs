//! Any bytes that parse as JSON: `Message::decode` accepts them exactly when the value is valid
//! against `docs/protocol.schema.json` and follows the ownership rules the schema cannot express
//! (docs/PROTOCOL.md, "What a consumer MUST reject": the first '/'-segment of every
//! `operations[].endpoint` and every `dependencies.write[].key` is the message's `app`).
//! Bytes that are not JSON (serde_json's parser, 128 levels deep at most) must be rejected.

#![no_main]

use std::sync::OnceLock;

use jsonschema::Validator;
use libfuzzer_sys::fuzz_target;
use promiscuous_core::message::Message;
use serde_json::Value;

const SCHEMA: &str = include_str!("../../docs/protocol.schema.json");

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the protocol schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the protocol schema compiles")
    })
}

/// Rule 3 (ownership), for a value already valid against the schema.
fn owned(value: &Value) -> bool {
    let Some(app) = value["app"].as_str() else {
        return false;
    };
    let of_app = |s: Option<&str>| s.and_then(|s| s.split('/').next()) == Some(app);
    let operations = value["operations"]
        .as_array()
        .is_some_and(|ops| ops.iter().all(|op| of_app(op["endpoint"].as_str())));
    let writes = match &value["dependencies"]["write"] {
        Value::Null => true, // absent
        Value::Array(deps) => deps.iter().all(|d| of_app(d["key"].as_str())),
        _ => false,
    };
    operations && writes
}

/// `FUZZ_VERBOSE=1`: print every verdict (to replay an input: `target/…/decode_vs_schema FILE`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FUZZ_VERBOSE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert!(
            decoded.is_err(),
            "decoded bytes that are not JSON\ninput: {}\ndecoded: {decoded:?}",
            String::from_utf8_lossy(data),
        );
        return;
    };
    let validator = validator();
    let valid = validator.is_valid(&value);
    let expected = valid && owned(&value);
    if verbose() {
        eprintln!(
            "schema {}, ownership {}, decode {decoded:?}",
            if valid { "valid" } else { "invalid" },
            owned(&value)
        );
    }
    if decoded.is_ok() != expected {
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        panic!(
            "decoder and protocol disagree: decode is {}, schema says {} ({errors:?}), \
             ownership {}\ninput: {}\ndecode: {decoded:?}",
            if decoded.is_ok() { "Ok" } else { "Err" },
            if valid { "valid" } else { "invalid" },
            if valid {
                if owned(&value) { "holds" } else { "violated" }
            } else {
                "n/a"
            },
            String::from_utf8_lossy(data),
        );
    }
});
