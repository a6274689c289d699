"""Choosing the card gateway from the configuration (apart from the interface in __init__.py, which
the implementations import: the package would otherwise import them and they it, in a circle)."""

from __future__ import annotations

from . import Gateway


def make_gateway(config) -> Gateway:
    """The gateway the configuration asks for: demo unless Square keys are set."""
    if config["DEMO_MODE"]:
        from .demo import DemoGateway

        return DemoGateway(location_id="DEMO-LOCATION", currency=config["CURRENCY"])
    from .square import SquareGateway  # the SDK loads only in Square mode

    return SquareGateway.from_config(config)
