// The partner operator's page: the API key stays in memory only and is used once, to mint a
// short-lived token with batch scopes; everything else goes with that token. Batch status is
// followed with ETag polling at the Retry-After the API gives.

import { Api, explain } from "./api.js";
import { line, stackedBars, table } from "./charts.js";
import { loadTimeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
// generations:read with batches:read opens the batch items' images (a token sees items of batches).
const SCOPES = ["batches:read", "batches:write", "generations:read", "webhooks:read", "webhooks:write", "account:read"];
const thumbnails = new Map(); // item id → object URL: each image is fetched once
let api = null;
let current = null; // the open batch's id
let timer = null;
let samples = []; // the open batch's finished items as the page saw them: [{at (ms, the API's clock), done}]
let skew = null; // the API's clock minus this device's (from the first answer's Date), ms
let shownItem = null; // the item whose timeline is shown: {id, status}
const STATUSES = ["succeeded", "failed", "canceled"];

export function startOperator(base, network, say) {
  $("operator").hidden = false;
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = new Api(base, $("apikey").value.trim(), network);
      $("apikey").value = "";
      const minted = await key.post("/v1/client-tokens", { subject: "operator", scopes: SCOPES, ttl_s: 3600 });
      api = new Api(base, minted.data.token, network);
      $("login").hidden = true;
      $("console").hidden = false;
      say("");
      await Promise.all([listBatches(say), listDeliveries(say), showUsage()]);
    } catch (error) {
      say(explain(error));
    }
  });
  $("retry").addEventListener("click", () => act(say, "retry", {}));
  $("cancel").addEventListener("click", () => act(say, "cancel"));
  $("results").addEventListener("click", () => download(say));
  $("filter").addEventListener("change", () => showItems(say));
  // On request, not on a timer: a list nobody is reading costs no requests.
  $("refresh").addEventListener("click", () => Promise.all([listBatches(say), listDeliveries(say), showUsage()])
    .catch((error) => say(explain(error))));
}

// Images per day by status (GET /v1/account/usage): a stacked bar chart and its table. A session
// without account:read is told why there is no chart.
async function showUsage() {
  let report;
  try {
    report = (await api.get("/v1/account/usage?group_by=status&granularity=day")).data;
  } catch (error) {
    if (error.status !== 403) throw error;
    $("usage").replaceChildren();
    $("usage-numbers").hidden = true;
    $("usage-note").hidden = false;
    $("usage-note").textContent = "This session may not read the account's usage (it needs the account:read scope), so there is no chart.";
    return;
  }
  $("usage-numbers").hidden = false;
  // Every day of the range, the ones nothing finished in included, so the bars sit on a calendar.
  const found = Object.fromEntries(report.periods.map((period) => [period.start.slice(0, 10),
    Object.fromEntries(period.rows.map((row) => [row.group, row.images]))]));
  const periods = [];
  for (let day = Date.parse(report.from.slice(0, 10)); day < Date.parse(report.to); day += 86400000) {
    const label = new Date(day).toISOString().slice(0, 10);
    periods.push({ label, values: found[label] || {} });
  }
  stackedBars($("usage"), periods, STATUSES, "Images per day by status");
  table($("usage-table"), ["Day", ...STATUSES, "Credits charged", "Credits refunded"], report.periods.map((period) => {
    const by = Object.fromEntries(period.rows.map((row) => [row.group, row]));
    const sum = (field) => period.rows.reduce((total, row) => total + row[field], 0);
    return [period.start.slice(0, 10), ...STATUSES.map((status) => by[status]?.images || 0), sum("charged"), sum("refunded")];
  }));
  $("usage-note").hidden = report.periods.length > 0;
  if (!report.periods.length) $("usage-note").textContent = "No image has finished in the last 30 days.";
}

async function listBatches(say) {
  const { data } = await api.get("/v1/batches");
  const rows = data.batches.map((batch) => {
    const row = document.createElement("tr");
    row.tabIndex = 0;
    row.dataset.id = batch.id;
    row.innerHTML = "<td></td><td></td><td><progress max='100'></progress></td><td></td><td></td>";
    row.cells[0].textContent = batch.id;
    row.cells[1].textContent = batch.status;
    row.cells[3].textContent = String(batch.total);
    row.cells[4].textContent = new Date(batch.created_at).toLocaleString();
    fillProgress(row, batch);
    const open = () => openBatch(batch.id, say);
    row.addEventListener("click", open);
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    return row;
  });
  $("batches").tBodies[0].replaceChildren(...rows);
}

// The list has no counts; a bar is filled from the batch's own status (final ones need no read).
async function fillProgress(row, batch) {
  const bar = row.cells[2].firstChild;
  let percent = batch.status === "completed" || batch.status === "canceled" ? 100 : 0;
  if (!percent) percent = (await api.get(`/v1/batches/${batch.id}`)).data.progress;
  bar.value = Math.round(percent);
  bar.setAttribute("aria-label", `${batch.id}: ${Math.round(percent)}%`);
}

async function openBatch(id, say) {
  if (current !== id) {
    samples = [];
    shownItem = null;
    $("item-title").hidden = true;
    $("item-timeline").hidden = true;
  }
  current = id;
  clearTimeout(timer);
  $("batch").hidden = false;
  $("batch-title").textContent = `Batch ${id}`;
  let etag = null;
  const poll = async () => {
    if (current !== id) return;
    try {
      const answer = await api.get(`/v1/batches/${id}`, { headers: etag ? { "If-None-Match": etag } : {} });
      const date = Date.parse(answer.headers.get("Date") || "");
      if (skew === null && !Number.isNaN(date)) skew = date + 500 - Date.now(); // Date is whole seconds
      if (answer.status !== 304) {
        etag = answer.headers.get("ETag");
        showBatch(answer.data);
        await showItems(say);
      }
      const after = Number(answer.headers.get("Retry-After"));
      if (after > 0) timer = setTimeout(poll, after * 1000); // none once the batch is final
      else listBatches(say);
    } catch (error) {
      say(explain(error));
    }
  };
  await poll();
}

function showBatch(batch) {
  const facts = {
    Status: batch.status, Priority: batch.priority, Items: batch.counts.total,
    Succeeded: batch.counts.succeeded, Failed: batch.counts.failed, Queued: batch.counts.queued,
    Running: batch.counts.running, Canceled: batch.counts.canceled,
    Throughput: batch.throughput_per_min != null ? `${batch.throughput_per_min.toFixed(0)} items/min` : "—",
    ETA: batch.eta ? new Date(batch.eta).toLocaleTimeString() : "—",
    "Waiting on the model": batch.waiting_on_model ? `yes (${batch.waiting_reason || "model_unavailable"})` : "no",
  };
  $("batch-facts").replaceChildren(...Object.entries(facts).flatMap(([name, value]) => [
    Object.assign(document.createElement("dt"), { textContent: name }),
    Object.assign(document.createElement("dd"), { textContent: String(value ?? "—") }),
  ]));
  $("batch-bar").value = Math.round(batch.progress);
  showThroughput(batch);
}

// Items finished per minute between the page's looks at the batch, since it was created.
function showThroughput(batch) {
  const done = STATUSES.reduce((sum, status) => sum + (batch.counts[status] || 0), 0);
  const created = Date.parse(batch.created_at);
  if (!samples.length) samples.push({ at: created, done: 0 });
  if (done !== samples.at(-1).done) samples.push({ at: Math.max(Date.now() + (skew || 0), samples.at(-1).at + 1), done });
  const points = samples.slice(1).map((sample, index) => ({
    x: (sample.at - created) / 1000,
    y: ((sample.done - samples[index].done) * 60000) / Math.max(1, sample.at - samples[index].at),
  }));
  line($("throughput"), [{ x: 0, y: 0 }, ...points], `Batch ${batch.id}: items finished per minute`, "items/min");
}

async function showItems(say) {
  if (!current) return;
  const status = $("filter").value;
  try {
    const { data } = await api.get(`/v1/batches/${current}/items?page_size=60${status ? `&status=${status}` : ""}`);
    $("grid").replaceChildren(...data.items.map((item) => {
      // The timeline shown follows its item to the end: read again when the item's status moves.
      if (shownItem && shownItem.id === item.id && shownItem.status !== item.status) showItemTimeline(item, say);
      const cell = document.createElement("li");
      if (item.output && item.output.url) {
        const image = Object.assign(document.createElement("img"), { alt: `${item.reference}, generated` });
        cell.append(image);
        thumbnail(item).then((url) => { image.src = url; }).catch(() => { image.alt = `${item.reference}: image unavailable`; });
      }
      cell.append(`${item.reference}: ${item.status}${item.error ? ` (${item.error.code})` : ""}`);
      const when = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Timeline" });
      when.addEventListener("click", () => showItemTimeline(item, say));
      cell.append(when);
      return cell;
    }));
  } catch (error) {
    say(explain(error));
  }
}

async function showItemTimeline(item, say) {
  shownItem = { id: item.id, status: item.status };
  try {
    $("item-title").hidden = false;
    $("item-title").textContent = `What happened to ${item.reference}`;
    await loadTimeline(api, item.id, $("item-timeline"));
  } catch (error) {
    say(explain(error));
  }
}

// The item's `output.url` answers (with the token) a redirect to a short-lived signed URL; the
// image is fetched once and kept for the page's life.
async function thumbnail(item) {
  if (!thumbnails.has(item.id)) {
    thumbnails.set(item.id, (async () => {
      const response = await api.request("GET", new URL(item.output.url).pathname);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return URL.createObjectURL(await response.blob());
    })());
  }
  return thumbnails.get(item.id);
}

async function act(say, action, body) {
  try {
    const { data } = await api.post(`/v1/batches/${current}/${action}`, body);
    say(action === "retry" ? `${data.retried} items queued again.` : "The batch was canceled.", true);
    await openBatch(current, say);
  } catch (error) {
    say(explain(error));
  }
}

async function download(say) {
  try {
    const response = await api.request("GET", `/v1/batches/${current}/results.jsonl`);
    if (!response.ok) throw new Error(`results.jsonl: HTTP ${response.status}`);
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(await response.blob()), download: `${current}.jsonl`,
    });
    link.click();
  } catch (error) {
    say(explain(error));
  }
}

async function listDeliveries(say) {
  const { data } = await api.get("/v1/webhooks/deliveries");
  $("deliveries").tBodies[0].replaceChildren(...data.deliveries.map((delivery) => {
    const row = document.createElement("tr");
    row.innerHTML = "<td></td><td></td><td></td><td><button type='button'>Redeliver</button></td>";
    row.cells[0].textContent = delivery.type;
    row.cells[1].textContent = delivery.status;
    row.cells[2].textContent = String(delivery.attempts.length);
    row.cells[3].firstChild.addEventListener("click", async () => {
      try {
        await api.post(`/v1/webhooks/deliveries/${delivery.id}/redeliver`);
        say("The event is being delivered again.", true);
        await listDeliveries(say);
      } catch (error) {
        say(explain(error));
      }
    });
    return row;
  }));
}
