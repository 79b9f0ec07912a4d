"""What the model calls cost lote, as Gemini bills them (operators' view, not the tenants' credits).

Each successful attempt records its job's tokens by model (`call.spend` on the job, written in the
commit that ends it); the dispatcher's tick sums the window's into `dispatch/{pool}.spend` by UTC
day, and the admin scheduler view prices them with model_prices.json (an estimate in dollars: the
tokens are what Gemini reported, the prices what it publishes). Thinking tokens are billed as
output. A job that finally fails is not counted (its calls cost something too: the view is a floor).
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("model_prices.json")
KEPT_DAYS = 8
FIELDS = ("calls", "prompt_tokens", "output_tokens", "thinking_tokens")


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PRICES_FILE.read_text())
    return data


def prices() -> dict[str, dict[str, int]]:
    """Cents per million tokens, input and output, per model."""
    return {model: {k: int(v) for k, v in p.items()} for model, p in _table()["models"].items()}


def batch_mode_percent() -> int:
    """What Gemini's batch mode bills of the standard price (model_prices.json, its source there)."""
    return int(_table()["batch_mode_percent"])


def by_model(model: str, usage: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A job's usage as tokens per model: a plain job's flat usage is its model's; a pipeline's is
    per step, each naming its model."""
    if "prompt_tokens" in usage:
        return {model: {"calls": 1, **{k: int(usage.get(k, 0)) for k in FIELDS[1:]}}}
    found: dict[str, dict[str, int]] = {}
    for step in usage.values():
        if isinstance(step, dict) and step.get("model"):
            add(found, {str(step["model"]): {k: int(step.get(k, 0)) for k in FIELDS}})
    return found


def add(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Sum `more` (tokens per model) into `into`; returns it."""
    for model, counts in more.items():
        held = into.setdefault(model, dict.fromkeys(FIELDS, 0))
        for key in FIELDS:
            held[key] = int(held.get(key, 0)) + int(counts.get(key, 0))
    return into


def by_day(
    stored: dict[str, Any] | None, window: dict[str, dict[str, int]], now: dt.datetime
) -> dict[str, dict[str, dict[str, int]]]:
    """The pool's spend by UTC day with this window's added, the last KEPT_DAYS days kept."""
    days = {day: {m: dict(c) for m, c in models.items()} for day, models in (stored or {}).items()}
    today = now.astimezone(dt.UTC).date().isoformat()
    add(days.setdefault(today, {}), window)
    return {day: days[day] for day in sorted(days)[-KEPT_DAYS:]}


def cents(model: str, counts: dict[str, int], batch_mode: bool = False) -> float | None:
    """What the tokens cost in US cents at the published price, or batch mode's share of it (None
    for a model without one)."""
    price = prices().get(model)
    if price is None:
        return None
    output = int(counts.get("output_tokens", 0)) + int(counts.get("thinking_tokens", 0))
    full = (int(counts.get("prompt_tokens", 0)) * price["input"] + output * price["output"]) / 1e6
    return full * batch_mode_percent() / 100 if batch_mode else full


def by_tier_day(
    stored: dict[str, Any] | None, window: dict[str, dict[str, dict[str, int]]], now: dt.datetime
) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """Spend by UTC day and tier (`{day: {tier: {model: counts}}}`) with this window's added, the
    last KEPT_DAYS days kept."""
    days = {day: {t: {m: dict(c) for m, c in models.items()} for t, models in tiers.items()}
            for day, tiers in (stored or {}).items()}  # fmt: skip
    today = now.astimezone(dt.UTC).date().isoformat()
    for tier, models in window.items():
        add(days.setdefault(today, {}).setdefault(tier, {}), models)
    return {day: days[day] for day in sorted(days)[-KEPT_DAYS:]}


def usd_micros(tokens: dict[str, dict[str, int]], batch_mode: bool = False) -> int:
    """What one job's recorded tokens (model → counts) cost, in micro-USD at list prices (models
    without a price count nothing)."""
    return round(sum(cents(model, counts, batch_mode) or 0.0 for model, counts in tokens.items()) * 10_000)
