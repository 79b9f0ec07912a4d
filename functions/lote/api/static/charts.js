// Small charts drawn as inline SVG with the DOM (no library, no CDN), each with its numbers in text
// beside it: a legend, and a table a screen reader (or a spreadsheet user) can read.

const SVG = "http://www.w3.org/2000/svg";
const COLORS = { succeeded: "#1e8e3e", failed: "#a4000f", canceled: "#80868b" };
const WIDTH = 640;
const HEIGHT = 180;
const LEFT = 36;
const BOTTOM = 22;

function node(name, attributes = {}, text = "") {
  const made = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, String(value));
  if (text) made.textContent = text;
  return made;
}

function frame(label) {
  return node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT + BOTTOM}`, role: "img", "aria-label": label, class: "chart" });
}

// Bars per period, stacked by key (images per day by status): `periods` = [{label, values: {key: n}}].
export function stackedBars(container, periods, keys, label) {
  const svg = frame(label);
  const totals = periods.map((period) => keys.reduce((sum, key) => sum + (period.values[key] || 0), 0));
  const max = Math.max(1, ...totals);
  const band = (WIDTH - LEFT) / Math.max(1, periods.length);
  svg.append(node("text", { x: 0, y: 12, class: "axis" }, String(max)), node("text", { x: 0, y: HEIGHT, class: "axis" }, "0"));
  periods.forEach((period, index) => {
    const group = node("g", { "data-period": period.label });
    let top = HEIGHT;
    for (const key of keys) {
      const value = period.values[key] || 0;
      if (!value) continue;
      const height = (value / max) * (HEIGHT - 16);
      top -= height;
      const bar = node("rect", { x: LEFT + index * band + band * 0.1, y: top, width: Math.max(1, band * 0.8), height,
        fill: COLORS[key] || "#0b57d0", "data-key": key, "data-value": value });
      bar.append(node("title", {}, `${period.label}: ${value} ${key}`));
      group.append(bar);
    }
    svg.append(group);
  });
  if (periods.length) {
    svg.append(node("text", { x: LEFT, y: HEIGHT + BOTTOM - 4, class: "axis" }, periods[0].label));
    const last = node("text", { x: WIDTH, y: HEIGHT + BOTTOM - 4, class: "axis", "text-anchor": "end" }, periods.at(-1).label);
    svg.append(last);
  }
  const legend = document.createElement("p");
  legend.className = "legend";
  legend.append(...keys.map((key) => {
    const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
    swatch.style.background = COLORS[key] || "#0b57d0";
    const entry = document.createElement("span");
    entry.append(swatch, ` ${key} `);
    return entry;
  }));
  container.replaceChildren(svg, legend);
}

// A line through (x, y) points (a batch's items finished per minute over time): x in seconds.
export function line(container, points, label, unit) {
  const svg = frame(label);
  if (points.length >= 2) {
    const maxX = Math.max(1, ...points.map((p) => p.x));
    const maxY = Math.max(1, ...points.map((p) => p.y));
    const at = (p) => `${LEFT + (p.x / maxX) * (WIDTH - LEFT)},${HEIGHT - (p.y / maxY) * (HEIGHT - 16)}`;
    svg.append(
      node("path", { d: `M${points.map(at).join(" L")}`, fill: "none", stroke: "#0b57d0", "stroke-width": 2, "data-points": points.length }),
      node("text", { x: 0, y: 12, class: "axis" }, `${Math.round(maxY)} ${unit}`),
      node("text", { x: WIDTH, y: HEIGHT + BOTTOM - 4, class: "axis", "text-anchor": "end" }, `${Math.round(maxX)} s`),
    );
  }
  container.replaceChildren(svg);
}

// The numbers behind a chart, as a table: `rows` = [[cell, …]] under `headers`.
export function table(element, headers, rows) {
  const head = document.createElement("tr");
  head.append(...headers.map((text) => Object.assign(document.createElement("th"), { scope: "col", textContent: text })));
  element.tHead.replaceChildren(head);
  element.tBodies[0].replaceChildren(...rows.map((cells) => {
    const row = document.createElement("tr");
    row.append(...cells.map((text) => Object.assign(document.createElement("td"), { textContent: String(text) })));
    return row;
  }));
}
