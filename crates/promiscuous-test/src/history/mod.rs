//! A history checker for randomized tests of the subscriber.
//!
//! A test records what the publisher emitted ([`History::published`]), every operation the
//! subscriber actually applied, in the global order the effects became visible
//! ([`History::applied`]; duplicates and stale operations the subscriber skipped are *not*
//! recorded), and every dependency recovery mode skipped on purpose
//! ([`History::skipped_dependency`]). [`History::check`] then verifies the guarantees of
//! `DESIGN.md` on that history:
//!
//! 1. no loss (G3): every published operation on a followed instance was applied (or, with
//!    [`Strictness::LatestWins`], a later version of the same instance was);
//! 2. no duplicate effect (G4): no `(key, version)` was applied twice;
//! 3. per-instance order (G1): the applied versions of one instance strictly increase;
//! 4. causal order (G2): every read dependency on a followed instance was applied at that version
//!    or a newer one before the dependent operation, and (with [`Strictness::EveryVersion`]) the
//!    previous version of the written instance was applied before it, unless recovery mode
//!    recorded the dependency as skipped;
//! 5. no phantom: nothing was applied that the history does not show as published by that
//!    message.
//!
//! [`random_workload`] produces a deterministic, seeded workload of messages with correct
//! versions and read/write dependencies to feed such tests.
//!
//! Modules: [`checker`] (the history and its check), [`workload`] (the seeded workload); the
//! random number generator both use is [`crate::rng`], re-exported here.

pub mod checker;
pub mod workload;

pub use crate::rng::SplitMix64;
pub use checker::{
    DependencyKind, Event, History, Report, SkippedDependency, Strictness, Violation, describe,
};
pub use workload::{WORKLOAD_ENDPOINTS, random_workload};
