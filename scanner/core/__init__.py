"""The core every stage shares: object and result models, errors, the config, tiers and jurisdictions, and safe handling
of untrusted text and files."""
