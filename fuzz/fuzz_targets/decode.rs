//! Any bytes: `Message::decode` never panics, and a decoded message survives a round trip
//! through the wire format unchanged (`decode(encode(m)) == Ok(m)`).
//!
//! Build it with `--no-default-features` to fuzz the serde_json that the library links in
//! production (see README.md, "Features").

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use promiscuous_core::message::Message;

/// `FUZZ_VERBOSE=1`: print every verdict (to replay an input: `target/…/decode FILE`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FUZZ_VERBOSE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    if verbose() {
        eprintln!("decode {decoded:?}");
    }
    let Ok(message) = decoded else {
        return;
    };
    let encoded = message.encode();
    let again = Message::decode(&encoded);
    assert!(
        again.as_ref() == Ok(&message),
        "re-encoding changes the message\ninput:   {}\nencoded: {}\ndecoded: {message:?}\nagain:   {again:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&encoded),
    );
});
