//! A production build of the hub carries no fail point: the `voltlane-hub` binary cargo builds
//! for these tests (without the `failpoints` feature, as `cargo build` and `cargo install` do)
//! must not contain the name of any fail point, nor the variable that switches them on, nor
//! the hub's fail-point messages. The names are read from `src/failpoint.rs` itself, so a
//! fail point added there is covered without touching this test.
//!
//! Built with `--features failpoints` (e.g. `--all-features`), the same test checks the
//! opposite: every name is in the binary, which shows the search finds what it looks for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// The binary under test: the package's own `voltlane-hub`, built with this test's features.
const HUB_BIN: &str = env!("CARGO_BIN_EXE_voltlane-hub");

/// Strings a fail-point build has besides the names (`src/failpoint.rs`,
/// `src/mediation/payee.rs`).
const OTHER_MARKERS: &[&str] = &["VOLTLANE_FAILPOINTS", "fail point "];

/// The values of the `pub const NAME: &str = "value";` items of `src/failpoint.rs`.
fn failpoint_names() -> Vec<String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/failpoint.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (_, value) = rest.split_once(": &str = \"")?;
            Some(value.strip_suffix("\";")?.to_owned())
        })
        .collect();
    // The five fail points and the environment variable that exist today, at least.
    assert!(
        names.len() >= 6,
        "parsed only {names:?} from {}",
        source.display()
    );
    names
}

#[test]
fn production_hub_binary_carries_no_failpoint() {
    let bytes = std::fs::read(HUB_BIN).unwrap();
    // Lossy UTF-8 keeps every ASCII run intact, and `str::contains` is std's optimised
    // substring search (this test crate itself is unoptimised).
    let text = String::from_utf8_lossy(&bytes);
    let mut wanted = failpoint_names();
    wanted.extend(OTHER_MARKERS.iter().map(|m| m.to_string()));
    let found: Vec<&String> = wanted
        .iter()
        .filter(|n| text.contains(n.as_str()))
        .collect();
    if cfg!(feature = "failpoints") {
        assert_eq!(
            found.len(),
            wanted.len(),
            "a fail-point build lacks some of {wanted:?}"
        );
    } else {
        assert!(
            found.is_empty(),
            "{HUB_BIN} (built without the `failpoints` feature) contains {found:?}"
        );
    }
}
