"""The web app (issue 14) in Debian's Chromium: page weight, time from submit to the image shown,
and how light the operator page is on the API while it watches a 500-item batch (every request in
the network log, and whether each poll waited the Retry-After its previous answer gave)."""

from __future__ import annotations

import io
import itertools
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import requests
from PIL import Image
from playwright.sync_api import Browser, Request, Response, sync_playwright

from bench.common import Bench, running
from lote_local.config import REPO_ROOT

QUEUES = REPO_ROOT / "bench" / "queue-bench.yaml"
CHROMIUM = "/usr/bin/chromium"  # Debian's (Playwright's own download needs a CDN); the tests use these too
# Without these, Chromium keeps calling Google's services, which this machine's network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
RUNS = 5
BATCH_ITEMS = 500
END_USER = ["generations:create", "generations:read", "uploads:create"]


def _token(bench: Bench, api: str, subject: str) -> str:
    answer = requests.post(f"{api}/v1/client-tokens", json={"subject": subject, "scopes": END_USER}, timeout=30,
                           headers={"Authorization": f"Bearer {bench.api_key}"})  # fmt: skip
    answer.raise_for_status()
    return str(answer.json()["token"])


def _photo(folder: Path) -> Path:
    """A 1600×1200 JPEG, the size of a listing photo."""
    path = folder / "room.jpg"
    image = Image.effect_noise((1600, 1200), 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


def end_user(browser: Browser, bench: Bench, api: str, photo: Path) -> dict[str, Any]:
    """One end user: the page's weight on load, then submit → the image shown, and the API calls."""
    context = browser.new_context()
    page = context.new_page()
    finished: list[Request] = []
    page.on("requestfinished", lambda request: finished.append(request))
    page.goto(f"{api}/app/#token={_token(bench, api, f'user-{time.monotonic_ns()}')}")
    page.wait_for_selector("#preset option", state="attached")
    sizes = [request.sizes() for request in finished]
    weight = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes)
    loaded = len(finished)
    page.set_input_files("#photo", str(photo))
    started = time.perf_counter()
    page.click("#submit")
    page.wait_for_function("() => { const i = document.querySelector('#after'); "
                           "return !document.querySelector('#result').hidden && i.complete && i.naturalWidth > 0; }",
                           timeout=60_000)  # fmt: skip
    shown = time.perf_counter() - started
    calls = [r for r in finished[loaded:] if r.url.startswith(api + "/v1/")]
    context.close()
    return {"weight": weight, "files": loaded, "shown_s": shown, "api_calls": len(calls)}


def operator(browser: Browser, bench: Bench, api: str) -> dict[str, Any]:
    """The operator page watching a 500-item batch from submission to completion."""
    items = [{"reference": f"room-{i:03d}", "prompt": f"stage room {i}"} for i in range(BATCH_ITEMS)]
    batch = requests.post(f"{api}/v1/batches", json={"items": items}, timeout=60,
                          headers={"Authorization": f"Bearer {bench.api_key}"}).json()  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    log: list[tuple[float, str, int, str | None, float]] = []  # answered, url, status, Retry-After, sent
    sent: dict[Request, float] = {}
    page.on("request", lambda request: sent.__setitem__(request, time.monotonic()))

    def record(response: Response) -> None:
        at = time.monotonic()
        log.append((at, response.url, response.status, response.headers.get("retry-after"),
                    sent.get(response.request, at)))  # fmt: skip

    page.on("response", record)
    page.goto(f"{api}/app/")
    page.fill("#apikey", bench.api_key)
    page.click("#login button")
    started = time.monotonic()
    page.locator(f"#batches tr[data-id='{batch['id']}']").click()
    page.locator("#batch-facts").filter(has_text="completed").wait_for(timeout=300_000)
    watched = time.monotonic() - started
    context.close()
    to_api = [entry for entry in log if entry[1].startswith(api + "/v1/")]
    polls = sorted((e for e in to_api if e[1].endswith(f"/v1/batches/{batch['id']}")), key=lambda e: e[4])
    # A poll is early when it was sent before the Retry-After of the answer before it had passed (or
    # while that one was still under way: a duplicate).
    early = sum(1 for before, after in itertools.pairwise(polls)
                if before[3] and after[4] - before[0] < float(before[3]) - 0.05)  # fmt: skip
    to_api = [entry for entry in to_api if entry[4] >= started]
    return {
        "watched_s": watched,
        "api_requests": len(to_api),
        "per_min": 60 * len(to_api) / watched,
        "polls": len(polls),
        "early_polls": early,
        "statuses": sorted({e[2] for e in to_api}),
        "thumbnails": sum(1 for e in to_api if e[1].endswith("/output")),
        "item_pages": sum(1 for e in to_api if "/items" in e[1]),
    }


def run() -> str:
    """Markdown section with the measurements."""
    with TemporaryDirectory() as tmp, sync_playwright() as playwright:
        photo = _photo(Path(tmp))
        kb = photo_kb(photo)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        with running(
            queue_yaml=QUEUES, model_latency_ms=1000, function_threads=40, model_long_edge=1024
        ) as bench:
            api = bench.stack.url(bench.stack.config.api_port)
            users = [end_user(browser, bench, api, photo) for _ in range(RUNS)]
            watch = operator(browser, bench, api)
        browser.close()
    weight = statistics.median(u["weight"] for u in users)
    shown = statistics.median(u["shown_s"] for u in users)
    return "\n".join([
        "## The web app (issue 14)",
        "",
        "Debian's Chromium driven by Playwright against the local stack; offline model at 1 s latency, 1024 px "
        f"outputs; a 1600×1200 JPEG photo ({kb} KB).",
        "",
        "| measurement | result |",
        "|---|---:|",
        f"| end user's page weight on load (HTML, JS, CSS, presets; bodies + headers), median of {RUNS} | "
        f"**{weight / 1024:.1f} KB** in {users[0]['files']} requests |",
        f"| submit → the finished image shown (upload, POST with `Prefer: wait=2`, GETs with `wait=30`), median | "
        f"**{shown:.2f} s** (min {min(u['shown_s'] for u in users):.2f}, max {max(u['shown_s'] for u in users):.2f}) |",
        f"| API requests per image after submit (upload URL, POST, GETs held by `wait`), median | "
        f"{statistics.median(u['api_calls'] for u in users):.0f} |",
        f"| operator page watching a {BATCH_ITEMS}-item batch to completion | {watch['watched_s']:.0f} s |",
        f"| its API requests | **{watch['api_requests']}** = **{watch['per_min']:.0f} per minute** ({watch['polls']} "
        f"status polls, {watch['item_pages']} item pages, {watch['thumbnails']} thumbnails, each fetched once) |",
        f"| polls sent before the Retry-After of the answer before them | **{watch['early_polls']}** |",
        f"| statuses the page received | {', '.join(map(str, watch['statuses']))} |",
        "",
    ])  # fmt: skip


def photo_kb(photo: Path) -> int:
    """The photo's size in KB."""
    return round(photo.stat().st_size / 1024)
