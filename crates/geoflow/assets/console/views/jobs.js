// Jobs: `GET /v1/jobs` (filtered by dataset and status), refreshed every 2 s while the tab is
// visible, with each job's validation report on demand; `#/jobs/{id}` for one job.

import { api } from "../api.js";
import { badge, baseName, emptyState, errorBox, fmt, h, jobReport, link, loading, pageHeader, table } from "../ui.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "skipped-duplicate"];
const INTERVAL_MS = 2000;
const PAGE = 100;

/**
 * Calls `tick` now and then every `interval` ms while the page is visible; answers a stop
 * function. `tick` answering `false` stops the polling.
 */
export function poll(tick, interval = INTERVAL_MS) {
  let timer = null;
  let stopped = false;
  let running = false;
  const run = async () => {
    timer = null;
    if (stopped || running) return;
    if (document.visibilityState !== "visible") return; // resumed by visibilitychange
    running = true;
    let again = true;
    try {
      again = (await tick()) !== false;
    } finally {
      running = false;
    }
    if (again && !stopped) timer = setTimeout(run, interval);
    else stopped = true;
  };
  const visibility = () => {
    if (document.visibilityState === "visible" && !stopped && !timer && !running) run();
  };
  document.addEventListener("visibilitychange", visibility);
  run();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", visibility);
  };
}

export async function render(root, route) {
  if (route.args[0]) return detail(root, route.args[0]);
  return list(root, route);
}

function duration(job) {
  if (!job.started_at) return "–";
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return fmt.duration(end - new Date(job.started_at));
}

function features(job) {
  const r = job.result;
  if (!r || r.features_read === undefined) {
    if (r && r.removed_rows !== undefined) return h("span", { class: "muted" }, `${fmt.int(r.removed_rows)} removed`);
    return h("span", { class: "muted" }, "–");
  }
  return h(
    "span",
    {},
    h("b", {}, fmt.int(r.features_loaded)),
    h("span", { class: "muted" }, ` / ${fmt.int(r.features_read)}`),
    r.invalid ? h("span", { class: "pill pill-bad", title: "invalid features" }, `${fmt.int(r.invalid)} invalid`) : null,
    r.repaired ? h("span", { class: "pill pill-warn", title: "repaired features" }, `${fmt.int(r.repaired)} repaired`) : null,
  );
}

/** Whether a job has a report worth opening: it failed, or some features were invalid. */
function hasReport(job) {
  const r = job.result || {};
  return job.status === "failed" || Boolean(job.error) || Number(r.invalid) > 0 || (r.errors || []).length > 0;
}

async function list(root, route) {
  const filters = { dataset: route.query.get("dataset") || "", status: route.query.get("status") || "" };
  const expanded = new Set();
  let signature = "";
  let lastJobs = [];

  const datasetInput = h("input", {
    type: "search",
    id: "jobs-dataset",
    placeholder: "all datasets",
    value: filters.dataset,
    list: "jobs-datasets",
    pattern: "^[a-z][a-z0-9_]{0,62}$",
    "aria-label": "Dataset",
  });
  const datasetList = h("datalist", { id: "jobs-datasets" });
  const statusSelect = h(
    "select",
    { id: "jobs-status", "aria-label": "Status" },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)),
  );
  const live = h("span", { class: "live", "data-state": "starting" }, h("span", { class: "live-dot" }), h("span", { class: "live-text" }, "Connecting…"));
  const summary = h("div", { class: "status-chips" });
  const body = h("div", { class: "jobs-body" }, loading("Loading jobs…"));
  const notice = h("div", { class: "notice-slot" });

  root.append(
    pageHeader("Jobs", "Every upload and storage event, newest first. Updates live.", live),
    h(
      "form",
      { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Dataset", datasetInput, datasetList),
      h("label", {}, "Status", statusSelect),
      h("button", { type: "button", class: "button subtle small", onclick: () => setFilters({ dataset: "", status: "" }) }, "Clear filters"),
    ),
    summary,
    notice,
    body,
  );

  // The dataset suggestions are a convenience: their failure leaves a plain text box.
  api("/v1/datasets")
    .then((d) => datasetList.replaceChildren(...(d.datasets || []).map((x) => h("option", { value: x.name }))))
    .catch(() => {});

  function setFilters(next) {
    Object.assign(filters, next);
    datasetInput.value = filters.dataset;
    statusSelect.value = filters.status;
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/jobs${q.toString() ? `?${q}` : ""}`);
    signature = "";
    body.replaceChildren(loading("Loading jobs…"));
    refresh();
  }
  datasetInput.addEventListener("change", () => {
    const v = datasetInput.value.trim();
    if (v === "" || datasetInput.checkValidity()) setFilters({ dataset: v });
  });
  statusSelect.addEventListener("change", () => setFilters({ status: statusSelect.value }));

  function renderJobs(jobs) {
    lastJobs = jobs;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
    summary.replaceChildren(
      h("span", { class: "chip-total" }, `${fmt.int(jobs.length)}${jobs.length >= PAGE ? "+" : ""} job${jobs.length === 1 ? "" : "s"}`),
      ...STATUSES.map((s) =>
        h(
          "button",
          {
            type: "button",
            class: `chip chip-${s}${filters.status === s ? " active" : ""}`,
            "data-status": s,
            title: filters.status === s ? "Show every status" : `Only ${s}`,
            onclick: () => setFilters({ status: filters.status === s ? "" : s }),
          },
          h("b", {}, fmt.int(counts[s])),
          ` ${s}`,
        ),
      ),
    );
    if (!jobs.length) {
      body.replaceChildren(
        emptyState(
          filters.dataset || filters.status ? "No jobs match these filters" : "No jobs yet",
          filters.dataset || filters.status ? "Clear the filters to see every job." : "Jobs appear here as soon as a file is uploaded.",
          h("a", { class: "button", href: "#/upload" }, "Upload a file"),
        ),
      );
      return;
    }
    const rows = [];
    const columns = [
      { label: "Status", value: (j) => badge(j.status) },
      { label: "Dataset", value: (j) => link(`#/datasets/${encodeURIComponent(j.dataset)}`, j.dataset) },
      { label: "Source", value: (j) => h("span", { title: j.source, class: "source" }, baseName(j.source)) },
      { label: "Action", value: (j) => j.action },
      { label: "Features loaded / read", value: features },
      { label: "Tries", value: (j) => fmt.int(j.attempts), class: "num" },
      { label: "Created", value: (j) => h("span", { title: fmt.time(j.created_at) }, fmt.ago(j.created_at)) },
      { label: "Took", value: duration, class: "num" },
      {
        label: "",
        class: "actions",
        value: (j) =>
          h(
            "button",
            {
              type: "button",
              class: `button small ${hasReport(j) ? "" : "subtle"}`,
              "aria-expanded": String(expanded.has(j.id)),
              onclick: () => {
                if (expanded.has(j.id)) expanded.delete(j.id);
                else expanded.add(j.id);
                renderJobs(lastJobs);
              },
            },
            expanded.has(j.id) ? "Hide" : hasReport(j) ? "Report" : "Details",
          ),
      },
    ];
    for (const j of jobs) {
      rows.push(
        h(
          "tr",
          { class: `job-row status-${j.status}`, "data-job": j.id, "data-status": j.status },
          columns.map((c) => h("td", { class: c.class }, c.value(j))),
        ),
      );
      if (expanded.has(j.id)) {
        rows.push(
          h(
            "tr",
            { class: "job-detail-row", "data-job-detail": j.id },
            h(
              "td",
              { colspan: columns.length },
              h("div", { class: "job-detail" }, h("div", { class: "job-detail-head" }, link(`#/jobs/${encodeURIComponent(j.id)}`, `Job ${j.id}`, { class: "mono small" })), jobReport(j)),
            ),
          ),
        );
      }
    }
    body.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "data jobs" }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class, scope: "col" }, c.label)))), h("tbody", {}, rows)),
      ),
    );
    if (jobs.length >= PAGE) body.append(h("p", { class: "muted small" }, `Showing the newest ${PAGE}; narrow the filters to see older jobs.`));
  }

  let controller = null;
  async function refresh() {
    controller?.abort();
    controller = new AbortController();
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (filters.dataset) q.set("dataset", filters.dataset);
    if (filters.status) q.set("status", filters.status);
    try {
      const page = await api(`/v1/jobs?${q}`, { signal: controller.signal });
      notice.replaceChildren();
      live.dataset.state = "live";
      live.querySelector(".live-text").textContent = `Live · ${new Date().toLocaleTimeString("en-GB")}`;
      const jobs = page.jobs || [];
      const sig = JSON.stringify(jobs.map((j) => [j.id, j.updated_at, j.status])) + [...expanded].join();
      const active = jobs.some((j) => j.status === "running" || j.status === "queued");
      if (sig !== signature || active) {
        signature = sig;
        renderJobs(jobs);
      }
      return true;
    } catch (e) {
      if (e.name === "AbortError") return true;
      live.dataset.state = "error";
      live.querySelector(".live-text").textContent = "Not updating";
      const target = lastJobs.length ? notice : body;
      target.replaceChildren(
        errorBox(e, {
          what: "Could not list the jobs",
          retry: () => {
            stop();
            stop = poll(refresh);
          },
        }),
      );
      // A refused token stops the polling until the user retries; other errors are retried.
      return !e.unauthorized;
    }
  }
  let stop = poll(refresh);
  return () => {
    stop();
    controller?.abort();
  };
}

async function detail(root, id) {
  const body = h("div", {}, loading("Loading the job…"));
  root.append(h("nav", { class: "crumbs" }, link("#/jobs", "Jobs"), " / ", h("span", { class: "mono" }, id)), body);
  const tick = async () => {
    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      body.replaceChildren(e.notFound ? emptyState("No such job", `There is no job ${id}.`, link("#/jobs", "All jobs", { class: "button" })) : errorBox(e, { what: "Could not read the job", retry: tick }));
      return !e.notFound && !e.unauthorized;
    }
    body.replaceChildren(
      pageHeader(h("span", {}, ...jobTitle(job)), null, badge(job.status)),
      h(
        "dl",
        { class: "meta wide" },
        [
          ["Job", h("span", { class: "mono" }, job.id)],
          ["Dataset", link(`#/datasets/${encodeURIComponent(job.dataset)}`, job.dataset)],
          ["Source", h("span", { class: "mono small" }, job.source)],
          ["Object version", job.object_version || "–"],
          ["Attempts", fmt.int(job.attempts)],
          ["Created", fmt.time(job.created_at)],
          ["Started", fmt.time(job.started_at)],
          ["Finished", fmt.time(job.finished_at)],
          ["Took", duration(job)],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      h("section", { class: "panel" }, h("h2", {}, "Outcome"), job.finished_at || job.error ? jobReport(job) : loading(`The job is ${job.status}…`)),
    );
    return !job.finished_at;
  };
  const stop = poll(tick);
  return stop;
}

// "Load of roads.geojson", "Removal of …", "Drop of dataset roads".
function jobTitle(job) {
  if (job.action === "drop") return ["Drop of dataset ", job.dataset];
  return [`${job.action === "remove" ? "Removal" : "Load"} of `, baseName(job.source)];
}
