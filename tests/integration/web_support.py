"""What the browser tests share: Debian's Chromium through Playwright, a page per test, a client
token for a tenant's end user, and a room photo."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from bench.web_bench import CHROMIUM, FLAGS
from tests.integration.conftest import Tenant


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for the module (the bench's settings: off Google's services)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page at a desktop size."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def token(tenant: Tenant, subject: str, scopes: list[str], **more: Any) -> str:
    """A client token the tenant's server would mint for `subject`."""
    answer = tenant.post("/v1/client-tokens", {"subject": subject, "scopes": scopes, **more})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def photo(tmp_path: Path) -> Path:
    """A 640x480 PNG room photo (a gradient) in `tmp_path`."""
    path = tmp_path / "room.png"
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path
