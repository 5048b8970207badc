// The console's shell: hash routes to views, the token dialog, and the nav. Each view module
// exports `render(root, route)` and may answer a cleanup function (timers, the map).

import { getToken, setToken } from "./api.js";
import { errorBox, h } from "./ui.js";

const VIEWS = {
  datasets: () => import("./views/datasets.js"),
  jobs: () => import("./views/jobs.js"),
  reports: () => import("./views/reports.js"),
  map: () => import("./views/map.js"),
  upload: () => import("./views/upload.js"),
};

const root = document.getElementById("view");
let cleanup = null;
let generation = 0;

/** `#/jobs/abc?status=failed` → `{view: "jobs", args: ["abc"], query: URLSearchParams}`. */
export function parseRoute(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [view, ...args] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { view: VIEWS[view] ? view : "datasets", args, query: new URLSearchParams(query) };
}

async function route() {
  const current = ++generation;
  const r = parseRoute();
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.warn("view cleanup failed", e);
    }
    cleanup = null;
  }
  for (const a of document.querySelectorAll(".tabs a")) {
    a.classList.toggle("active", a.dataset.view === r.view);
    if (a.dataset.view === r.view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.view = r.view;
  root.replaceChildren();
  let module;
  try {
    module = await VIEWS[r.view]();
  } catch (e) {
    root.replaceChildren(errorBox(e, { what: `The ${r.view} view could not be loaded`, retry: route }));
    return;
  }
  if (current !== generation) return;
  try {
    const done = await module.render(root, r);
    if (current !== generation) {
      if (typeof done === "function") done();
      return;
    }
    cleanup = typeof done === "function" ? done : null;
  } catch (e) {
    console.warn(e);
    root.append(errorBox(e, { what: "The view failed", retry: route }));
  }
}

// The token: a dialog opened by the button, by any 401, or by an "Enter token" button.
const dialog = document.getElementById("token-dialog");
const input = document.getElementById("token-input");
const reason = document.getElementById("token-reason");
const button = document.getElementById("token-button");
const defaultReason = reason.innerHTML;

function showTokenState() {
  const set = Boolean(getToken());
  button.dataset.state = set ? "set" : "none";
  button.textContent = set ? "Token set" : "Set token";
  button.title = set ? "A bearer token is sent with every API call; click to change it" : "Enter an API token";
}

// After "Cancel", 401s stop opening the dialog until a token is entered or asked for.
let dismissed = false;

function askToken(message) {
  if (dialog.open) return;
  dismissed = false;
  reason.replaceChildren();
  if (message) reason.append(h("strong", { class: "dialog-alert" }, message), " ");
  reason.insertAdjacentHTML("beforeend", defaultReason);
  input.value = getToken();
  dialog.showModal();
  input.focus();
}

button.addEventListener("click", () => askToken());
document.getElementById("token-cancel").addEventListener("click", () => {
  dismissed = true;
  dialog.close("cancel");
});
document.getElementById("token-clear").addEventListener("click", () => {
  setToken("");
  input.value = "";
  dialog.close("clear");
});
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = input.value.trim();
  if (!token) return;
  setToken(token);
  dialog.close("saved");
});
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "saved" || dialog.returnValue === "clear") route();
  else dismissed = true; // Cancel or Escape
});
window.addEventListener("geoflow:token", showTokenState);
window.addEventListener("geoflow:ask-token", () => askToken());
window.addEventListener("geoflow:unauthorized", () => {
  if (!dismissed) askToken(getToken() ? "The server refused this token." : "This server needs a token.");
});

window.addEventListener("hashchange", route);
showTokenState();
route();
