// Datasets: `GET /v1/datasets` as a list, and `GET /v1/datasets/{name}` (sources, columns,
// last job) as a detail page.

import { api } from "../api.js";
import { badge, baseName, emptyState, errorBox, fmt, h, jobReport, link, loading, pageHeader, stat, table } from "../ui.js";

export async function render(root, route) {
  if (route.args[0]) return detail(root, route.args[0]);
  return list(root);
}

async function list(root) {
  const body = h("div", {}, loading("Loading datasets…"));
  root.append(
    pageHeader(
      "Datasets",
      "What is loaded: one table per dataset, mirroring its sources.",
      h("a", { class: "button primary", href: "#/upload" }, "Upload GeoJSON"),
    ),
    body,
  );
  const load = async () => {
    body.replaceChildren(loading("Loading datasets…"));
    let data;
    try {
      data = await api("/v1/datasets");
    } catch (e) {
      body.replaceChildren(errorBox(e, { what: "Could not list the datasets", retry: load }));
      return;
    }
    const datasets = data.datasets || [];
    if (!datasets.length) {
      body.replaceChildren(
        emptyState(
          "No datasets yet",
          "Upload a GeoJSON file, drop one into the inbox folder, or run geoflow ingest.",
          h("a", { class: "button primary", href: "#/upload" }, "Upload a file"),
        ),
      );
      return;
    }
    const features = datasets.reduce((s, d) => s + Number(d.feature_count || 0), 0);
    const sources = datasets.reduce((s, d) => s + Number(d.sources || 0), 0);
    const latest = datasets.map((d) => d.updated_at).filter(Boolean).sort().pop();
    body.replaceChildren(
      h(
        "div",
        { class: "stats" },
        stat("Datasets", fmt.int(datasets.length)),
        stat("Features", fmt.int(features)),
        stat("Sources", fmt.int(sources)),
        stat("Last load", latest ? fmt.ago(latest) : "–", latest ? fmt.time(latest) : null),
      ),
      table(
        [
          { label: "Dataset", value: (d) => link(`#/datasets/${encodeURIComponent(d.name)}`, d.name, { class: "strong" }) },
          { label: "Features", value: (d) => fmt.int(d.feature_count), class: "num" },
          { label: "Sources", value: (d) => fmt.int(d.sources), class: "num" },
          { label: "Columns", value: (d) => fmt.int((d.columns || []).length), class: "num" },
          { label: "Extent (lon, lat)", value: (d) => h("span", { class: "mono small" }, fmt.bbox(d.bbox)) },
          { label: "Last load", value: (d) => h("span", { title: fmt.time(d.updated_at) }, fmt.ago(d.updated_at) || "–") },
          {
            label: "",
            class: "actions",
            value: (d) => [
              link(`#/map/${encodeURIComponent(d.name)}`, "Map", { class: "button small" }),
              link(`#/jobs?dataset=${encodeURIComponent(d.name)}`, "Jobs", { class: "button small subtle" }),
            ],
          },
        ],
        datasets,
        { rowAttrs: (d) => ({ "data-dataset": d.name }) },
      ),
    );
  };
  await load();
}

async function detail(root, name) {
  const body = h("div", {}, loading(`Loading ${name}…`));
  root.append(
    h("nav", { class: "crumbs" }, link("#/datasets", "Datasets"), " / ", h("span", {}, name)),
    pageHeader(
      name,
      "Sources, schema and the most recent job.",
      link(`#/map/${encodeURIComponent(name)}`, "Open map", { class: "button primary" }),
      link(`#/jobs?dataset=${encodeURIComponent(name)}`, "Jobs", { class: "button" }),
    ),
    body,
  );
  const load = async () => {
    let data;
    try {
      data = await api(`/v1/datasets/${encodeURIComponent(name)}`);
    } catch (e) {
      body.replaceChildren(
        e.notFound
          ? emptyState(`No dataset “${name}”`, "It may not be loaded yet, or all its sources were removed.", link("#/datasets", "All datasets", { class: "button" }))
          : errorBox(e, { what: `Could not read dataset ${name}`, retry: load }),
      );
      return;
    }
    const d = data.dataset;
    const job = data.last_job;
    body.replaceChildren(
      h(
        "div",
        { class: "stats" },
        stat("Features", fmt.int(d.feature_count)),
        stat("Sources", fmt.int(d.sources)),
        stat("Extent", h("span", { class: "mono small" }, fmt.bbox(d.bbox))),
        stat("Version", fmt.int(d.version), `updated ${fmt.ago(d.updated_at)}`),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Sources"),
        (data.sources || []).length
          ? table(
              [
                { label: "Source", value: (s) => h("span", { title: s.source }, baseName(s.source)) },
                { label: "Key", value: (s) => h("span", { class: "mono small muted" }, s.source) },
                { label: "Features", value: (s) => fmt.int(s.feature_count), class: "num" },
                { label: "Size", value: (s) => fmt.bytes(s.version?.bytes), class: "num" },
                { label: "Loaded", value: (s) => h("span", { title: fmt.time(s.loaded_at) }, fmt.ago(s.loaded_at)) },
              ],
              data.sources,
            )
          : emptyState("No sources", "Every source of this dataset was removed."),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Last job"),
        job
          ? h(
              "div",
              { class: "last-job" },
              h(
                "div",
                { class: "row" },
                badge(job.status),
                link(`#/jobs/${encodeURIComponent(job.id)}`, job.id, { class: "mono small" }),
                h("span", { class: "muted small" }, `${job.action} of ${baseName(job.source)} · ${fmt.ago(job.updated_at)}`),
              ),
              jobReport(job),
            )
          : h("p", { class: "muted" }, "No job recorded (loaded with geoflow ingest)."),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, `Columns (${(d.columns || []).length})`),
        table(
          [
            { label: "Property", value: (c) => c.key },
            { label: "Column", value: (c) => h("code", {}, c.column) },
            { label: "Type", value: (c) => h("span", { class: "type" }, c.ty) },
          ],
          d.columns || [],
        ),
      ),
    );
  };
  await load();
}
