// The server's JSON API. Every answer is already filtered by the server for the user
// (a police officer only ever receives their own commune's cameras): the viewer shows what
// it gets and never adds anything of its own.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function isKiosk() {
  return new URLSearchParams(location.search).get("kiosk") === "1";
}

let sessionLostHandler = null;

/** What to do when the session is gone (401): by default, the login page, then back here. */
export function onSessionLost(handler) {
  sessionLostHandler = handler;
}

export function sessionLost() {
  if (sessionLostHandler) {
    sessionLostHandler();
    return;
  }
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

async function request(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, error.message || "network error");
  }
  if (response.status === 401) {
    sessionLost();
    throw new ApiError(401, "authentication required");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
  }
  return data;
}

/** Any JSON call: the answer, or an ApiError (a lost session goes to the login page). */
export const call = request;

export const api = {
  me: () => request("GET", "/api/me"),
  cameras: () => request("GET", "/api/cameras"),
  camera: (id) => request("GET", `/api/cameras/${encodeURIComponent(id)}`),
  walls: () => request("GET", "/api/walls"),
  wall: (id) => request("GET", `/api/walls/${encodeURIComponent(id)}`),
  putWall: (id, body) => request("PUT", `/api/walls/${encodeURIComponent(id)}`, body),
  logout: () => request("POST", "/logout", {}),
};

/** Is the session still valid? true / false, or null when the server does not answer. */
export async function sessionAlive() {
  try {
    const response = await fetch("/api/me", { credentials: "same-origin" });
    if (response.status === 401) return false;
    return response.ok ? true : null;
  } catch {
    return null;
  }
}

export function cameraPath(id) {
  return `/cameras/${encodeURIComponent(id)}`;
}

export function wallPath(id) {
  return `/walls/${encodeURIComponent(id)}`;
}
