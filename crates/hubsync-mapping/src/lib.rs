//! Declarative mappings between HubSpot's property blobs and the unified model (JSONata), and filter translation rules.
