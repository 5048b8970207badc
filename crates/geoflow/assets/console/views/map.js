// Map: a dataset from its vector tiles (OGC API – Tiles, WebMercatorQuad) with MapLibre GL JS,
// on a plain background (no basemap is fetched from anywhere), fitted to the dataset's extent,
// and a feature inspector on click. Should the server have no tiles for it, the first features
// are drawn from `/collections/{id}/items` instead, and the page says so.

import * as maplibregl from "../vendor/maplibre-gl/maplibre-gl.mjs";
import { api, authHeaders } from "../api.js";
import { emptyState, errorBox, extent, fmt, h, link, loading } from "../ui.js";

const POLYGON = ["match", ["geometry-type"], ["Polygon", "MultiPolygon"], true, false];
const LINE = ["match", ["geometry-type"], ["LineString", "MultiLineString"], true, false];
const POINT = ["match", ["geometry-type"], ["Point", "MultiPoint"], true, false];
/** The layers that draw the dataset (what clicks and tests query). */
export const DATA_LAYERS = ["data-fill", "data-outline", "data-line", "data-point"];
const FALLBACK_LIMIT = 5000;
const NAME_KEYS = ["name", "NAME", "Name", "name_en", "NAME_EN", "NAME_LONG", "ADMIN", "title", "label", "id"];

export async function render(root, route) {
  const name = route.args[0];
  const picker = h("select", { id: "map-dataset", "aria-label": "Dataset" }, h("option", { value: "" }, "Loading datasets…"));
  picker.addEventListener("change", () => {
    if (picker.value) location.hash = `#/map/${encodeURIComponent(picker.value)}`;
  });
  const info = h("div", { class: "map-info" });
  const inspector = h("div", { class: "inspector", id: "inspector", "aria-live": "polite" }, h("p", { class: "muted" }, "Click a feature to inspect it."));
  const notices = h("div", { class: "map-notices" });
  const mapEl = h("div", { class: "map", id: "map", "data-state": "loading" });
  root.append(
    h(
      "div",
      { class: "map-layout" },
      h(
        "aside",
        { class: "map-side" },
        h("label", { class: "field" }, h("span", {}, "Dataset"), picker),
        info,
        h("h3", {}, "Feature"),
        inspector,
      ),
      h("div", { class: "map-main" }, mapEl, notices),
    ),
  );

  let datasets = [];
  try {
    datasets = (await api("/v1/datasets")).datasets || [];
  } catch (e) {
    notices.append(errorBox(e, { what: "Could not list the datasets" }));
  }
  picker.replaceChildren(
    h("option", { value: "", disabled: true, selected: !name }, datasets.length ? "Choose a dataset" : "No datasets"),
    ...datasets.map((d) => h("option", { value: d.name, selected: d.name === name }, d.name)),
  );
  if (!name) {
    if (datasets.length) {
      history.replaceState(null, "", `#/map/${encodeURIComponent(datasets[0].name)}`);
      root.replaceChildren();
      return render(root, { ...route, args: [datasets[0].name] });
    }
    mapEl.replaceWith(emptyState("Nothing to map yet", "Load a dataset first.", h("a", { class: "button primary", href: "#/upload" }, "Upload a file")));
    return null;
  }
  if (datasets.length && !datasets.some((d) => d.name === name)) {
    picker.prepend(h("option", { value: name, selected: true }, name));
  }
  const dataset = datasets.find((d) => d.name === name) || null;
  info.replaceChildren(
    h("dl", { class: "meta" }, [
      [h("dt", {}, "Features"), h("dd", {}, dataset ? fmt.int(dataset.feature_count) : "–")],
      ...extentRows(extent(dataset?.bbox)),
    ]),
    h("div", { class: "legend" }, legendItem("fill", "Polygons"), legendItem("line", "Lines"), legendItem("point", "Points")),
    h("p", { class: "small" }, link(`#/datasets/${encodeURIComponent(name)}`, "Dataset details")),
  );
  mapEl.append(loading("Loading tiles…"));

  const base = `/collections/${encodeURIComponent(name)}`;
  let source;
  let sourceLayer = null;
  let kind = "tiles";
  try {
    const tilejsonPath = `${base}/tiles/WebMercatorQuad/tilejson.json`;
    const tilejson = await api(tilejsonPath);
    const tiles = (tilejson.tiles || []).map((t) => absoluteTemplate(t, tilejsonPath));
    if (!tiles.length) throw new Error("the TileJSON lists no tiles");
    source = { type: "vector", tiles, minzoom: tilejson.minzoom ?? 0, maxzoom: tilejson.maxzoom ?? 14 };
    if (tilejson.bounds) source.bounds = tilejson.bounds;
    const layers = (tilejson.vector_layers || []).map((l) => l.id);
    sourceLayer = layers.includes(name) || !layers.length ? name : layers[0];
  } catch (e) {
    if (e.status === 401) {
      mapEl.replaceChildren(errorBox(e, { what: "The map needs a token" }));
      return null;
    }
    // No tiles: draw the first features as GeoJSON, and say so.
    kind = "geojson";
    try {
      const page = await api(`${base}/items?limit=${FALLBACK_LIMIT}`, { headers: { Accept: "application/geo+json" } });
      source = { type: "geojson", data: page };
      const shown = (page.features || []).length;
      const total = page.numberMatched ?? dataset?.feature_count;
      notices.append(
        h(
          "div",
          { class: "notice" },
          `Vector tiles are not available (${e.status ? `HTTP ${e.status}` : e.message}); showing ${fmt.int(shown)}${total && total > shown ? ` of ${fmt.int(total)}` : ""} features as GeoJSON.`,
        ),
      );
    } catch (e2) {
      mapEl.replaceChildren(errorBox(e2, { what: `Could not load ${name} for the map` }));
      return null;
    }
  }
  mapEl.dataset.sourceKind = kind;

  const layer = (spec) => (sourceLayer ? { ...spec, "source-layer": sourceLayer } : spec);
  const none = ["==", ["id"], "__none__"];
  const style = {
    version: 8,
    sources: { data: source, graticule: { type: "geojson", data: graticule() } },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#eef2f6" } },
      { id: "graticule", type: "line", source: "graticule", paint: { "line-color": "#cbd5e1", "line-width": 0.6, "line-dasharray": [2, 2] } },
      layer({ id: "data-fill", type: "fill", source: "data", filter: POLYGON, paint: { "fill-color": "#14b8a6", "fill-opacity": 0.35 } }),
      layer({ id: "data-outline", type: "line", source: "data", filter: POLYGON, paint: { "line-color": "#0f766e", "line-width": 0.9 } }),
      layer({ id: "data-line", type: "line", source: "data", filter: LINE, paint: { "line-color": "#2563eb", "line-width": 1.8 } }),
      layer({
        id: "data-point",
        type: "circle",
        source: "data",
        filter: POINT,
        paint: { "circle-radius": 4.5, "circle-color": "#ea580c", "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.2 },
      }),
      layer({ id: "selected-fill", type: "fill", source: "data", filter: ["all", POLYGON, none], paint: { "fill-color": "#f59e0b", "fill-opacity": 0.55 } }),
      layer({ id: "selected-line", type: "line", source: "data", filter: ["all", ["!", POINT], none], paint: { "line-color": "#b45309", "line-width": 2.5 } }),
      layer({
        id: "selected-point",
        type: "circle",
        source: "data",
        filter: ["all", POINT, none],
        paint: { "circle-radius": 7, "circle-color": "#f59e0b", "circle-stroke-color": "#78350f", "circle-stroke-width": 2 },
      }),
    ],
  };

  const box = extent(dataset?.bbox) || extent(source.bounds);
  const bounds = box ? [[Math.max(box[0], -180), Math.max(box[1], -85)], [Math.min(box[2], 180), Math.min(box[3], 85)]] : null;
  mapEl.replaceChildren();
  let map;
  try {
    map = new maplibregl.Map({
      container: mapEl,
      style,
      bounds: bounds || undefined,
      center: bounds ? undefined : [0, 20],
      zoom: bounds ? undefined : 1,
      fitBoundsOptions: { padding: 32 },
      renderWorldCopies: false,
      attributionControl: false,
      transformRequest: (url) => (sameOrigin(url) ? { url, headers: authHeaders() } : { url }),
    });
  } catch (e) {
    mapEl.replaceChildren(errorBox(e, { what: "The map could not start (WebGL unavailable?)" }));
    return null;
  }
  window.geoflowMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");

  const seen = new Set();
  map.on("error", (e) => {
    const message = e.error?.message || String(e.error || "map error");
    if (seen.has(message)) return;
    seen.add(message);
    console.warn("map:", message);
    const status = e.error?.status;
    notices.append(errorBox({ status, message }, { what: status === 401 ? "Tiles need a token" : "Part of the map failed to load" }));
  });
  map.once("idle", () => {
    mapEl.dataset.state = "ready";
  });

  let selection = null;
  const select = (fid) => {
    const f = fid === null || fid === undefined ? none : ["==", ["id"], fid];
    map.setFilter("selected-fill", ["all", POLYGON, f]);
    map.setFilter("selected-line", ["all", ["!", POINT], f]);
    map.setFilter("selected-point", ["all", POINT, f]);
  };
  map.on("click", async (e) => {
    const { x, y } = e.point;
    const hits = map.queryRenderedFeatures([[x - 3, y - 3], [x + 3, y + 3]], { layers: DATA_LAYERS });
    if (!hits.length) {
      selection = null;
      select(null);
      inspector.replaceChildren(h("p", { class: "muted" }, "Nothing here. Click a feature to inspect it."));
      return;
    }
    // Points over lines over polygons: the smallest target wins.
    const rank = { "data-point": 0, "data-line": 1, "data-outline": 2, "data-fill": 2 };
    const hit = hits.sort((a, b) => rank[a.layer.id] - rank[b.layer.id])[0];
    const fid = hit.id;
    selection = fid;
    select(fid);
    inspector.replaceChildren(inspect(fid, hit.properties, hit.geometry?.type, e.lngLat));
    if (fid === undefined || fid === null) return;
    try {
      const item = await api(`${base}/items/${encodeURIComponent(fid)}`, { headers: { Accept: "application/geo+json" } });
      if (selection !== fid) return;
      inspector.replaceChildren(inspect(fid, item.properties || {}, item.geometry?.type, e.lngLat, "full record"));
    } catch (err) {
      if (selection !== fid) return;
      inspector.append(h("p", { class: "muted small" }, `Showing the tile’s properties (the full record could not be read: ${err.message}).`));
    }
  });
  map.on("mousemove", (e) => {
    const { x, y } = e.point;
    const any = map.queryRenderedFeatures([[x - 3, y - 3], [x + 3, y + 3]], { layers: DATA_LAYERS }).length > 0;
    map.getCanvas().style.cursor = any ? "pointer" : "";
  });

  return () => {
    if (window.geoflowMap === map) delete window.geoflowMap;
    map.remove();
  };
}

/** Longitudes and latitudes of an extent, one line each. */
function extentRows(e) {
  const f = (v) => Number(v).toFixed(2);
  if (!e) return [[h("dt", {}, "Extent"), h("dd", {}, "–")]];
  return [
    [h("dt", {}, "Longitude"), h("dd", { class: "mono small" }, `${f(e[0])} … ${f(e[2])}`)],
    [h("dt", {}, "Latitude"), h("dd", { class: "mono small" }, `${f(e[1])} … ${f(e[3])}`)],
  ];
}

function legendItem(kind, label) {
  return h("span", { class: "legend-item" }, h("span", { class: `swatch swatch-${kind}` }), label);
}

function inspect(fid, properties, geometryType, lngLat, origin = "tile") {
  const props = properties || {};
  const titleKey = NAME_KEYS.find((k) => props[k] !== undefined && props[k] !== null && props[k] !== "");
  const rows = Object.entries(props);
  return h(
    "div",
    { class: "inspector-body", "data-fid": fid ?? "", "data-origin": origin },
    h("div", { class: "inspector-title" }, titleKey ? String(props[titleKey]) : `Feature ${fid ?? ""}`),
    h(
      "div",
      { class: "muted small" },
      [fid !== undefined && fid !== null ? `fid ${fid}` : null, geometryType, lngLat ? `at ${lngLat.lng.toFixed(4)}, ${lngLat.lat.toFixed(4)}` : null].filter(Boolean).join(" · "),
    ),
    rows.length
      ? h(
          "table",
          { class: "props" },
          h(
            "tbody",
            {},
            rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v === null ? h("span", { class: "muted" }, "null") : typeof v === "object" ? JSON.stringify(v) : String(v)))),
          ),
        )
      : h("p", { class: "muted" }, "No properties."),
  );
}

function sameOrigin(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

/** A tile URL template made absolute without touching its `{z}/{x}/{y}` (URL() would escape them). */
function absoluteTemplate(t, relativeTo) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(t)) return t;
  if (t.startsWith("/")) return `${location.origin}${t}`;
  return new URL(".", new URL(relativeTo, location.href)).href + t;
}

/** Lines every 30° for orientation on the plain background. */
function graticule() {
  const features = [];
  for (let lon = -180; lon <= 180; lon += 30) {
    features.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: [[lon, -85], [lon, 85]] } });
  }
  for (let lat = -60; lat <= 60; lat += 30) {
    const coords = [];
    for (let lon = -180; lon <= 180; lon += 10) coords.push([lon, lat]);
    features.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: coords } });
  }
  return { type: "FeatureCollection", features };
}

