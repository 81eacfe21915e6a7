"""What a finding's recommendation saves each month and costs once, priced from the scan's price table.

The figures reuse `tierscan.scanner.pricing.table` (which price applies to a copy, under the config's `price_as`) and
`tierscan.scanner.pricing.savings.removal_cost` (what deleting a copy saves, and its early-deletion charge), so that a
finding and the savings report never disagree about one copy. Each action prices one copy
(`Action.estimate`); the engine adds them up over the finding's URIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tierscan.policies.model import Record
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.pricing.savings import RemovalCost, removal_cost
from tierscan.scanner.pricing.table import GIB, Price, PriceAs, PriceTable

__all__ = ["ObjectRecord", "Pricing"]


class ObjectRecord(dict[str, Any]):
    """An object's policy record (a plain dict to every filter) that keeps the inventory record it was
    made from, so that pricing a finding does not validate the record back (`Pricing.inventory`)."""

    __slots__ = ("inventory",)

    def __init__(self, record: Record, inventory: InventoryRecord):
        super().__init__(record)
        self.inventory = inventory


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
