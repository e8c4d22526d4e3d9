//! The rules of the promiscuous protocol (`docs/PROTOCOL.md`) that more than one crate applies,
//! written once: the runtime (`promiscuous-core`), the SeaORM glue, the macros
//! (`promiscuous-derive`) and the test kit all use these.
//!
//! - [`PROTOCOL_VERSION`] and [`DEFINITIONS_VERSION`];
//! - [`endpoint`]: what an endpoint `"app/model"` is, and its app and model;
//! - [`InstanceKey`]: the instance key `"{endpoint}/{id}"`, built and parsed here only;
//! - [`type_name`]: the type a publisher sends by default, and what a type name may be.

pub mod endpoint;
mod key;
mod types;

pub use key::{InstanceKey, KeyError};
pub use types::{default_type, is_type_name, type_name};

/// The protocol version promiscuous writes and the newest it reads.
pub const PROTOCOL_VERSION: u32 = 1;

/// The version of the exported definitions format (`promiscuous_definitions` in the JSON that
/// `promiscuous definitions` writes and `#[subscribe(definitions = "...")]` reads).
pub const DEFINITIONS_VERSION: u64 = 1;
