//! Placeholder for the bad-reading classes (filled below).
