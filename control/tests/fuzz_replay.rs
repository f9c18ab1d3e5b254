//! Replays the fuzz corpora on stable Rust: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through its target's function (`fuzz/src/lib.rs`, the same code
//! libFuzzer runs under `make fuzz`). A panic names the file; the regressions are the inputs of
//! findings that were fixed.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Records the largest single allocation of each thread, so a replay can check that decoding
/// never allocates far more than its input holds (a garbled count must not reserve gigabytes).
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping only
// touches a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// The most a wire decoder may allocate at once for an input of `len` bytes.
fn alloc_bound(len: usize) -> usize {
    16 * len + (64 << 10)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Returns the files of a directory, sorted, or none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// Runs `f` on `input`, naming `what` if it panics (the panic goes on).
fn run(f: fn(&[u8]), input: &[u8], what: &dyn std::fmt::Display) {
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(input))) {
        eprintln!("fuzz replay: {what} panicked");
        resume_unwind(e);
    }
}

#[test]
fn every_corpus_and_regression_replays() {
    let root = fuzz_dir();
    let mut total = 0;
    for &(name, f) in targets::TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
        let regressions = files(&root.join("regressions").join(name));
        let start = Instant::now();
        for path in corpus.iter().chain(&regressions) {
            // A fuzzer running meanwhile (make fuzz) replaces corpus files as it shrinks them.
            let input = match std::fs::read(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                r => r.expect("a corpus file reads"),
            };
            LARGEST.with(|l| l.set(0));
            run(f, &input, &path.display());
            let largest = LARGEST.with(Cell::get);
            if name == "ctl_wire" {
                let (n, bound) = (input.len(), alloc_bound(input.len()));
                assert!(largest <= bound, "{}: {n} bytes made one allocation of {largest}", path.display());
            }
        }
        eprintln!(
            "{name}: {} corpus and {} regression inputs in {:?}",
            corpus.len(),
            regressions.len(),
            start.elapsed()
        );
        total += corpus.len() + regressions.len();
    }
    assert!(total > 0);
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for &(name, _) in targets::TARGETS {
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(text.contains(&format!("ipsecgw_fuzz::{name}(")), "{} calls another target", bin.display());
    }
}

#[test]
fn seeds_run() {
    for (name, input) in targets::seeds() {
        let f = targets::TARGETS.iter().find(|t| t.0 == name).expect("a seed names a target").1;
        run(f, &input, &format_args!("a seed of {name}"));
    }
}

/// Writes the seeds into `fuzz/corpus/<target>/` (named by content): run with
/// `cargo test -p control --test fuzz_replay -- --ignored write_seeds`, then `cargo fuzz cmin`.
#[test]
#[ignore]
fn write_seeds() {
    use std::hash::{Hash, Hasher};
    for (name, input) in targets::seeds() {
        let dir = fuzz_dir().join("corpus").join(name);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        input.hash(&mut h);
        std::fs::write(dir.join(format!("seed-{:016x}", h.finish())), &input).expect("a seed writes");
    }
}

/// The pipeline target's seeds get through: each scenario's sealed packet is decrypted and
/// forwarded to the LAN (the fuzzer starts past the SPI lookup and the ICV check), and each
/// policy's cleartext leaves encrypted on the WAN.
#[test]
fn pipeline_seeds_pass_the_gateway() {
    let mut sealed = 0;
    for (name, input) in targets::seeds() {
        if name != "pipeline" || input[1] != 0 {
            continue;
        }
        let out = targets::pipeline_outcome(&input).expect("a seed builds a frame");
        match input[0] {
            // Raw frames from the WAN: sealed ones reach the LAN, the rest the gateway answers.
            0 => {}
            1 => assert_eq!(out.sent, [0, 1], "cleartext from the LAN leaves encrypted: {out:?}"),
            k => {
                sealed += 1;
                // Tunnelled packets go on to the LAN; transport ones are for the gateway itself.
                assert!(out.drops.is_empty(), "scenario {}: {out:?}", k - 2);
            }
        }
    }
    assert_eq!(sealed, 9);
}
