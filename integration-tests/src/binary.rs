//! Locating the hub binary the end-to-end tests run: `voltlane-hub-failpoints`, the hub built
//! with the cargo feature `failpoints` (the crash tests set `VOLTLANE_FAILPOINTS`; the
//! production `voltlane-hub` has no fail points at all). It is a binary of its own so that
//! the feature never reaches the `voltlane-hub` of a target directory: feature unification
//! within one `cargo test --workspace` would otherwise put the fail points into every hub
//! that invocation builds.
//!
//! Cargo only exposes `CARGO_BIN_EXE_<name>` to a package's *own* tests, and a dependency on
//! `voltlane-hub` would build its library, not its binary. So the harness finds the binary
//! next to the running executable: tests run from `<target>/<profile>/deps/`, `loadgen` from
//! `<target>/<profile>/`, and the hub lands in `<target>/<profile>/voltlane-hub-failpoints`.
//!
//! If that file is missing or older than any source it is built from (`hub/`, `store/`,
//! `proto/`, `channel-core/`, `eth-ledger/`, not counting their `tests/`, `benches/` and
//! `examples/`), [`hub_binary`] runs `cargo build -p voltlane-hub --bin
//! voltlane-hub-failpoints --features failpoints` for the same profile and target directory,
//! once per process (a [`OnceLock`]); concurrent processes are serialised by cargo's own
//! build-directory lock. `VOLTLANE_HUB_BIN=<path>` skips all of this and uses the given
//! binary (which needs the feature for the fail-point tests).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::error::HarnessError;

/// Environment variable naming the hub binary to use instead of the one in the target dir.
pub const HUB_BIN_ENV: &str = "VOLTLANE_HUB_BIN";

/// The hub's package.
const HUB_PACKAGE: &str = "voltlane-hub";
/// The hub's binary target with the fail points compiled in.
const HUB_BIN: &str = "voltlane-hub-failpoints";
/// The cargo feature that binary needs.
const HUB_FEATURE: &str = "failpoints";

/// Workspace directories the hub binary is built from.
const SOURCES: &[&str] = &["hub", "store", "proto", "channel-core", "eth-ledger"];

/// Path of an up-to-date hub binary (building it once if needed).
pub fn hub_binary() -> Result<PathBuf, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(resolve)
        .clone()
        .map_err(HarnessError::Binary)
}

fn resolve() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(HUB_BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{HUB_BIN_ENV}={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut profile_dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent", exe.display()))?;
    if matches!(
        profile_dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        profile_dir = profile_dir
            .parent()
            .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    }
    let bin = profile_dir.join(HUB_BIN);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("integration-tests has no parent directory")?;
    if is_fresh(&bin, workspace) {
        return Ok(bin);
    }
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no profile name", profile_dir.display()))?;
    match build(workspace, target_dir, profile) {
        Ok(()) if bin.is_file() => Ok(bin),
        Ok(()) => Err(format!("built, but {} does not exist", bin.display())),
        // Someone may be mid-edit in hub/: an older binary is better than none.
        Err(e) if bin.is_file() => {
            eprintln!("warning: {e}; using the existing {}", bin.display());
            Ok(bin)
        }
        Err(e) => Err(e),
    }
}

/// `bin` exists and is newer than every file under the hub's source directories.
fn is_fresh(bin: &Path, workspace: &Path) -> bool {
    let Some(built) = modified(bin) else {
        return false;
    };
    SOURCES
        .iter()
        .filter_map(|d| newest(&workspace.join(d)))
        .all(|t| t <= built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Directories under a crate that never go into its binary: a change there (say, editing a
/// hub test) must not make the harness rebuild the hub inside a test's time budget.
const NOT_IN_BINARY: &[&str] = &["target", "tests", "benches", "examples"];

/// Newest modification time of the files under `dir` (skipping [`NOT_IN_BINARY`]).
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best = modified(dir);
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| NOT_IN_BINARY.contains(&n))
            {
                continue;
            }
            newest(&path)
        } else {
            modified(&path)
        };
        best = best.max(t);
    }
    best
}

fn build(workspace: &Path, target_dir: &Path, profile: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            HUB_PACKAGE,
            "--bin",
            HUB_BIN,
            "--features",
            HUB_FEATURE,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    eprintln!("building the hub: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build -p {HUB_PACKAGE} --bin {HUB_BIN} --features {HUB_FEATURE}` failed: \
             {status}"
        ))
    }
}
