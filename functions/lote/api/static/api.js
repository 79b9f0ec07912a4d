// One HTTP client for the page: the bearer credential, errors as ApiError, Retry-After honoured on
// 429 and 503, network loss retried with backoff (POSTs carry an Idempotency-Key, so a retry is safe).

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

function retryAfter(response, fallback) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) : fallback;
}

export class Api {
  constructor(base, credential, onNetwork) {
    this.base = base.replace(/\/$/, "");
    this.credential = credential;
    this.onNetwork = onNetwork || (() => {});
    this.requests = 0; // for the page's own light-on-the-API check
    this.fresh = new Map(); // path → {answer, until}: the API's Retry-After says the answer holds until then
    this.inflight = new Map(); // path → the promise of the GET under way
  }

  async request(method, path, { body, headers = {}, wait } = {}) {
    const sent = { Authorization: `Bearer ${this.credential}`, ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (wait) sent.Prefer = `wait=${wait}`;
    if (method === "POST" && !sent["Idempotency-Key"]) sent["Idempotency-Key"] = crypto.randomUUID();
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        this.requests += 1;
        response = await fetch(this.base + path, {
          method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
        });
      } catch (error) {
        this.onNetwork(true);
        await sleep(Math.min(30, 2 ** attempt));
        continue;
      }
      this.onNetwork(false);
      if (response.status === 429 || response.status === 503) {
        const code = await errorCode(response.clone());
        if (code !== "token_image_cap_reached") {
          await sleep(retryAfter(response, 5));
          continue;
        }
      }
      return response;
    }
  }

  // JSON answer: {status, data, headers}; a 304 has no data; an error answer throws ApiError.
  async json(method, path, options) {
    const response = await this.request(method, path, options);
    if (response.status === 304) return { status: 304, data: null, headers: response.headers };
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = data.error || {};
      throw new ApiError(response.status, error.code || "error", error.message || response.statusText, error.details);
    }
    return { status: response.status, data, headers: response.headers };
  }

  // A GET asked again before the Retry-After of its last answer gets that answer, without a request.
  // (A held GET, `wait`, is paced by the server instead: it answers when something changed.)
  // Two views asking for the same path at once share one request.
  async get(path, options = {}) {
    if (options.wait) return this.json("GET", path, options);
    const kept = this.fresh.get(path);
    if (kept && Date.now() < kept.until) return kept.answer;
    if (!this.inflight.has(path)) {
      this.inflight.set(path, this.json("GET", path, options).finally(() => this.inflight.delete(path)));
    }
    const answer = await this.inflight.get(path);
    const after = Number(answer.headers.get("Retry-After"));
    if (answer.status === 200 && after > 0) this.fresh.set(path, { answer, until: Date.now() + after * 1000 });
    else this.fresh.delete(path);
    return answer;
  }
  post(path, body, options = {}) { return this.json("POST", path, { ...options, body }); }
}

async function errorCode(response) {
  try { return (await response.json()).error.code; } catch { return null; }
}

// Words for every error a page can meet: the API's own codes, and a failed image's (jobs.py).
const WORDS = {
  insufficient_credits: "Your account does not have enough credits for this image.",
  token_expired: "Your session has expired. Reload the page from the app that sent you here.",
  token_revoked: "Your session was ended. Reload the page from the app that sent you here.",
  token_invalid: "This link is not valid. Ask the app that sent you here for a new one.",
  token_wrong_audience: "This link is for another service.",
  insufficient_scope: "This session may not do that.",
  origin_not_allowed: "This site is not allowed to use the service.",
  secret_key_in_browser: "An API key may not be used from this site.",
  api_key_required: "Only the partner's API key may do that.",
  token_image_cap_reached: "You have made all the images this session allows.",
  not_found: "This image is not available in this session.",
  billing_unavailable: "Credits cannot be checked right now. Try again in a minute.",
  generation_finished: "This image is already finished.",
  safety_blocked: "The model refused this photo or request for safety reasons. Try another photo.",
  input_not_image: "This file is not a photo the service can read (PNG, JPEG or WebP).",
  input_unsupported_format: "This file is not a photo the service can read (PNG, JPEG or WebP).",
  input_too_large: "This photo is too large for the service.",
  input_forbidden: "The photo's address may not be read by the service.",
  input_invalid_uri: "The photo's address is not one the service can read.",
  invalid_request: "The request was not accepted: ",
};
// A failed image whose cause is on our side: the model or storage kept failing after retries.
const OURS = "The image could not be made this time. Try again.";

export function explain(error) {
  if (!(error instanceof ApiError)) return String(error.message || error);
  const ours = /^(model_|storage_|input_fetch|input_not_found|abandoned)/.test(error.code) ? OURS : null;
  const base = WORDS[error.code] || ours || `${error.message} (${error.code})`;
  // A failed or canceled image is never paid for (billing refunds it); say so.
  const refund = error.details && error.details.refunded ? " Its credit was refunded." : "";
  return (error.code === "invalid_request" ? base + error.message : base) + refund;
}
