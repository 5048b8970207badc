// Upload: a vector file (GeoJSON, zipped Shapefile, GeoPackage, FlatGeobuf, GeoParquet, CSV) into a dataset (`POST /v1/datasets/{dataset}/uploads`, multipart)
// with a progress bar, then its job followed until it ends: counts on success, the report on
// failure.

import { api, uploadFile } from "../api.js";
import { poll } from "./jobs.js";
import { badge, errorBox, fmt, h, jobReport, link, pageHeader } from "../ui.js";

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

/** A dataset name from a file name: `ne_110m Admin-0.geojson` → `ne_110m_admin_0`. */
export function datasetFromFile(fileName) {
  let n = String(fileName)
    .replace(/\.gz$/i, "")
    .replace(/\.(geo)?json(l|seq|s)?$|\.ndjson$|\.json$|\.zip$|\.shp$|\.gpkg$|\.fgb$|\.parquet$|\.geoparquet$|\.csv$|\.tsv$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^[^a-z]+/, "")
    .replace(/_+$/, "")
    .slice(0, 63);
  return NAME.test(n) ? n : "";
}

export async function render(root) {
  const dataset = h("input", {
    id: "upload-dataset",
    name: "dataset",
    required: true,
    pattern: NAME.source.slice(1, -1),
    maxlength: 63,
    placeholder: "e.g. countries",
    autocomplete: "off",
    spellcheck: "false",
  });
  const file = h("input", { id: "upload-file", name: "file", type: "file", required: true, accept: ".geojson,.json,.geojsonl,.ndjson,.geojsons,.zip,.gpkg,.fgb,.parquet,.geoparquet,.csv,.tsv,.gz,application/geo+json,application/json,application/zip,application/geopackage+sqlite3,application/flatgeobuf,application/vnd.apache.parquet,text/csv,application/gzip" });
  const sourceCrs = h("input", { id: "upload-source-crs", name: "source_crs", placeholder: "from the file, e.g. EPSG:27700", autocomplete: "off", spellcheck: "false" });
  const layer = h("input", { id: "upload-layer", name: "layer", placeholder: "the only one", autocomplete: "off", spellcheck: "false" });
  const policy = h(
    "select",
    { id: "upload-policy", name: "on_invalid" },
    h("option", { value: "" }, "server default"),
    h("option", { value: "skip" }, "skip — store the valid features, report the rest"),
    h("option", { value: "repair" }, "repair — fix what can be fixed, skip the rest"),
    h("option", { value: "reject" }, "reject — refuse the file on any invalid feature"),
  );
  const submit = h("button", { type: "submit", class: "button primary", id: "upload-submit" }, "Upload");
  const bar = h("div", { class: "progress-bar", style: "width: 0%" });
  const progress = h(
    "div",
    { class: "progress", id: "upload-progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0, hidden: true },
    bar,
  );
  const progressText = h("div", { class: "progress-text muted small", id: "upload-progress-text" });
  const outcome = h("div", { id: "upload-outcome", class: "upload-outcome" });
  let stopFollowing = null;
  let xhr = null;

  file.addEventListener("change", () => {
    const f = file.files[0];
    if (f && !dataset.value) dataset.value = datasetFromFile(f.name);
  });

  const form = h(
    "form",
    { class: "upload-form panel", id: "upload-form", novalidate: true },
    h("label", { class: "field" }, h("span", {}, "Dataset"), dataset, h("small", { class: "muted" }, "Lower-case letters, digits and _, starting with a letter. Uploading the same file name again on the same day replaces its rows.")),
    h("label", { class: "field" }, h("span", {}, "File"), file, h("small", { class: "muted" }, "GeoJSON (also sequences and newline-delimited), a zipped Shapefile, a GeoPackage, FlatGeobuf, GeoParquet or CSV, each also gzipped. The format is told from the content.")),
    h("label", { class: "field" }, h("span", {}, "Invalid features"), policy),
    h("label", { class: "field" }, h("span", {}, "Source CRS"), sourceCrs, h("small", { class: "muted" }, "Only for files that carry none (CSV, a Shapefile without .prj), or to override it. Coordinates are transformed to WGS84.")),
    h("label", { class: "field" }, h("span", {}, "Layer"), layer, h("small", { class: "muted" }, "For a zip of several Shapefiles or a GeoPackage of several tables.")),
    h("div", { class: "form-actions" }, submit),
    progress,
    progressText,
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    outcome.replaceChildren();
    const name = dataset.value.trim();
    const chosen = file.files[0];
    if (!NAME.test(name)) {
      outcome.append(errorBox({ message: "the dataset name must match ^[a-z][a-z0-9_]{0,62}$" }, { what: "Check the dataset name" }));
      dataset.focus();
      return;
    }
    if (!chosen) {
      outcome.append(errorBox({ message: "choose a file to upload" }, { what: "No file" }));
      return;
    }
    stopFollowing?.();
    submit.disabled = true;
    progress.hidden = false;
    progress.dataset.state = "uploading";
    const show = (loaded, total) => {
      const pct = total ? Math.min(100, Math.round((loaded / total) * 100)) : 0;
      bar.style.width = `${pct}%`;
      progress.setAttribute("aria-valuenow", String(pct));
      progressText.textContent = `${fmt.bytes(loaded)} of ${fmt.bytes(total)} sent (${pct} %)`;
    };
    show(0, chosen.size);
    let accepted;
    try {
      const started = uploadFile(name, chosen, {
        onInvalid: policy.value || undefined,
        sourceCrs: sourceCrs.value.trim() || undefined,
        layer: layer.value.trim() || undefined,
        onProgress: show,
      });
      xhr = started.xhr;
      accepted = await started.done;
    } catch (err) {
      progress.dataset.state = "failed";
      progressText.textContent = "Upload failed";
      outcome.append(errorBox(err, { what: "The upload failed" }));
      submit.disabled = false;
      return;
    } finally {
      xhr = null;
    }
    show(chosen.size, chosen.size);
    progress.dataset.state = "done";
    progressText.textContent = `${fmt.bytes(chosen.size)} uploaded · load queued`;
    follow(accepted.job, accepted.location);
    submit.disabled = false;
  });

  function follow(job, location) {
    const status = h("div", { class: "job-follow", id: "upload-job", "data-status": job.status });
    outcome.replaceChildren(status);
    const draw = (j) => {
      status.dataset.status = j.status;
      status.replaceChildren(
        h(
          "div",
          { class: "row" },
          badge(j.status),
          h("span", {}, "Job ", link(`#/jobs/${encodeURIComponent(j.id)}`, j.id, { class: "mono small" })),
          h("span", { class: "muted small" }, `${j.dataset} · ${j.source}`),
        ),
        j.finished_at
          ? h("div", { class: "job-outcome" }, [
              j.status === "succeeded"
                ? h("p", { class: "success-line" }, `Loaded ${fmt.int(j.result?.features_loaded)} of ${fmt.int(j.result?.features_read)} features into `, link(`#/datasets/${encodeURIComponent(j.dataset)}`, j.dataset), ".")
                : null,
              jobReport(j),
              h(
                "div",
                { class: "row" },
                link(`#/map/${encodeURIComponent(j.dataset)}`, "Open the map", { class: "button primary small", id: "upload-open-map" }),
                link(`#/datasets/${encodeURIComponent(j.dataset)}`, "Dataset", { class: "button small" }),
                link(`#/jobs?dataset=${encodeURIComponent(j.dataset)}`, "Jobs", { class: "button small subtle" }),
              ),
            ])
          : h("p", { class: "muted" }, j.status === "running" ? "Loading…" : "Waiting for a worker…", j.error ? ` (last error: ${j.error})` : ""),
      );
    };
    draw(job);
    stopFollowing = poll(async () => {
      try {
        const j = await api(location);
        draw(j);
        return !j.finished_at;
      } catch (err) {
        status.querySelector(".error-box")?.remove();
        status.append(errorBox(err, { what: "Could not follow the job" }));
        return err.status !== 401 && err.status !== 404;
      }
    }, 1000);
  }

  root.append(pageHeader("Upload", "Send a vector file to a dataset and follow its load."), form, outcome);
  return () => {
    stopFollowing?.();
    xhr?.abort();
  };
}
