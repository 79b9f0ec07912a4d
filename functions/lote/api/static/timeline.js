// An image's life as the API recorded it (`GET /v1/generations/{id}?include=timeline`), as an
// ordered list: each moment's time since acceptance, what happened, and its details.

const WORDS = {
  accepted: "Accepted", released: "Released to the model", attempt_started: "Attempt started",
  attempt_ended: "Attempt ended", finished: "Finished", webhook: "Webhook sent",
};

function details(moment) {
  const d = moment.detail || {};
  let parts = [];
  if (moment.event === "attempt_ended") parts = [d.end, d.code, d.model_ms != null && `model ${d.model_ms} ms`];
  if (moment.event === "finished") parts = [d.status];
  if (moment.event === "webhook") {
    const answer = d.status_code ? `HTTP ${d.status_code}` : d.error || "no answer";
    parts = [d.type, `${answer}${d.latency_ms != null ? ` in ${d.latency_ms} ms` : ""}`];
  }
  const shown = parts.filter(Boolean);
  return shown.length ? `: ${shown.join(", ")}` : "";
}

export function showTimeline(list, timeline) {
  const accepted = timeline.find((moment) => moment.event === "accepted") || timeline[0];
  const start = accepted ? Date.parse(accepted.at) : 0;
  list.replaceChildren(...timeline.map((moment) => {
    const item = document.createElement("li");
    item.dataset.event = moment.event;
    const offset = Math.max(0, (Date.parse(moment.at) - start) / 1000).toFixed(1);
    const time = Object.assign(document.createElement("time"), { dateTime: moment.at, textContent: `+${offset} s` });
    const attempt = moment.attempt ? ` (attempt ${moment.attempt})` : "";
    item.append(time, ` ${WORDS[moment.event] || moment.event}${attempt}${details(moment)}`);
    return item;
  }));
  list.hidden = timeline.length === 0;
}

// The timeline of one generation (or batch item), fetched with the page's credential.
export async function loadTimeline(api, id, list) {
  const { data } = await api.get(`/v1/generations/${id}?include=timeline`);
  showTimeline(list, data.timeline || []);
  return data;
}
