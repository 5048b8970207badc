// Reports: the daily reports (`GET /v1/reports`, newest first) and one day's report
// (`GET /v1/reports/{date}`, schema_version 1) with its totals and charts.

import { api } from "../api.js";
import { barChart, entries } from "../charts.js";
import { baseName, emptyState, errorBox, extent, fmt, h, link, loading, pageHeader, stat, table } from "../ui.js";

const OUTCOME_COLORS = { succeeded: "#15803d", failed: "#b91c1c", skipped_duplicate: "#a16207" };
const NO_REPORTS = () =>
  emptyState(
    "No reports yet",
    ["A report summarises one UTC day of loads. The scheduler writes yesterday’s report each night; ", h("code", {}, "geoflow report --date YYYY-MM-DD"), " writes one now."],
  );

export async function render(root, route) {
  if (route.args[0]) return day(root, route.args[0]);
  return list(root);
}

async function list(root) {
  const body = h("div", {}, loading("Loading reports…"));
  root.append(pageHeader("Reports", "Daily summaries of what was loaded, what failed and why."), body);
  const load = async () => {
    let data;
    try {
      data = await api("/v1/reports");
    } catch (e) {
      // 404: this server has no reports (none written yet, or reports are not served).
      body.replaceChildren(e.notFound ? NO_REPORTS() : errorBox(e, { what: "Could not list the reports", retry: load }));
      return;
    }
    const reports = data.reports || [];
    if (!reports.length) {
      body.replaceChildren(NO_REPORTS());
      return;
    }
    body.replaceChildren(
      h(
        "ul",
        { class: "report-list" },
        reports.map((r) =>
          h(
            "li",
            {},
            link(`#/reports/${encodeURIComponent(r.date)}`, h("span", { class: "report-date" }, r.date), { class: "report-link", "data-date": r.date }),
            h("span", { class: "muted small" }, weekday(r.date)),
          ),
        ),
      ),
    );
  };
  await load();
}

function weekday(date) {
  const d = new Date(`${date}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleDateString("en-GB", { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
}

async function day(root, date) {
  const body = h("div", {}, loading(`Loading the report of ${date}…`));
  root.append(h("nav", { class: "crumbs" }, link("#/reports", "Reports"), " / ", h("span", {}, date)), body);
  const load = async () => {
    let report;
    try {
      report = await api(`/v1/reports/${encodeURIComponent(date)}`);
    } catch (e) {
      body.replaceChildren(
        e.notFound ? emptyState(`No report for ${date}`, "That day has no report (yet).", link("#/reports", "All reports", { class: "button" })) : errorBox(e, { what: `Could not read the report of ${date}`, retry: load }),
      );
      return;
    }
    body.replaceChildren(renderReport(report));
  };
  await load();
}

/** One report, schema_version 1. Unknown versions are shown as far as they match. */
export function renderReport(r) {
  const t = r.totals || {};
  const loads = t.loads || {};
  const f = t.features || {};
  const eod = r.end_of_day || {};
  const d = t.duration_ms;
  const datasets = r.datasets || [];
  const out = h("div", { class: "report-page" });
  out.append(
    pageHeader(
      `Report of ${r.date}`,
      [weekday(r.date), r.window ? `window ${fmt.time(r.window.start)} – ${fmt.time(r.window.end)}` : null, r.generated_at ? `generated ${fmt.time(r.generated_at)}` : null]
        .filter(Boolean)
        .join(" · "),
    ),
  );
  if (r.schema_version !== 1) {
    out.append(h("p", { class: "notice" }, `This report has schema_version ${r.schema_version}; the console knows version 1 and shows what it recognises.`));
  }
  out.append(
    h(
      "div",
      { class: "stats" },
      stat("Loads succeeded", fmt.int(loads.succeeded), null, loads.succeeded ? "ok" : null),
      stat("Loads failed", fmt.int(loads.failed), null, loads.failed ? "bad" : null),
      stat("Duplicates skipped", fmt.int(loads.skipped_duplicate)),
      stat("Features loaded", fmt.int(f.loaded), `${fmt.int(f.read)} read`),
      stat("Invalid", fmt.int(f.invalid), `${fmt.int(f.repaired)} repaired · ${fmt.int(f.skipped)} skipped`, f.invalid ? "warn" : null),
      stat("Data in", fmt.bytes(t.bytes)),
      stat("Load time (median)", d ? fmt.duration(d.p50) : "–", d ? `p95 ${fmt.duration(d.p95)} · max ${fmt.duration(d.max)}` : null),
      stat("Area · length", `${fmt.area(t.area_m2)}`, fmt.length(t.length_m)),
    ),
    h(
      "div",
      { class: "stats compact" },
      h("div", { class: "stats-caption" }, "End of day"),
      stat("Datasets", fmt.int(eod.datasets)),
      stat("Sources", fmt.int(eod.sources)),
      stat("Features stored", fmt.int(eod.feature_count)),
      stat("Extent of the day’s loads", h("span", { class: "mono small" }, fmt.bbox(extent(t.extent)))),
    ),
    h(
      "div",
      { class: "charts" },
      barChart(
        "Loads by outcome",
        [
          { label: "succeeded", value: loads.succeeded || 0, color: OUTCOME_COLORS.succeeded },
          { label: "failed", value: loads.failed || 0, color: OUTCOME_COLORS.failed },
          { label: "duplicate", value: loads.skipped_duplicate || 0, color: OUTCOME_COLORS.skipped_duplicate },
        ],
        { empty: "No loads that day" },
      ),
      barChart(
        "Features loaded by dataset",
        datasets.map((x) => ({ label: x.dataset, value: x.features?.loaded || 0 })).sort((a, b) => b.value - a.value),
        { empty: "No features loaded" },
      ),
      barChart("Invalid features by reason", entries(t.invalid_reasons, {}), { empty: "No invalid features" }),
      barChart("Geometry types loaded", entries(t.geometry_types), { empty: "No geometries" }),
    ),
  );
  if (datasets.length) {
    out.append(
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Datasets"),
        table(
          [
            { label: "Dataset", value: (x) => link(`#/datasets/${encodeURIComponent(x.dataset)}`, x.dataset) },
            { label: "Loads ok / failed / dup", value: (x) => `${fmt.int(x.loads?.succeeded)} / ${fmt.int(x.loads?.failed)} / ${fmt.int(x.loads?.skipped_duplicate)}`, class: "num" },
            { label: "Features loaded", value: (x) => fmt.int(x.features?.loaded), class: "num" },
            { label: "Invalid", value: (x) => fmt.int(x.features?.invalid), class: "num" },
            { label: "Data in", value: (x) => fmt.bytes(x.bytes), class: "num" },
            { label: "p95 load", value: (x) => (x.duration_ms ? fmt.duration(x.duration_ms.p95) : "–"), class: "num" },
            { label: "End of day", value: (x) => `${fmt.int(x.end_of_day?.feature_count)} features · ${fmt.int(x.end_of_day?.sources)} sources`, class: "num" },
          ],
          datasets,
        ),
      ),
    );
  }
  const failed = r.failed_jobs || [];
  out.append(
    h(
      "section",
      { class: "panel" },
      h("h2", {}, `Failed jobs (${failed.length})`),
      failed.length
        ? table(
            [
              { label: "Job", value: (j) => link(`#/jobs/${encodeURIComponent(j.job)}`, String(j.job).slice(0, 8), { class: "mono", title: j.job }) },
              { label: "Dataset", value: (j) => j.dataset },
              { label: "Source", value: (j) => h("span", { title: j.source }, baseName(j.source)) },
              { label: "Finished", value: (j) => fmt.time(j.finished_at) },
              { label: "Error", value: (j) => j.error, class: "reason" },
            ],
            failed,
          )
        : h("p", { class: "muted" }, "No job failed that day."),
    ),
  );
  return out;
}
