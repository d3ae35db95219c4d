//! The pure sync core of hubsync: everything that decides *what* to sync, with no I/O.
//!
//! # Layout
//! - [`ids`]: typed identifiers ([`PortalId`], [`HubspotId`], [`LocalId`], [`AppId`]).
//! - [`object`]: the synced object types and their HubSpot names.
//! - [`record`]: the flat unified record ([`FieldMap`]) that both sides are compared in.
//! - [`fingerprint`]: SHA-256 content fingerprints over the synced fields.
//! - [`merge`]: the one three-way, field-level merge every change goes through.
//! - [`retry`]: backoff arithmetic shared by every retrying component.
//!
//! Nothing here touches a socket, a file or a clock: callers pass timestamps in. That keeps
//! the merge deterministic and cheap enough to run on every inbound event.

pub mod fingerprint;
pub mod ids;
pub mod merge;
pub mod object;
pub mod record;
pub mod retry;

pub use fingerprint::Fingerprint;
pub use ids::{AppId, HubspotId, LocalId, ParseIdError, PortalId};
pub use merge::{Conflict, ConflictPolicy, MergeInput, MergeOutcome, PolicySet, Side};
pub use object::{ObjectType, UnknownObjectType};
pub use record::{Changes, FieldMap};
