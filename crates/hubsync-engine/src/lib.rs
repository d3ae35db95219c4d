//! The sync engine: inbound, outbound and reconcile workers that move changes between the store and HubSpot.
