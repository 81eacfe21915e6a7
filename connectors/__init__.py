"""Storage connectors: one module per backend behind the `Connector` contract in `connectors.base`."""

from .base import Capabilities, Connector, RetryPolicy, Target, parse_target
from .registry import connector_class, known_connectors, register_connector

__all__ = [
    "Capabilities",
    "Connector",
    "RetryPolicy",
    "Target",
    "connector_class",
    "known_connectors",
    "parse_target",
    "register_connector",
]
