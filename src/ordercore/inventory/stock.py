"""Stock per fulfilment node and SKU.

A :class:`StockLevel` is a value: every change returns a new level with the version moved on, so that a
repository can refuse a concurrent write. Stock on hand never goes negative, and nothing is reserved beyond
what is available unless the SKU is backorderable at that node.
"""

from __future__ import annotations

import attrs

from ordercore.errors import InsufficientStock, InvalidValue
from ordercore.values import Sku, check_quantity

__all__ = ["StockLevel"]


def _node(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise InvalidValue(
            "must be a non-empty string of at most 64 characters", field="node_id", value=value
        )


@attrs.frozen
class StockLevel:
    """``on_hand`` units at ``node_id``; ``reserved`` of them promised to orders; ``safety_stock`` kept back."""

    node_id: str = attrs.field(validator=_node)
    sku: Sku
    on_hand: int
    reserved: int = 0
    safety_stock: int = 0
    backorderable: bool = False
    version: int = 1

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.sku, Sku):
            raise InvalidValue("must be a Sku", field="sku", value=self.sku)
        for name in ("on_hand", "reserved", "safety_stock"):
            check_quantity(getattr(self, name), name, allow_zero=True)
        check_quantity(self.version, "version")
        if not self.backorderable and self.reserved > self.on_hand:
            raise InsufficientStock(self.node_id, self.sku, requested=self.reserved, available=self.on_hand)

    @property
    def available(self) -> int:
        """Units that can still be promised (never negative)."""
        return max(0, self.on_hand - self.safety_stock - self.reserved)

    def reserve(self, quantity: int) -> StockLevel:
        check_quantity(quantity, "quantity")
        if quantity > self.available and not self.backorderable:
            raise InsufficientStock(self.node_id, self.sku, requested=quantity, available=self.available)
        return attrs.evolve(self, reserved=self.reserved + quantity, version=self.version + 1)

    def unreserve(self, quantity: int) -> StockLevel:
        check_quantity(quantity, "quantity")
        if quantity > self.reserved:
            raise InvalidValue(f"only {self.reserved} are reserved", field="quantity", value=quantity)
        return attrs.evolve(self, reserved=self.reserved - quantity, version=self.version + 1)

    def receive(self, quantity: int) -> StockLevel:
        check_quantity(quantity, "quantity")
        return attrs.evolve(self, on_hand=self.on_hand + quantity, version=self.version + 1)

    def consume(self, quantity: int) -> StockLevel:
        """Reserved units leave the building (shipped)."""
        check_quantity(quantity, "quantity")
        if quantity > self.reserved or quantity > self.on_hand:
            raise InvalidValue(
                f"only {min(self.reserved, self.on_hand)} reserved units are on hand",
                field="quantity",
                value=quantity,
            )
        return attrs.evolve(
            self, on_hand=self.on_hand - quantity, reserved=self.reserved - quantity, version=self.version + 1
        )
