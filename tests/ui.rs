//! Compile-time diagnostics of `#[publish]` and `#[subscribe]`: every error the macros promise,
//! with its `.stderr` snapshot, plus programs that must compile.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
