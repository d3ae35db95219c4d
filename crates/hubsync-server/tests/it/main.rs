//! Integration tests of hubsync-server over real HTTP, against a real SQLite store.

mod browser;
mod common;
mod emulator;
mod status;
mod webhooks;
