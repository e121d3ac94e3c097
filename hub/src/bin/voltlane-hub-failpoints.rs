//! `voltlane-hub-failpoints`: the `voltlane-hub` binary built with the cargo feature
//! `failpoints`, for the crash and misbehaviour tests of `integration-tests` only. It has the
//! same entry point (`src/main.rs`); only the library underneath differs.

#[path = "../main.rs"]
mod hub_main;

fn main() -> std::process::ExitCode {
    hub_main::main()
}
