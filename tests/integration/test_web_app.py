"""The web app in a real browser (Debian's Chromium driven by Playwright) against the local stack:
the end user's flow to a finished image, errors shown in words, the operator following a batch.
Screenshots of both views go to .lote/screenshots/ (`make screenshots`: docs/screenshots/, the README's)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.web_bench import END_USER
from lote_local.config import REPO_ROOT
from tests.integration.conftest import Tenant
from tests.integration.web_support import browser, page, photo, token

__all__ = ["browser", "page"]  # fixtures, used by name

# `make screenshots` points this at docs/screenshots (the README's); a plain run keeps the tree clean.
SHOTS = Path(os.environ.get("LOTE_SCREENSHOTS_DIR") or REPO_ROOT / ".lote" / "screenshots")


def test_an_end_user_stages_a_photo_and_sees_before_and_after(page: Page, tenant: Tenant, tmp_path: Path):
    page.goto(f"{tenant.base}/app/#token={token(tenant, 'u-1', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.select_option("#preset", "virtual-staging")
    page.select_option("#param-style", "scandinavian")
    expect(page.locator("#param-room_type")).to_have_value("auto")  # the photo's analysis says
    page.set_input_files("#photo", str(photo(tmp_path)))
    # The timeline the page reads once the image is final (the same answer the list is drawn from).
    with page.expect_response(lambda answer: "include=timeline" in answer.url, timeout=60_000) as read:
        page.click("#submit")
    expect(page.locator("#notice")).to_have_text("Your image is ready.", timeout=30_000)
    expect(page.locator("#quality")).to_contain_text("Quality check passed")  # analyzed, staged, verified
    expect(page.locator("#after")).to_have_attribute("src", re.compile(r"^https?://.+"))
    assert page.eval_on_selector("#after", "img => img.complete && img.naturalWidth > 0")
    assert page.eval_on_selector("#before", "img => img.complete && img.naturalWidth > 0")
    assert "#token=" not in page.url  # the token left the address bar (and the history)
    # What happened, in order: accepted, the attempt, finished (times since acceptance), in a named list.
    timeline = read.value.json()["timeline"]
    events = [moment["event"] for moment in timeline]
    assert events[0] == "accepted" and events[-1] == "finished", events
    assert events.index("attempt_started") < events.index("attempt_ended") < events.index("finished"), events
    listed = page.get_by_test_id("timeline")
    expect(page.get_by_role("list", name="What happened to this image")).to_be_visible()
    moments = listed.locator("li")
    expect(moments).to_have_count(len(events))
    assert moments.evaluate_all("items => items.map(i => i.dataset.event)") == events
    expect(moments.first.locator("time")).to_have_text("+0.0 s")
    expect(moments.locator("time")).to_have_text([re.compile(r"^\+\d+\.\d s$")] * len(events))
    ended = next(moment for moment in timeline if moment["event"] == "attempt_ended")
    shown = listed.locator("li[data-event='attempt_ended']").first
    number = f" (attempt {ended['attempt']})" if ended["attempt"] else ""
    expect(shown).to_contain_text(f"Attempt ended{number}: {ended['detail']['end']}")
    if ended["detail"].get("model_ms"):
        expect(shown).to_contain_text(f"model {ended['detail']['model_ms']} ms")
    expect(listed.locator("li[data-event='finished']")).to_have_text(re.compile(r"Finished: succeeded$"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "end-user.png"), full_page=True)


def test_errors_are_shown_in_words(page: Page, tenant: Tenant, new_tenant, tmp_path: Path):
    page.goto(f"{tenant.base}/app/#token={token(tenant, 'u-2', ['generations:read'])}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.set_input_files("#photo", str(photo(tmp_path)))
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("This session may not do that.")
    forged = page.context.new_page()  # a new tab: a fragment change alone does not reload the page
    forged.goto(f"{tenant.base}/app/#token=eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    expect(forged.locator("#notice")).to_contain_text("This link is not valid")
    poor = new_tenant(credits=0)
    broke = page.context.new_page()
    broke.goto(f"{poor.base}/app/#token={token(poor, 'u-7', END_USER)}")
    expect(broke.locator("#preset")).to_contain_text("virtual-staging")
    broke.set_input_files("#photo", str(photo(tmp_path)))
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
    # Its throughput as the page saw it: items finished per minute, from its creation to its end.
    throughput = page.get_by_test_id("throughput-chart")
    expect(throughput.locator("svg")).to_have_attribute(
        "aria-label", f"Batch {batch['id']}: items finished per minute"
    )
    expect(throughput.locator("svg path")).to_have_count(1)
    assert int(throughput.locator("svg path").get_attribute("data-points") or 0) >= 2  # the start and a look
    # An item's life, on request.
    page.locator("#grid li button.link").first.click()
    moments = page.get_by_test_id("item-timeline").locator("li")
    expect(moments.last).to_have_attribute("data-event", "finished")
    expect(moments.first).to_have_attribute("data-event", "accepted")
    expect(page.get_by_role("list", name=re.compile(r"^What happened to room-\d\d$"))).to_be_visible()
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


def test_the_operator_sees_images_per_day_by_status_as_the_usage_report(page: Page, tenant: Tenant):
    made = [
        tenant.post("/v1/generations", {"prompt": f"a lamp {n}", "reuse": False}).json()["id"]
        for n in range(3)
    ]
    made.append(tenant.post("/v1/generations", {"prompt": "broken [[fault=invalid]]"}).json()["id"])
    assert [tenant.wait(job_id)["status"] for job_id in made] == ["succeeded"] * 3 + ["failed"]
    answer = tenant.get("/v1/account/usage", params={"group_by": "status", "granularity": "day"})
    assert answer.status_code == 200, answer.text
    usage = answer.json()
    assert sum(row["images"] for period in usage["periods"] for row in period["rows"]) == 4, usage
    page.goto(f"{tenant.base}/app/")
    page.fill("#apikey", tenant.api_key)
    page.click("#login button")
    chart = page.get_by_test_id("usage-chart")
    expect(chart.locator("svg")).to_have_attribute("aria-label", "Images per day by status")
    # One group of bars per day something finished in; a bar per status, as tall as its images.
    expect(chart.locator("svg g[data-period]:has(rect)")).to_have_count(len(usage["periods"]))
    for period in usage["periods"]:
        day = chart.locator(f"svg g[data-period='{period['start'][:10]}']")
        expect(day.locator("rect")).to_have_count(len([row for row in period["rows"] if row["images"]]))
        for row in period["rows"]:
            if row["images"]:
                expect(day.locator(f"rect[data-key='{row['group']}']")).to_have_attribute(
                    "data-value", str(row["images"])
                )
    expect(page.locator(".legend")).to_contain_text("succeeded")
    # The same numbers in the table, a row per day.
    page.locator("#usage-numbers summary").click()
    numbers = page.get_by_test_id("usage-table")
    expect(numbers).to_be_visible()
    expect(numbers.locator("thead th")).to_have_text(
        ["Day", "succeeded", "failed", "canceled", "Credits charged", "Credits refunded"]
    )
    rows = numbers.locator("tbody tr")
    expect(rows).to_have_count(len(usage["periods"]))
    for index, period in enumerate(usage["periods"]):
        by = {row["group"]: row["images"] for row in period["rows"]}
        cells = [
            period["start"][:10],
            *(str(by.get(status, 0)) for status in ("succeeded", "failed", "canceled")),
        ]
        cells += [str(sum(row[field] for row in period["rows"])) for field in ("charged", "refunded")]
        expect(rows.nth(index).locator("td")).to_have_text(cells)
    expect(page.get_by_test_id("usage-note")).to_be_hidden()


def test_a_session_without_account_read_is_told_why_there_is_no_chart(page: Page, tenant: Tenant):
    refused = {"error": {"code": "insufficient_scope", "message": "account:read is needed", "details": {}}}
    page.route(re.compile(r"/v1/account/usage\?"), lambda route: route.fulfill(status=403, json=refused))
    page.goto(f"{tenant.base}/app/")
    page.fill("#apikey", tenant.api_key)
    page.click("#login button")
    expect(page.get_by_test_id("usage-note")).to_contain_text("account:read")
    expect(page.get_by_test_id("usage-chart").locator("svg")).to_have_count(0)
    expect(page.get_by_test_id("usage-table")).to_be_hidden()
    expect(page.locator("#notice")).to_be_hidden()  # the rest of the page is there
    expect(page.locator("#batches")).to_be_visible()


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

    url = f"{second_origin}/index.html#token={token(tenant, 'u-3', END_USER)}&api={tenant.base}"
    page.goto(url)
    expect(page.locator("#notice")).to_have_text("This site is not allowed to use the service.")
    allow_origins(stack, tenant, [second_origin])
    other = page.context.new_page()
    other.goto(f"{second_origin}/index.html#token={token(tenant, 'u-3', END_USER)}&api={tenant.base}")
    expect(other.locator("#preset")).to_contain_text("virtual-staging")
    expect(other.locator("#notice")).to_be_hidden()


def test_an_expired_session_and_another_users_job_are_explained(page: Page, tenant: Tenant, stack):
    import dataclasses
    import datetime as dt

    from lote.access import tokens

    keys, api = {"local-1": stack.client_token_key}, tenant.base
    claims = tokens.verify(keys, token(tenant, "u-4", END_USER), api, dt.datetime.now(dt.UTC))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = tokens.sign(keys, dataclasses.replace(claims, expires_at=past), api, past)
    page.goto(f"{tenant.base}/app/#token={expired}")
    expect(page.locator("#notice")).to_contain_text("Your session has expired")
    # Bob's tab holding Alice's job id (a tampered sessionStorage) gets nothing of hers.
    alice = token(tenant, "alice", END_USER)
    job = tenant.http.post(f"{tenant.base}/v1/generations", json={"prompt": "alice's room"},
                           headers={"Authorization": f"Bearer {alice}"}).json()  # fmt: skip
    bob = page.context.new_page()
    bob.goto(f"{tenant.base}/app/#token={token(tenant, 'bob', END_USER)}")
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
    page.goto(f"{tenant.base}/app/#token={token(tenant, 'u-5', END_USER)}")
    expect(page.locator("#preset")).to_contain_text("virtual-staging")
    page.set_input_files("#photo", str(photo(tmp_path)))
    page.context.set_offline(True)
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("The network connection was lost; retrying…")
    page.context.set_offline(False)
    expect(page.locator("#notice")).to_have_text("Your image is ready.", timeout=60_000)
