//! Integration tests of the HubSpot client against the emulator, over real HTTP on loopback.
//! One binary: `common` starts an emulator and a client; each module covers one area.

mod auth;
mod common;
mod endpoints;
mod rate_limits;
mod resilience;
