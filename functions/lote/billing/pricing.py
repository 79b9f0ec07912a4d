"""Credits per image, from pricing.json: the generate step (the preset's price if it has one, else
the model's) plus the pipeline's other steps, in thousandths of a credit, rounded half up."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICING_FILE = Path(__file__).with_name("pricing.json")


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The price table, read once."""
    data: dict[str, Any] = json.loads(PRICING_FILE.read_text())
    return data


def price(model: str, preset: str | None, steps: tuple[str, ...] = ("generate",)) -> int:
    """Whole credits for one image made by `steps` (analyze, generate, verify): paid once, at
    acceptance, whatever regenerations verification later asks for (they are lote's cost)."""
    return max(1, (sum(step_prices(model, preset, steps).values()) + 500) // 1000)


def step_prices(model: str, preset: str | None, steps: tuple[str, ...]) -> dict[str, int]:
    """Each step's price in thousandths of a credit."""
    prices = table()
    if preset is not None and preset in prices["presets"]:
        image = int(prices["presets"][preset])
    else:
        image = int(prices["models"].get(model, prices["default_credits"]))
    extra = prices["steps_millicredits"]
    return {step: image * 1000 if step == "generate" else int(extra[step]) for step in steps}


def models() -> tuple[str, ...]:
    """The model ids lote has a price for (a request naming another model is refused)."""
    return tuple(sorted(table()["models"]))


def tiered(base: int, tier: str) -> int:
    """A batch item's price in `tier`: base × the tier's price_percent / 100, rounded half up,
    never below 1 credit (standard is the base price)."""
    percent = int(table()["tiers"][tier]["price_percent"])
    return max(1, (base * percent * 2 + 100) // 200)


def reuse_percent() -> int:
    """What share of its price a reused image costs (pricing.json `reuse_percent`)."""
    return int(table().get("reuse_percent", 0))
