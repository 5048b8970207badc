// Hand-made SVG charts: horizontal bars with labels and values, scaled to the largest value.

import { fmt, h, svg } from "./ui.js";

export const PALETTE = ["#0f766e", "#2563eb", "#9333ea", "#c2410c", "#0891b2", "#4d7c0f", "#be123c", "#a16207"];

/**
 * A horizontal bar chart. `items`: `[{label, value, color?}]`; zero-only data shows a note.
 * `max` bars are drawn, the rest summed as "other".
 */
export function barChart(title, items, { max = 12, format = fmt.int, empty = "Nothing to show" } = {}) {
  let rows = items.filter((i) => Number(i.value) > 0);
  if (rows.length > max) {
    const rest = rows.slice(max - 1).reduce((s, i) => s + Number(i.value), 0);
    rows = [...rows.slice(0, max - 1), { label: "other", value: rest, color: "#94a3b8" }];
  }
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, title));
  if (!rows.length) {
    figure.append(h("div", { class: "chart-empty" }, empty));
    return figure;
  }
  const top = Math.max(...rows.map((r) => Number(r.value)));
  const labelWidth = 132;
  const valueWidth = 78;
  const barArea = 300;
  const rowHeight = 26;
  const width = labelWidth + barArea + valueWidth;
  const height = rows.length * rowHeight + 4;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    role: "img",
    "aria-label": title,
    class: "bars",
    preserveAspectRatio: "xMinYMin meet",
  });
  rows.forEach((r, n) => {
    const y = n * rowHeight + 2;
    const w = Math.max(2, (Number(r.value) / top) * barArea);
    const color = r.color || PALETTE[n % PALETTE.length];
    const label = String(r.label);
    const shown = label.length > 20 ? `${label.slice(0, 19)}…` : label;
    chart.append(
      svg(
        "g",
        { class: "bar" },
        svg("title", { text: `${label}: ${format(r.value)}` }),
        svg("text", { x: labelWidth - 8, y: y + rowHeight / 2 + 4, "text-anchor": "end", class: "bar-label", text: shown }),
        svg("rect", { x: labelWidth, y: y + 4, width: w, height: rowHeight - 8, rx: 3, fill: color }),
        svg("text", { x: labelWidth + w + 6, y: y + rowHeight / 2 + 4, class: "bar-value", text: format(r.value) }),
      ),
    );
  });
  figure.append(chart);
  return figure;
}

/** `{key: n}` as chart items, largest first. */
export function entries(map, colors = {}) {
  return Object.entries(map || {})
    .map(([label, value]) => ({ label, value: Number(value) || 0, color: colors[label] }))
    .sort((a, b) => b.value - a.value);
}
