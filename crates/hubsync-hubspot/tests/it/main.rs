//! Integration tests of the HubSpot client against the emulator, over real HTTP on loopback.
//! One binary: `common` starts an emulator and a client; each module covers one area.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod auth;
mod common;
mod endpoints;
mod rate_limits;
mod resilience;
mod webhooks;
