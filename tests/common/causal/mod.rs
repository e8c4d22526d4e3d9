//! Fixtures of `tests/causal.rs` (included there with `#[path]`, not through `common`, so that
//! the other test binaries do not register its published and subscribed models): the models,
//! the subscriber application under test and the publisher's seeded workload.

pub mod models;
pub mod workers;
pub mod workload;
