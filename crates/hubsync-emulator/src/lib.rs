//! A faithful local HubSpot CRM API emulator with webhooks, rate limits and fault injection.
