//! A rate-aware HubSpot CRM client: auth, per-portal lanes and limiters, retries, typed endpoints, webhook signatures.
