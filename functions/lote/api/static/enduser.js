// The end user's page: a photo, a preset, live progress (Prefer: wait), before/after, download.
// The job in progress is remembered for this tab, so a reload resumes it.

import { ApiError, explain } from "./api.js";
import { loadTimeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const KEY = "lote.job";
const TYPES = ["image/png", "image/jpeg", "image/webp"];
const MAX_BYTES = 10 * 1024 * 1024;

export async function startEndUser(api, say) {
  $("enduser").hidden = false;
  const { data } = await api.get("/v1/presets");
  const presets = Object.fromEntries(data.presets.map((p) => [p.name, p]));
  for (const preset of data.presets) $("preset").add(new Option(`${preset.name} (${preset.price} credits)`, preset.name));
  $("preset").addEventListener("change", () => showParams(presets[$("preset").value]));
  showParams(data.presets[0]);
  wireDrop();
  $("create").addEventListener("submit", (event) => {
    event.preventDefault();
    submit(api, say).catch((error) => fail(say, error));
  });
  $("again").addEventListener("click", () => reset());
  const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
  if (saved) follow(api, say, saved.id, saved.before).catch((error) => fail(say, error));
}

function showParams(preset) {
  $("preset-help").textContent = preset ? preset.description : "";
  const box = $("params");
  box.replaceChildren(Object.assign(document.createElement("legend"), { textContent: "Parameters" }));
  for (const param of preset ? preset.params : []) {
    const id = `param-${param.name}`;
    box.append(Object.assign(document.createElement("label"), { htmlFor: id, textContent: param.name.replace(/_/g, " ") }));
    let field;
    if (param.choices) {
      field = document.createElement("select");
      for (const choice of param.choices) {
        // `auto`: the photo's analysis picks the value (param.auto_from says from what).
        const label = choice === "auto" && param.auto_from ? "detect from the photo" : choice;
        field.add(new Option(label, choice, false, choice === param.default));
      }
    } else {
      field = Object.assign(document.createElement("input"), { type: "text", value: param.default || "" });
    }
    Object.assign(field, { id, name: param.name, required: param.required });
    box.append(field);
  }
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) $("photo").files = event.dataTransfer.files;
  });
  // The zone itself opens the chooser from the keyboard; a key on the file input inside it is the
  // input's own (the zone answering it too asked for a second chooser).
  drop.addEventListener("keydown", (event) => {
    if (event.target === drop && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); $("photo").click(); }
  });
}

async function submit(api, say) {
  const file = $("photo").files[0];
  if (!file) throw new Error("Choose a photo first.");
  if (!TYPES.includes(file.type)) throw new Error("This file is not a PNG, JPEG or WebP photo.");
  if (file.size > MAX_BYTES) throw new Error("This photo is larger than 10 MB.");
  say("");
  hideHistory();
  $("submit").disabled = true;
  try {
    const status = (text) => { $("progress").hidden = false; $("status").textContent = text; };
    status("Uploading your photo…");
    const upload = (await api.post("/v1/uploads", { content_type: file.type, max_bytes: MAX_BYTES })).data;
    let put;
    try {
      put = await fetch(upload.upload_url, { method: "PUT", headers: upload.headers, body: file });
    } catch {
      throw new Error("The photo could not be uploaded: the network or the storage service did not answer. Try again.");
    }
    if (!put.ok) throw new Error(`The photo could not be uploaded (HTTP ${put.status}). Try again.`);
    const params = Object.fromEntries([...$("params").querySelectorAll("select, input")].map((f) => [f.name, f.value]));
    status("Sending…");
    const created = await api.post("/v1/generations", { preset: $("preset").value, params, images: [upload.gs_uri] }, { wait: 2 });
    const before = await thumbnail(file);
    sessionStorage.setItem(KEY, JSON.stringify({ id: created.data.id, before }));
    await follow(api, say, created.data.id, before, created.status === 200 ? created.data : null);
  } finally {
    $("submit").disabled = false;
  }
}

async function follow(api, say, id, before, known) {
  $("create").hidden = true;
  $("progress").hidden = false;
  const started = Date.now();
  let job = known;
  // The server's clock minus this device's (from the answers' Date): `eta` is the server's time.
  let skew = 0;
  // Once a second, from what the last answer said: no request of its own.
  const tick = setInterval(() => showTime(job, started, skew), 1000);
  let etag = null;
  try {
    while (!job || !["succeeded", "failed", "canceled"].includes(job.status)) {
      // Held up to 30 s until the job changes: one request per change, not a polling storm.
      const answer = await api.get(`/v1/generations/${id}`, { wait: 30, headers: etag ? { "If-None-Match": etag } : {} });
      if (answer.status !== 304) { job = answer.data; etag = answer.headers.get("ETag"); }
      const date = Date.parse(answer.headers.get("Date") || "");
      if (!Number.isNaN(date)) skew = date - Date.now();
      showStatus(job);
      showTime(job, started, skew);
    }
  } finally {
    clearInterval(tick);
  }
  sessionStorage.removeItem(KEY);
  showHistory(api, id);
  if (job.status !== "succeeded") {
    $("progress").hidden = true;
    $("create").hidden = false;
    const error = job.error || {};
    throw new ApiError(200, error.code || job.status, error.message || `The image was ${job.status}.`, { refunded: true });
  }
  $("progress").hidden = true;
  $("result").hidden = false;
  $("before").src = before || "";
  $("after").src = job.output.url;
  $("download").href = job.output.url;
  showQuality(job.quality);
  say("Your image is ready.", true);
}

// What happened to a finished image (made, failed or canceled), from acceptance to the end; a
// page that cannot read it just shows none.
function showHistory(api, id) {
  hideHistory();
  $("history").dataset.id = id;
  loadTimeline(api, id, $("timeline")).then(() => { $("history").hidden = $("history").dataset.id !== id; }).catch(() => {});
}

function hideHistory() {
  $("history").hidden = true;
  $("history").dataset.id = ""; // an answer still on its way is not shown
}

// What the verifier concluded, in words: nothing when the image was not verified.
function showQuality(quality) {
  const line = $("quality");
  line.hidden = !quality;
  if (!quality) return;
  const tries = quality.regenerations ? ` after ${quality.regenerations + 1} tries` : "";
  if (quality.passed) {
    line.textContent = `Quality check passed: score ${quality.score.toFixed(2)}${tries}.`;
  } else if (quality.score === null || quality.score === undefined) {
    line.textContent = "Not checked: the quality check was unavailable. Look closely before you use it.";
  } else {
    const failed = quality.checks.filter((check) => !check.passed).map((check) => check.name.replace(/_/g, " "));
    line.textContent = `The quality check found problems${tries}: ${failed.join(", ") || "a low score"}. Look closely before you use it.`;
  }
}

// A small JPEG of the photo, kept with the job in this tab so a reload can still show "before".
async function thumbnail(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 640 / Math.max(bitmap.width, bitmap.height));
  const canvas = Object.assign(document.createElement("canvas"), {
    width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale),
  });
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.8);
}

function showStatus(job) {
  const words = { queued: "Waiting for the model…", running: "Generating your image…" };
  let text = words[job.status] || job.status;
  // The end user's words: operator trouble (a key, billing, the day's quota) is the service's to fix.
  if (job.waiting_on_model) text = job.waiting_reason && job.waiting_reason !== "model_unavailable"
    ? "The image service is paused on our side; your image will continue as soon as it is back."
    : "The model is unavailable right now; your image will continue as soon as it is back.";
  $("status").textContent = text;
}

// Elapsed time and, from the API's `eta`, the time left; the bar fills toward the ETA.
function showTime(job, started, skew) {
  const now = Date.now();
  let text = `${Math.round((now - started) / 1000)} s`;
  const eta = job && !job.waiting_on_model && job.eta ? Date.parse(job.eta) - skew : NaN;
  if (!Number.isNaN(eta) && eta > now) {
    text += ` · about ${Math.max(1, Math.round((eta - now) / 1000))} s left`;
    $("bar").value = Math.min(95, Math.round((100 * (now - started)) / Math.max(1, eta - started)));
  } else if (job && job.status === "running" && !job.waiting_on_model) {
    text += " · almost done";
    $("bar").value = 95;
  } else {
    $("bar").removeAttribute("value");
  }
  $("elapsed").textContent = text;
}

function reset() {
  $("result").hidden = true;
  hideHistory();
  $("create").hidden = false;
  $("create").reset();
}

function fail(say, error) {
  $("submit").disabled = false;
  if (error instanceof ApiError && error.status === 401) sessionStorage.removeItem(KEY);
  say(explain(error));
}
