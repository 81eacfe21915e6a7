"""What a finding's recommendation saves each month and costs once, priced from the scan's price table.

The figures reuse `tierscan.scanner.pricing.table` (which price applies to a copy, under the config's `price_as`) and
`tierscan.scanner.pricing.savings.removal_cost` (what deleting a copy saves, and its early-deletion charge), so that a
finding and the savings report never disagree about one copy. Each action prices one copy
(`Action.estimate`); the engine adds them up over the finding's URIs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tierscan.policies.model import Record
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.core.places import PLACE_KEYS, place_of
from tierscan.scanner.pricing.savings import RemovalCost, removal_cost
from tierscan.scanner.pricing.table import GIB, Price, PriceAs, PriceTable

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = ["ObjectRecord", "Pricing"]


class ObjectRecord(dict[str, Any]):
    """An object's policy record (a plain dict to every filter) that keeps the inventory record it was
    made from, so that pricing a finding does not validate the record back (`Pricing.inventory`).

    Made by `of` from a record not placed yet, it finds where its photo was taken (`PLACE_KEYS`) when one
    of those keys is first read (any read: a lookup, `in`, or a view of the whole record): placing loads
    the places data (`places.resolver`: over a second of CPU and about 190 MB), which a scan whose
    policies never ask where a photo was taken must not pay for."""

    __slots__ = ("inventory",)

    def __init__(self, record: Record, inventory: InventoryRecord):
        super().__init__(record)
        self.inventory = inventory

    @classmethod
    def of(cls, inventory: InventoryRecord, **fields: Any) -> ObjectRecord:
        """The policy record of an inventory record, with `fields` added; placed when first asked if the
        inventory record was not placed."""
        unplaced = set(PLACE_KEYS) if inventory.taken_in is None else None
        return cls({**inventory.model_dump(mode="json", exclude=unplaced), **fields}, inventory)

    def adding(self, **fields: Any) -> ObjectRecord:
        """A copy with `fields` added, placed when first asked as this one is."""
        return ObjectRecord({**dict(dict.items(self)), **fields}, self.inventory)

    def _place(self) -> None:
        if not dict.__contains__(self, PLACE_KEYS[0]):
            place = place_of(self.inventory)
            dict.update(self, zip(PLACE_KEYS, (place.territory, place.near) if place else (None, None), strict=True))

    def __missing__(self, key: str) -> Any:
        if key not in PLACE_KEYS:
            raise KeyError(key)
        self._place()
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in PLACE_KEYS or dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._place()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._place()
        return dict.__len__(self)

    def keys(self) -> dict_keys[str, Any]:
        self._place()
        return dict.keys(self)

    def items(self) -> dict_items[str, Any]:
        self._place()
        return dict.items(self)

    def values(self) -> dict_values[str, Any]:
        self._place()
        return dict.values(self)


@dataclass(frozen=True)
class Pricing:
    """The price table a scan's findings are priced with, and which provider's list applies to a record
    (`price_as_from_config`). Without one, the engine leaves every finding at zero."""

    prices: PriceTable
    price_as: PriceAs | None = None

    @staticmethod
    def inventory(copy: Record) -> InventoryRecord:
        """The object record behind a policy record (which adds `gba`, and `distance` in a group)."""
        if isinstance(copy, ObjectRecord):
            return copy.inventory
        return InventoryRecord.model_validate({k: v for k, v in copy.items() if k in InventoryRecord.model_fields})

    def price(self, record: InventoryRecord) -> Price:
        return self.prices.price_for_object(record, self.price_as(record) if self.price_as else None)

    def removal(self, record: InventoryRecord, now: datetime) -> RemovalCost:
        """What deleting `record` from where it is saves and costs, exactly as the savings report says."""
        return removal_cost(record, self.price(record), now)

    def retrieval(self, record: InventoryRecord) -> float:
        """Reading `record` back once: the class's retrieval fee per GiB plus one GET (a restore request
        for archive classes)."""
        price = self.price(record)
        return record.size / GIB * price.retrieval_gb + price.get_per_1000 / 1000
