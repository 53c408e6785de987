"""Money: ``pricing`` (model prices, exact cost in integer micro-dollars),
``tool_fees`` (per-use fees of hosted tools) and ``quotas`` (race-free
reservations: reserve before the call, settle after)."""
