// Single camera view: the camera at full resolution (same live transport as walls) with its
// statistics, refreshed every 2 s. Back button or Escape returns to where the user came from.

import { api, cameraPath, sessionLost, wallPath } from "./api.js";
import { applyI18n, formatAge, formatDateTime, formatNumber, onLangChange, t } from "./i18n.js";
import { LivePlayer } from "./player.js";
import { clear, every, formatBitrate, h, renderHeader, stateBadge } from "./ui.js";

const POLL_MS = 2000;

const header = document.getElementById("header");
const main = document.getElementById("main");
const stage = document.getElementById("stage");
const overlay = document.getElementById("overlay");
const corner = document.getElementById("corner");
const statsList = document.getElementById("stats");

let me = null;
let camera = null;
let connection = { state: "connecting", detail: {} };

const cameraId = decodeURIComponent(location.pathname.split("/")[2] || "");
const fromWall = new URLSearchParams(location.search).get("wall");

function goBack() {
  if (fromWall) {
    location.assign(wallPath(fromWall));
    return;
  }
  let sameSite = false;
  try {
    sameSite = document.referrer && new URL(document.referrer).origin === location.origin;
  } catch {
    sameSite = false;
  }
  if (sameSite && history.length > 1) history.back();
  else location.assign("/");
}

function connectionText() {
  const { state, detail } = connection;
  if (state === "reconnecting") {
    return detail.retryIn ? t("conn.reconnecting", { seconds: detail.retryIn }) : t("conn.reconnectingNow");
  }
  if (state === "live") return t("conn.live");
  if (state === "sessionLost") return t("conn.sessionLost");
  if (state === "forbidden") return t("conn.forbiddenCamera");
  return t("conn.connecting");
}

function connectionBadge(inHeader = true) {
  return h("span", { class: `conn state-${connection.state}`, id: inHeader ? "conn" : null,
    role: inHeader ? "status" : null,
    dataset: { state: connection.state } },
  h("span", { class: "dot", "aria-hidden": "true" }), h("span", { text: connectionText() }));
}

function renderChrome() {
  const back = h("button", { type: "button", id: "back", text: `← ${t("camera.back")}`, on: { click: goBack } });
  const title = camera
    ? [h("h1", { class: "header-title", text: camera.name }), h("span", { class: "header-sub", text: camera.commune_name })]
    : [];
  if (me) renderHeader(header, me, [back, ...title, camera ? connectionBadge() : null]);
  corner.replaceChildren(camera ? connectionBadge(false) : "");
  overlay.textContent = connection.state === "live" ? "" : connectionText();
  overlay.classList.toggle("lost", connection.state === "sessionLost" || connection.state === "forbidden");
}

function row(label, value, key) {
  return [h("dt", { text: label }), h("dd", { dataset: { stat: key }, text: value ?? t("camera.none") })];
}

function renderStats() {
  if (!camera) return;
  const c = camera;
  const resolution = c.width && c.height ? `${c.width} × ${c.height}` : null;
  const transport = connection.detail.transport ? t(`conn.transport.${connection.detail.transport}`) : null;
  clear(statsList).append(
    h("dt", { text: t("camera.state") }), h("dd", { dataset: { stat: "state" } }, stateBadge(c)),
    ...row(t("camera.reason"), c.reason || null, "reason"),
    ...row(t("camera.frameAge"), formatAge(c.frame_age), "frame_age"),
    ...row(t("camera.behind"), typeof c.behind === "number" ? formatAge(c.behind) : null, "behind"),
    ...row(t("camera.codec"), c.codec || null, "codec"),
    ...row(t("camera.resolution"), resolution, "resolution"),
    ...row(t("camera.fps"), typeof c.input_fps === "number" ? formatNumber(c.input_fps, 1) : null, "input_fps"),
    ...row(t("camera.bitrate"), formatBitrate(c.bitrate_bps), "bitrate"),
    ...row(t("camera.decoding"), c.decoding ? t(`camera.decoding.${c.decoding}`) : null, "decoding"),
    ...row(t("camera.reconnects"), String(c.reconnects_last_hour ?? 0), "reconnects"),
    ...row(t("camera.lastError"), c.last_error || null, "last_error"),
    ...row(t("camera.since"), c.since ? formatDateTime(c.since) : null, "since"),
    ...row(t("camera.commune"), c.commune_name, "commune"),
    ...row(t("camera.transport"), transport, "transport"),
  );
}

function applyCamera(next) {
  camera = next;
  if (camera.width > 0 && camera.height > 0) stage.style.setProperty("--ar", String(camera.width / camera.height));
  document.title = t("camera.title", { name: camera.name });
  renderChrome();
  renderStats();
}

async function refresh() {
  try {
    applyCamera(await api.camera(cameraId));
  } catch {
    // the connection badge tells; keep the last numbers
  }
}

function showMessage(text) {
  clear(main).append(h("p", { class: "message", role: "alert", text }));
}

async function start() {
  applyI18n(document);
  me = await api.me();
  let first;
  try {
    first = await api.camera(cameraId);
  } catch (error) {
    if (error.status === 404) {
      renderChrome();
      showMessage(t("camera.notFound"));
      return;
    }
    throw error;
  }
  applyCamera(first);
  const player = new LivePlayer({
    stage, path: cameraPath(cameraId), label: t("camera.video", { name: first.name }),
    onHello: (message) => message.camera && message.camera.id === cameraId && applyCamera(message.camera),
    onState: (state, detail) => {
      connection = { state, detail };
      if (state === "sessionLost") sessionLost();
      renderChrome();
      renderStats();
    },
  });
  window.vigiePlayer = player;
  player.start();
  every(POLL_MS, refresh);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !document.fullscreenElement) {
      event.preventDefault();
      goBack();
    } else if ((event.key === "f" || event.key === "F") && !event.ctrlKey && !event.metaKey && !event.altKey) {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else stage.requestFullscreen().catch(() => {});
    }
  });
  onLangChange(() => {
    applyCamera(camera);
  });
}

start().catch((error) => {
  if (error.status !== 401) showMessage(error.message);
});
