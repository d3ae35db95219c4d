//! The engine's error type.

use hubsync_core::PortalId;

/// What can stop a worker step. Per-record problems never surface here: they go to the
/// dead-letter table and the step goes on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed; the step's transaction rolled back and it can be retried.
    #[error("store: {0}")]
    Store(#[from] hubsync_store::StoreError),
    /// HubSpot could not be reached or refused the whole call; nothing was acknowledged.
    #[error("hubspot: {0}")]
    Api(#[from] hubsync_hubspot::ApiError),
    /// A mapping could not be evaluated at all (not a per-record value error).
    #[error("mapping: {0}")]
    Mapping(#[from] hubsync_mapping::MappingError),
    /// The portal has no registered HubSpot client.
    #[error("portal {0} is not connected")]
    PortalNotConnected(PortalId),
    /// This process can no longer prove that it owns the portal (its lease was not renewed in
    /// time), so it must not write to HubSpot for it.
    #[error("the lease on portal {0} may have moved on")]
    LeaseExpired(PortalId),
    /// The portal's stored credentials cannot be used.
    #[error("portal {portal} has unusable credentials: {reason}")]
    Credentials {
        /// The portal.
        portal: PortalId,
        /// What is wrong (never the secret itself).
        reason: String,
    },
}

impl EngineError {
    /// Whether the portal cannot make progress until a person acts (re-authorise, raise the
    /// budget): its workers should park rather than retry.
    pub fn is_portal_blocked(&self) -> bool {
        matches!(self, EngineError::Api(e) if e.is_portal_blocked() && !matches!(e, hubsync_hubspot::ApiError::Withheld { .. }))
            || matches!(self, EngineError::Credentials { .. })
    }

    /// Whether the step stopped because this process could not prove it still owns the portal
    /// ([`EngineError::LeaseExpired`], or a HubSpot request withheld for that reason).
    pub fn is_lease_expired(&self) -> bool {
        matches!(
            self,
            EngineError::LeaseExpired(_)
                | EngineError::Api(hubsync_hubspot::ApiError::Withheld { .. })
        )
    }
}
