"""Prices: the price table and its refresh from the providers, and what removing copies saves."""
