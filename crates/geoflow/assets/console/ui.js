// Small DOM helpers shared by the views: element building, number and date formatting,
// status badges, inline errors, empty states and the validation report of a job.

/**
 * Builds an element. `attrs`: `class`, `text`, `html` is not supported on purpose (everything
 * from the API is untrusted text), `on<event>` handlers, `dataset`, and plain attributes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (for charts). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

const integer = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export const fmt = {
  int(n) {
    return n === null || n === undefined || Number.isNaN(Number(n)) ? "–" : integer.format(Number(n));
  },
  num(n, digits = 1) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
  },
  /** Bytes as B, kB, MB, GB (powers of 1000, as `ls -h --si`). */
  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let v = Number(n);
    let u = 0;
    while (v >= 1000 && u < units.length - 1) {
      v /= 1000;
      u += 1;
    }
    return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
  },
  duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  },
  /** An RFC 3339 time as `2026-11-22 14:03:07` UTC. */
  time(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
  },
  ago(iso) {
    if (!iso) return "";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (Number.isNaN(s)) return "";
    if (s < 5) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  },
  /** An extent, `{min_x,…}` or `[minx, miny, maxx, maxy]`, in degrees. */
  bbox(b) {
    const e = extent(b);
    if (!e) return "–";
    const f = (v) => Number(v).toFixed(2);
    return `${f(e[0])}, ${f(e[1])} → ${f(e[2])}, ${f(e[3])}`;
  },
  area(m2) {
    if (m2 === null || m2 === undefined) return "–";
    if (m2 >= 1e11) return `${compact.format(m2 / 1e6)} km²`;
    return m2 >= 1e6 ? `${fmt.num(m2 / 1e6, 0)} km²` : `${fmt.num(m2, 0)} m²`;
  },
  length(m) {
    if (m === null || m === undefined) return "–";
    if (m >= 1e8) return `${compact.format(m / 1000)} km`;
    return m >= 1000 ? `${fmt.num(m / 1000, 0)} km` : `${fmt.num(m, 0)} m`;
  },
};

/** `[minx, miny, maxx, maxy]` from either extent shape the API uses, or null. */
export function extent(b) {
  if (!b) return null;
  if (Array.isArray(b)) return b.length >= 4 ? b.slice(0, 4).map(Number) : null;
  if ("min_x" in b) return [b.min_x, b.min_y, b.max_x, b.max_y].map(Number);
  return null;
}

/** The last segment of a source key (its file name). */
export function baseName(key) {
  return String(key || "").split("/").pop();
}

const STATUS_LABELS = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  "skipped-duplicate": "duplicate",
};

export function badge(status) {
  return h("span", { class: `badge badge-${status}`, title: status, "data-status": status }, STATUS_LABELS[status] || status);
}

export function loading(text = "Loading…") {
  return h("div", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

/** An inline error: what failed and why, with a way to retry or to enter a token. */
export function errorBox(error, { what = "The request failed", retry } = {}) {
  const status = error?.status ? `HTTP ${error.status}` : "";
  const detail = error?.detail || error?.message || String(error);
  const box = h(
    "div",
    { class: "error-box", role: "alert" },
    h("strong", {}, what),
    h("span", { class: "error-detail" }, [status, error?.title && error.title !== detail ? error.title : "", detail].filter(Boolean).join(" · ")),
  );
  const actions = h("span", { class: "error-actions" });
  if (error?.status === 401) {
    actions.append(
      h("button", { type: "button", class: "button small", onclick: () => window.dispatchEvent(new CustomEvent("geoflow:ask-token")) }, "Enter token"),
    );
  }
  if (retry) actions.append(h("button", { type: "button", class: "button small subtle", onclick: retry }, "Retry"));
  if (actions.childElementCount) box.append(actions);
  return box;
}

export function emptyState(title, text, action) {
  return h("div", { class: "empty" }, h("div", { class: "empty-title" }, title), text ? h("p", {}, text) : null, action || null);
}

export function stat(label, value, sub, tone) {
  return h(
    "div",
    { class: `stat${tone ? ` stat-${tone}` : ""}` },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value),
    sub ? h("div", { class: "stat-sub" }, sub) : null,
  );
}

export function pageHeader(title, subtitle, ...actions) {
  return h(
    "div",
    { class: "page-header" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "muted" }, subtitle) : null),
    actions.length ? h("div", { class: "page-actions" }, actions) : null,
  );
}

/** A table from column definitions `{label, value(row) → node|text, class}`. */
export function table(columns, rows, { rowAttrs } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class, scope: "col" }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", { class: c.class }, c.value(row))))),
      ),
    ),
  );
}

/** Counts from a load summary (a job's `result`), as a row of small figures. */
export function loadCounts(result) {
  if (!result || result.features_read === undefined) return null;
  const item = (label, value, tone) => h("span", { class: `count${tone ? ` count-${tone}` : ""}` }, h("b", {}, fmt.int(value)), ` ${label}`);
  return h(
    "div",
    { class: "counts" },
    item("read", result.features_read),
    item("loaded", result.features_loaded, "ok"),
    result.invalid ? item("invalid", result.invalid, "bad") : null,
    result.repaired ? item("repaired", result.repaired, "warn") : null,
    result.skipped ? item("skipped", result.skipped, "warn") : null,
  );
}

/**
 * A job's outcome in full: its error, its counts and the validation report the worker wrote
 * into `result` (`errors`: index, id, code, reason, action; `issue_total`).
 */
export function jobReport(job) {
  const result = job.result || {};
  const parts = [];
  if (job.error) {
    parts.push(h("div", { class: "report-error" }, h("strong", {}, job.status === "failed" ? "Failed: " : "Last error: "), job.error));
  }
  const counts = loadCounts(result);
  if (counts) parts.push(counts);
  if (result.reason) parts.push(h("p", { class: "muted" }, result.reason));
  if (result.removed_rows !== undefined) parts.push(h("p", { class: "muted" }, `${fmt.int(result.removed_rows)} rows removed`));
  const meta = [];
  if (result.bytes !== undefined) meta.push(["Size", fmt.bytes(result.bytes)]);
  if (result.duration_ms !== undefined) meta.push(["Load time", fmt.duration(result.duration_ms)]);
  if (result.bbox) meta.push(["Extent", fmt.bbox(result.bbox)]);
  if (result.replaced_rows) meta.push(["Rows replaced", fmt.int(result.replaced_rows)]);
  if (meta.length) parts.push(h("dl", { class: "meta" }, meta.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  const issues = Array.isArray(result.errors) ? result.errors : [];
  if (issues.length) {
    const total = result.issue_total || issues.length;
    parts.push(
      h(
        "div",
        { class: "report" },
        h("h4", {}, `Validation report · ${fmt.int(total)} problem${total === 1 ? "" : "s"}`, total > issues.length ? ` (first ${issues.length} shown)` : ""),
        table(
          [
            { label: "Feature", value: (i) => `#${i.index}`, class: "num" },
            { label: "id", value: (i) => i.id ?? "–" },
            { label: "Problem", value: (i) => h("code", {}, i.code) },
            { label: "Action", value: (i) => h("span", { class: `action action-${i.action}` }, i.action) },
            { label: "Reason", value: (i) => i.reason, class: "reason" },
          ],
          issues,
        ),
      ),
    );
  } else if (result.features_read !== undefined && !job.error) {
    parts.push(h("p", { class: "muted small" }, "Every feature was valid."));
  }
  return h("div", { class: "job-report" }, parts);
}

/** Hash-route link. */
export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}
