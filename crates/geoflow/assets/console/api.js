// Calls to the geoflow API: the bearer token (kept in sessionStorage), RFC 9457 problems as
// errors, and a 401 announced to the page so that it can ask for a token.

const TOKEN_KEY = "geoflow.console.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts as long as the page.
  }
  window.dispatchEvent(new CustomEvent("geoflow:token", { detail: { set: Boolean(token) } }));
}

/** `Authorization` for the current token, if any. */
export function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A failed call: an HTTP status with the problem's title and detail, or a network error (status 0). */
export class ApiError extends Error {
  constructor(status, title, detail, url) {
    super(detail || title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.url = url;
  }

  get unauthorized() {
    return this.status === 401;
  }

  get notFound() {
    return this.status === 404;
  }
}

function unauthorized(url, detail) {
  window.dispatchEvent(new CustomEvent("geoflow:unauthorized", { detail: { url, detail } }));
}

/** The error a response stands for, read from its problem document when it has one. */
export async function problemOf(response, url) {
  let title = response.statusText;
  let detail = "";
  try {
    const text = await response.text();
    const body = JSON.parse(text);
    title = body.title || title;
    detail = body.detail || "";
  } catch {
    // Not a problem document: the status says it all.
  }
  return new ApiError(response.status, title, detail, url);
}

/**
 * GETs (or sends) `path` and answers its JSON. Throws an ApiError on any failure; a 401 also
 * raises `geoflow:unauthorized` on the window.
 */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      body,
      signal,
      headers: { Accept: "application/json", ...authHeaders(), ...headers },
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Network error", `the server did not answer (${e.message})`, path);
  }
  if (!response.ok) {
    const error = await problemOf(response, path);
    if (error.unauthorized) unauthorized(path, error.detail);
    throw error;
  }
  if (response.status === 204) return null;
  return response.json();
}

/**
 * Uploads `file` with XMLHttpRequest (for its progress events) as a multipart form.
 * `onProgress(loaded, total)` follows the request body. Resolves to the job of the 202 answer
 * and its `Location`; rejects with an ApiError.
 */
export function uploadFile(dataset, file, { onInvalid, sourceCrs, layer, onProgress } = {}) {
  const params = new URLSearchParams();
  if (onInvalid) params.set("on_invalid", onInvalid);
  if (sourceCrs) params.set("source_crs", sourceCrs);
  if (layer) params.set("layer", layer);
  const query = params.toString();
  const url = `/v1/datasets/${encodeURIComponent(dataset)}/uploads${query ? `?${query}` : ""}`;
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => {
      if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Handled below.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve({ job: body, location: xhr.getResponseHeader("Location") || `/v1/jobs/${body.id}` });
        return;
      }
      const error = new ApiError(xhr.status, body?.title || xhr.statusText, body?.detail || "", url);
      if (error.unauthorized) unauthorized(url, error.detail);
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "Network error", "the upload was interrupted", url)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "Cancelled", "the upload was cancelled", url)));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { xhr, done };
}
