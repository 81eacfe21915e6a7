"""Connectors found by URI scheme: a built-in table of lazy imports, then the `tierscan.connectors`
entry-point group for plug-ins (after fsspec's `known_implementations`)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tierscan.connectors.base import Connector
from tierscan.scanner.core.errors import UsageError

__all__ = ["connector_class", "known_connectors", "register_connector"]

# scheme -> ("module:Class", install hint when its SDK is missing)
_KNOWN: dict[str, tuple[str, str]] = {
    "file": ("tierscan.connectors.local:LocalConnector", ""),
    "s3": ("tierscan.connectors.s3:S3Connector", "pip install 'tierscan[s3]'"),
    "gs": ("tierscan.connectors.gcs:GCSConnector", "pip install 'tierscan[gcs]'"),
    "az": ("tierscan.connectors.azure:AzureConnector", "pip install 'tierscan[azure]'"),
}
_registered: dict[str, type[Connector]] = {}


def register_connector(scheme: str, cls: type[Connector], clobber: bool = False) -> None:
    """Make `cls` the connector for `scheme://` URIs."""
    if scheme in _registered and not clobber:
        raise ValueError(f"a connector for {scheme}:// is already registered: {_registered[scheme].__name__}")
    _registered[scheme] = cls


def known_connectors() -> list[str]:
    """Every scheme with a connector: built in, registered, or advertised by an installed plug-in."""
    plugins = {ep.name for ep in entry_points(group="tierscan.connectors")}
    return sorted(set(_KNOWN) | set(_registered) | plugins)


def connector_class(scheme: str) -> type[Connector]:
    if scheme in _registered:
        return _registered[scheme]
    if scheme in _KNOWN:
        target, hint = _KNOWN[scheme]
    else:
        found = [ep for ep in entry_points(group="tierscan.connectors") if ep.name == scheme]
        if not found:
            raise UsageError(f"no connector for {scheme}:// (known: {', '.join(known_connectors())})")
        target, hint = found[0].value, ""
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"no connector module for {scheme}://: {exc}") from exc
        raise UsageError(f"the {scheme}:// connector needs a package that is not installed ({exc.name})"
                         + (f": {hint}" if hint else "")) from exc
    cls: type[Connector] = getattr(module, class_name)
    _registered[scheme] = cls
    return cls
