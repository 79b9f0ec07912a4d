"""The web app in a real browser (Debian's Chromium driven by Playwright) against the local stack:
the end user's flow to a finished image, errors shown in words, the operator following a batch.
Screenshots of both views go to .lote/screenshots/ (`make screenshots`: docs/screenshots/, the README's)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.web_bench import CHROMIUM, END_USER, FLAGS
from lote_local.config import REPO_ROOT
from tests.integration.conftest import Tenant

# `make screenshots` points this at docs/screenshots (the README's); a plain run keeps the tree clean.
SHOTS = Path(os.environ.get("LOTE_SCREENSHOTS_DIR") or REPO_ROOT / ".lote" / "screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def _token(tenant: Tenant, subject: str, scopes: list[str], **more: Any) -> str:
    answer = tenant.post("/v1/client-tokens", {"subject": subject, "scopes": scopes, **more})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "room.png"
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_an_end_user_stages_a_photo_and_sees_before_and_after(page: Page, tenant: Tenant, tmp_path: Path):
    page.goto(f"{tenant.base}/app/#token={_token(tenant, 'u-1', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.select_option("#preset", "virtual-staging")
    page.select_option("#param-style", "scandinavian")
    page.set_input_files("#photo", str(_photo(tmp_path)))
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("Your image is ready.", timeout=30_000)
    expect(page.locator("#after")).to_have_attribute("src", re.compile(r"^https?://.+"))
    assert page.eval_on_selector("#after", "img => img.complete && img.naturalWidth > 0")
    assert page.eval_on_selector("#before", "img => img.complete && img.naturalWidth > 0")
    assert "#token=" not in page.url  # the token left the address bar (and the history)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "end-user.png"), full_page=True)


def test_errors_are_shown_in_words(page: Page, tenant: Tenant, new_tenant, tmp_path: Path):
    page.goto(f"{tenant.base}/app/#token={_token(tenant, 'u-2', ['generations:read'])}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.set_input_files("#photo", str(_photo(tmp_path)))
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("This session may not do that.")
    forged = page.context.new_page()  # a new tab: a fragment change alone does not reload the page
    forged.goto(f"{tenant.base}/app/#token=eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    expect(forged.locator("#notice")).to_contain_text("This link is not valid")
    poor = new_tenant(credits=0)
    broke = page.context.new_page()
    broke.goto(f"{poor.base}/app/#token={_token(poor, 'u-7', END_USER)}")
    expect(broke.locator("#preset")).to_contain_text("virtual-staging")
    broke.set_input_files("#photo", str(_photo(tmp_path)))
    broke.click("#submit")
    expect(broke.locator("#notice")).to_have_text("Your account does not have enough credits for this image.")
    assert poor.get("/v1/account").json()["balance"] == 0  # nothing charged, nothing made


def test_an_operator_follows_a_batch_to_completion(page: Page, tenant: Tenant):
    items = [{"reference": f"room-{i:02d}", "prompt": f"stage room {i}"} for i in range(24)]
    batch = tenant.post("/v1/batches", {"items": items, "priority": "express"}).json()
    page.goto(f"{tenant.base}/app/")
    page.fill("#apikey", tenant.api_key)
    page.click("#login button")
    row = page.locator(f"#batches tr[data-id='{batch['id']}']")
    expect(row).to_be_visible()
    row.click()
    facts = page.locator("#batch-facts")
    expect(facts).to_contain_text("completed", timeout=60_000)
    expect(facts).to_contain_text("Succeeded24")  # dt and dd, side by side
    expect(page.locator("#grid li img")).to_have_count(24)
    page.select_option("#filter", "failed")
    expect(page.locator("#grid li")).to_have_count(0)
    assert page.eval_on_selector("#apikey", "input => input.value") == ""  # not kept in the form
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.select_option("#filter", "")
    expect(page.locator("#grid li img")).to_have_count(24)
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(SHOTS / "operator.png"), full_page=True)


@pytest.fixture
def second_origin() -> Iterator[str]:
    """The same static files served from another origin (http://localhost:PORT), as a partner's site."""
    import functools
    import http.server
    import threading

    from lote.api.app_routes import STATIC

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


def test_a_page_on_the_partners_site_works_only_once_allowed(
    page: Page, tenant: Tenant, stack, second_origin: str
):
    from tests.integration.test_client_tokens import allow_origins

    url = f"{second_origin}/index.html#token={_token(tenant, 'u-3', END_USER)}&api={tenant.base}"
    page.goto(url)
    expect(page.locator("#notice")).to_have_text("This site is not allowed to use the service.")
    allow_origins(stack, tenant, [second_origin])
    other = page.context.new_page()
    other.goto(f"{second_origin}/index.html#token={_token(tenant, 'u-3', END_USER)}&api={tenant.base}")
    expect(other.locator("#preset")).to_contain_text("virtual-staging")
    expect(other.locator("#notice")).to_be_hidden()


def test_an_expired_session_and_another_users_job_are_explained(page: Page, tenant: Tenant, stack):
    import dataclasses
    import datetime as dt

    from lote.access import tokens

    keys, api = {"local-1": stack.client_token_key}, tenant.base
    claims = tokens.verify(keys, _token(tenant, "u-4", END_USER), api, dt.datetime.now(dt.UTC))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = tokens.sign(keys, dataclasses.replace(claims, expires_at=past), api, past)
    page.goto(f"{tenant.base}/app/#token={expired}")
    expect(page.locator("#notice")).to_contain_text("Your session has expired")
    # Bob's tab holding Alice's job id (a tampered sessionStorage) gets nothing of hers.
    alice = _token(tenant, "alice", END_USER)
    job = tenant.http.post(f"{tenant.base}/v1/generations", json={"prompt": "alice's room"},
                           headers={"Authorization": f"Bearer {alice}"}).json()  # fmt: skip
    bob = page.context.new_page()
    bob.goto(f"{tenant.base}/app/#token={_token(tenant, 'bob', END_USER)}")
    expect(bob.locator("#preset")).to_contain_text("virtual-staging")
    bob.evaluate("id => sessionStorage.setItem('lote.job', JSON.stringify({id, before: ''}))", job["id"])
    bob.reload()
    expect(bob.locator("#notice")).to_have_text("This image is not available in this session.")
    expect(bob.locator("#after")).not_to_have_attribute("src", re.compile(".+"))
    tenant.wait(job["id"])


def test_an_operator_retries_failed_items_and_cancels_a_batch(page: Page, tenant: Tenant):
    items = [{"reference": f"f{i}", "prompt": f"broken {i} [[fault=500]]"} for i in range(3)]
    failing = tenant.post("/v1/batches", {"items": items}).json()
    page.goto(f"{tenant.base}/app/")
    page.fill("#apikey", tenant.api_key)
    page.click("#login button")
    page.locator(f"#batches tr[data-id='{failing['id']}']").click()
    expect(page.locator("#batch-facts")).to_contain_text("Failed3", timeout=60_000)
    page.click("#retry")
    expect(page.locator("#notice")).to_have_text("3 items queued again.")
    expect(page.locator("#batch-facts")).to_contain_text("Failed3", timeout=60_000)  # they fail again
    # Long enough to be running when canceled (under the model timeout: nothing fails), made now so
    # its calls do not share windows with the failing ones (the breaker judges windows).
    slow = [{"reference": f"s{i}", "prompt": f"slow {i} [[latency=2000]]"} for i in range(200)]
    long = tenant.post("/v1/batches", {"items": slow}).json()
    page.click("#refresh")
    page.locator(f"#batches tr[data-id='{long['id']}']").click()
    expect(page.locator("#batch-title")).to_contain_text(long["id"])
    page.click("#cancel")
    expect(page.locator("#notice")).to_have_text("The batch was canceled.")
    expect(page.locator("#batch-facts")).to_contain_text("canceled", timeout=60_000)


def test_an_operator_redelivers_a_webhook_event(page: Page, tenant: Tenant, target):
    job = tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url + "/hook"}).json()
    first = target.wait_for(1)[0]
    page.goto(f"{tenant.base}/app/")
    page.fill("#apikey", tenant.api_key)
    page.click("#login button")
    row = page.locator("#deliveries tbody tr").filter(has_text="generation.succeeded")
    expect(row).to_contain_text("delivered")
    row.get_by_role("button", name="Redeliver").click()
    expect(page.locator("#notice")).to_have_text("The event is being delivered again.")
    again = target.wait_for(2)[1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"] and tenant.wait(job["id"])


def test_a_lost_network_is_announced_and_the_page_carries_on(page: Page, tenant: Tenant, tmp_path: Path):
    page.goto(f"{tenant.base}/app/#token={_token(tenant, 'u-5', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.set_input_files("#photo", str(_photo(tmp_path)))
    page.context.set_offline(True)
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("The network connection was lost; retrying…")
    page.context.set_offline(False)
    expect(page.locator("#notice")).to_have_text("Your image is ready.", timeout=60_000)


# Every element with text of its own, visible, whose WCAG 2 contrast against the first opaque
# background behind it is under 4.5:1 (3:1 for large text).
_LOW_CONTRAST = """() => {
  const rgb = (c) => { const p = c.match(/[\\d.]+/g).map(Number); return { v: p.slice(0, 3), a: p[3] ?? 1 }; };
  const lum = ({ v }) => v.map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, x, i) => sum + x * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.a > 0) return c; } return { v: [255, 255, 255], a: 1 }; };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility() || el.tagName === "OPTION") continue;
    const style = getComputedStyle(el);
    const [hi, lo] = [lum(rgb(style.color)), lum(behind(el))].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) low.push(`${el.tagName}#${el.id} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""

# The control that has the focus, and the name a screen reader would give it.
_FOCUSED = """() => { const el = document.activeElement;
  const name = (el.labels && el.labels.length ? el.labels[0].textContent : "") || el.getAttribute("aria-label")
    || el.textContent || "";
  return { id: el.id, tag: el.tagName, name: name.trim() }; }"""


def _tab_to(page: Page, element_id: str, limit: int = 30) -> list[dict[str, str]]:
    """Press Tab until `element_id` has the focus; every control passed on the way (all named)."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        passed.append(focused)
        if focused["id"] == element_id:
            return passed
    raise AssertionError(f"Tab never reached #{element_id}: {passed}")


def test_the_end_user_flow_works_from_the_keyboard_and_reads_clearly(
    page: Page, tenant: Tenant, tmp_path: Path
):
    # A listener from the start turns on Playwright's chooser interception well before the key:
    # turned on by expect_file_chooser itself, it raced the key press (a real dialog, no event).
    page.on("filechooser", lambda _: None)
    page.goto(f"{tenant.base}/app/#token={_token(tenant, 'u-6', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    assert page.evaluate(_LOW_CONTRAST) == []
    passed = _tab_to(page, "photo")
    with page.expect_file_chooser(timeout=5_000) as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(_photo(tmp_path)))
    passed += _tab_to(page, "submit")
    assert [p["id"] for p in passed if p["name"] == ""] == []  # every control on the way has a name
    assert {"drop", "photo", "preset", "submit"} <= {p["id"] for p in passed}
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_have_text("Your image is ready.", timeout=30_000)
    assert _tab_to(page, "download")[-1]["name"] == "Download the image"
    assert page.evaluate(_LOW_CONTRAST) == []  # the result, the notice and its buttons too


def test_the_operator_view_works_from_the_keyboard_and_reads_clearly(page: Page, tenant: Tenant):
    batch = tenant.post("/v1/batches", {"items": [{"reference": "k", "prompt": "keyboard"}]}).json()
    page.goto(f"{tenant.base}/app/")
    assert page.evaluate(_LOW_CONTRAST) == []
    _tab_to(page, "apikey")
    page.keyboard.type(tenant.api_key)
    page.keyboard.press("Enter")
    row = page.locator(f"#batches tr[data-id='{batch['id']}']")
    expect(row).to_be_visible()
    row.focus()  # rows are in the Tab order (tabindex) and open with Enter
    assert page.evaluate("() => document.activeElement.tabIndex") == 0
    page.keyboard.press("Enter")
    expect(page.locator("#batch-facts")).to_contain_text("completed", timeout=30_000)
    passed = _tab_to(page, "results")
    assert [p["id"] or p["tag"] for p in passed if p["name"] == ""] == []
    assert page.evaluate(_LOW_CONTRAST) == []


def test_both_views_fit_a_phone_screen(browser: Browser, tenant: Tenant):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
        phone.goto(f"{tenant.base}/app/#token={_token(tenant, 'u-8', END_USER)}")
        expect(phone.locator("#preset")).to_contain_text("virtual-staging")
        assert phone.evaluate(overflow) <= 0  # nothing to scroll sideways
        batch = tenant.post("/v1/batches", {"items": [{"reference": "phone", "prompt": "small"}]}).json()
        operator = context.new_page()
        operator.goto(f"{tenant.base}/app/")
        operator.fill("#apikey", tenant.api_key)
        operator.click("#login button")
        operator.locator(f"#batches tr[data-id='{batch['id']}']").click()
        expect(operator.locator("#batch-facts")).to_contain_text("completed", timeout=30_000)
        assert operator.evaluate(overflow) <= 0
    finally:
        context.close()
