"""Money: ``pricing`` (model prices, exact cost in integer micro-dollars) and
``quotas`` (race-free reservations: reserve before the call, settle after)."""
