//! Compile-time diagnostics of `#[publish]` and `#[subscribe]`: every error the macros promise,
//! with its `.stderr` snapshot. (Programs that must compile are ordinary tests, in
//! `tests/macros.rs`: trybuild then only type-checks, which keeps this test fast.)
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
