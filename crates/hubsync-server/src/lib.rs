//! hubsync's HTTP server: the webhook receiver, the unified CRM API, the status page and metrics.
