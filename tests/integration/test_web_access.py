"""The web app's accessibility in a real browser: both views driven from the keyboard alone, every
visible text checked against WCAG contrast, and a phone-sized screen."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from bench.web_bench import END_USER
from tests.integration.conftest import Tenant
from tests.integration.web_support import browser, page, photo, token

__all__ = ["browser", "page"]  # fixtures, used by name


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
    page.goto(f"{tenant.base}/app/#token={token(tenant, 'u-6', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    assert page.evaluate(_LOW_CONTRAST) == []
    passed = _tab_to(page, "photo")
    with page.expect_file_chooser(timeout=5_000) as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(photo(tmp_path)))
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
        phone.goto(f"{tenant.base}/app/#token={token(tenant, 'u-8', END_USER)}")
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
