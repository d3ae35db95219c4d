//! The `hubsync` application: configuration, the command-line interface and the demo.
//!
//! `main.rs` is a thin shell over [`cli::run`]; everything here is also reachable from the
//! integration tests in `tests/`.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod telemetry;
