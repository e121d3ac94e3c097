//! Placeholder for the restart tests (filled below).
