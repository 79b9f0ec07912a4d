"""ARCHITECTURE.md's data model names exactly the fields of the stored documents' types: a field
added to a TypedDict and not to the doc (or the other way round) fails here."""

from __future__ import annotations

import re

import pytest

from lote.batches.documents import BatchDoc
from lote.jobs.documents import JobDoc
from lote.tenants.documents import TenantDoc
from lote.webhooks.documents import DeliveryDoc
from lote_local.config import REPO_ROOT


def _rows() -> dict[str, str]:
    """Each data-model row's collection cell → its fields cell."""
    rows = {}
    for line in (REPO_ROOT / "ARCHITECTURE.md").read_text().splitlines():
        if line.startswith("| `") and line.count(" | ") >= 2:
            cells = line.split(" | ")
            rows[cells[0].removeprefix("| ")] = cells[-1]
    return rows


def _named(cell: str) -> set[str]:
    """The top-level fields a row names: its backticked identifiers."""
    return set(re.findall(r"`([a-z_]+)`", cell))


@pytest.mark.parametrize(
    ("rows", "document"),
    [
        (("`jobs/{gen_…}`", "`jobs/{gen_…}` of a batch item"), JobDoc),
        (("`batches/{bat_…}`",), BatchDoc),
        (("`webhook_deliveries/{msg_…}`",), DeliveryDoc),
        (("`tenants/{ten_…}`",), TenantDoc),
    ],
)
def test_the_data_model_names_the_fields_of_each_document_type(rows: tuple[str, ...], document: type) -> None:
    found = _rows()
    named = set().union(*(_named(found[row]) for row in rows))
    fields = set(document.__required_keys__ | document.__optional_keys__)
    assert named == fields, {"only in ARCHITECTURE.md": named - fields, "only in the type": fields - named}
