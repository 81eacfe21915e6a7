"""Storage connectors: one module per backend behind the `Connector` contract in `tierscan.connectors.base`."""

from tierscan.connectors.base import Capabilities, Connector, RetryPolicy, Target, parse_target
from tierscan.connectors.registry import connector_class, known_connectors, register_connector

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
