//! HubSpot webhooks, pure: the event payload types, a tolerant delivery parser and
//! signature verification (v3; v1/v2 when enabled). No I/O: the HTTP endpoint lives in
//! `hubsync-server` and hands the raw request parts in here.

mod event;
mod signature;

pub use event::{
    DeliveryError, EventIdentity, EventKind, WebhookEvent, parse_delivery, parse_subscription_type,
};
pub use signature::{
    DEFAULT_MAX_AGE, SIGNATURE_HEADER, SIGNATURE_V3_HEADER, SIGNATURE_VERSION_HEADER,
    SignatureError, SignatureVerifier, SignatureVersion, SignedRequest, TIMESTAMP_HEADER,
    decode_v3_uri, sign_v3,
};
