"""tierscan: audit image assets in object stores for duplicates, tiers, jurisdictions and personal data."""

__version__ = "0.1.0"
