//! Fuzz target bodies: one plain function per entry point that sees untrusted bytes.
//!
//! libFuzzer calls them from `fuzz_targets/*.rs` (`make fuzz`, nightly); on stable,
//! `control/tests/fuzz_replay.rs` includes this file as a module and calls them on every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` (`make test`). A target never catches
//! a panic: a panic, an assertion that fails, a hang or an unbounded allocation is a finding.
#![forbid(unsafe_code)]

#[path = "ike.rs"]
mod ike;
#[path = "pipeline.rs"]
mod pipeline;
#[path = "text.rs"]
mod text;
#[path = "wire.rs"]
mod wire;

pub use ike::{ike_engine, ike_wire};
pub use pipeline::{pipeline, run as pipeline_outcome};
pub use text::{config, console, ctl_wire};
pub use wire::wire;

/// A target's body.
pub type Target = fn(&[u8]);

/// Names every target with its function, as `corpus/<name>/` and `regressions/<name>/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire", wire),
    ("pipeline", pipeline),
    ("ike_wire", ike_wire),
    ("ike_engine", ike_engine),
    ("console", console),
    ("config", config),
    ("ctl_wire", ctl_wire),
];

/// Returns the seed inputs of every target: valid frames, real IKE messages from two engines,
/// the manual's console commands and the demo configurations, so a corpus can be rebuilt.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    v.extend(wire::seeds().into_iter().map(|s| ("wire", s)));
    v.extend(pipeline::seeds().into_iter().map(|s| ("pipeline", s)));
    v.extend(ike::seeds());
    v.extend(text::seeds());
    v
}
