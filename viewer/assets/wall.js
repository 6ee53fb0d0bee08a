// Wall view: the live wall as one video, a grid of labelled transparent cells on top
// (from the wall's layout and cells, in percent), a state dot and frame age per cell,
// keyboard navigation between walls, full screen, and the edit panel for operators.
// ?kiosk=1: no chrome, only the wall and small state indicators.

import { api, cameraPath, isKiosk, onSessionLost, sessionLost, wallPath } from "./api.js";
import { WallEditor, grid, orderedCells } from "./editor.js";
import { applyI18n, formatAge, onLangChange, t } from "./i18n.js";
import { LivePlayer } from "./player.js";
import { clear, every, h, pictureAge, pictureConditions, pictureText, renderHeader, stateOf, stateText } from "./ui.js";

const CAMERA_POLL_MS = 2000;
const kiosk = isKiosk();

const header = document.getElementById("header");
const main = document.getElementById("main");
const stage = document.getElementById("stage");
const cellsBox = document.getElementById("cells");
const overlay = document.getElementById("overlay");
const corner = document.getElementById("corner");
const editorBox = document.getElementById("editor");
const help = document.getElementById("help");

let me = null;
let walls = [];
let wall = null;
let cameras = new Map(); // id -> camera json (only those the user may see)
let player = null;
let connection = { state: "connecting", detail: {} };
let editing = false;
let selected = null;
let editor = null;

const canEdit = () => !kiosk && me && (me.role === "admin" || me.role === "operator");

function wallIdFromPath() {
  const parts = location.pathname.split("/");
  return decodeURIComponent(parts[2] || "");
}

function wallUrl(id) {
  return wallPath(id) + (kiosk ? "?kiosk=1" : "");
}

// -- cells ---------------------------------------------------------------------------------
function place(element, cell, columns, rows) {
  element.style.left = `${(cell.column / columns) * 100}%`;
  element.style.top = `${(cell.row / rows) * 100}%`;
  element.style.width = `${(cell.columns / columns) * 100}%`;
  element.style.height = `${(cell.rows / rows) * 100}%`;
}

function statusContent(camera) {
  const state = stateOf(camera);
  const age = state === "offline" ? stateText(camera) : formatAge(pictureAge(camera));
  const picture = pictureConditions(camera).length ? pictureText(camera) : "";
  // No null among them: replaceChildren() would show it as the text "null".
  return [h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "cell-age", text: age }),
    picture ? h("span", { class: "cell-picture", dataset: { picture: pictureConditions(camera).map((c) => c.condition).join(" ") },
      text: picture }) : null,
    h("span", { class: "visually-hidden", text: stateText(camera) })].filter(Boolean);
}

function renderCells() {
  clear(cellsBox);
  if (!wall) return;
  const { columns, rows } = grid(wall.layout);
  orderedCells(wall).forEach((cell, index) => {
    const camera = cell.camera ? cameras.get(cell.camera) : null;
    let element;
    if (editing) {
      element = h("button", { type: "button", class: "cell", "aria-pressed": String(selected === index),
        "aria-label": t("wall.cellPick", { n: index + 1, name: camera ? camera.name : t("wall.cellEmpty") }),
        on: { click: () => selectCell(index) } });
    } else if (camera && !kiosk) {
      element = h("a", { class: "cell", href: `${cameraPath(camera.id)}?wall=${encodeURIComponent(wall.id)}`,
        "aria-label": t("wall.cellOpen", { name: camera.name, commune: camera.commune_name }) });
    } else {
      element = h("div", { class: "cell" });
    }
    element.classList.toggle("selected", editing && selected === index);
    element.classList.toggle("empty", !cell.camera);
    element.dataset.cell = String(index);
    if (cell.camera) element.dataset.camera = cell.camera;
    place(element, cell, columns, rows);
    if (camera) {
      element.append(
        h("span", { class: `cell-status state-${stateOf(camera)}`, title: t("age.label", { age: formatAge(pictureAge(camera)) }) },
          statusContent(camera)),
        h("span", { class: "cell-label" }, h("span", { class: "cell-name", text: camera.name }), " ",
          h("span", { class: "cell-commune", text: camera.commune_name })));
    } else if (editing) {
      element.append(h("span"), h("span", { class: "cell-label", text: t("wall.cellEmpty") }));
    }
    cellsBox.append(element);
  });
}

/** New states and ages, in place (no re-render, focus stays where it is). */
function updateCellStates() {
  for (const element of cellsBox.querySelectorAll(".cell[data-camera]")) {
    const camera = cameras.get(element.dataset.camera);
    const status = element.querySelector(".cell-status");
    if (!camera || !status) continue;
    status.className = `cell-status state-${stateOf(camera)}`;
    status.title = t("age.label", { age: formatAge(pictureAge(camera)) });
    status.replaceChildren(...statusContent(camera));
  }
}

function selectCell(index) {
  selected = index;
  renderCells();
  renderEditor();
}

function renderEditor() {
  editorBox.hidden = !editing;
  main.classList.toggle("editing", editing);
  if (editing && editor && wall) editor.update(wall, [...cameras.values()], selected);
}

function setEditing(on) {
  editing = on && canEdit();
  selected = null;
  renderCells();
  renderEditor();
  renderChrome();
}

// -- applying a wall (first load, a `wall` message, a PUT answer, switching walls) ---------
function applyWall(next) {
  const sameCells = wall && next && wall.id === next.id && JSON.stringify(wall.cells) === JSON.stringify(next.cells)
    && wall.layout === next.layout;
  wall = next;
  const [width, height] = String(wall.size || "1920x1080").split("x").map(Number);
  if (width > 0 && height > 0) stage.style.setProperty("--ar", String(width / height));
  document.title = t("wall.title", { name: wall.name });
  if (selected !== null && selected >= wall.cells.length) selected = null;
  if (!sameCells) renderCells();
  renderEditor();
  renderChrome();
}

// -- chrome: header, connection state -------------------------------------------------------
function connectionText() {
  const { state, detail } = connection;
  if (state === "reconnecting") {
    return detail.retryIn ? t("conn.reconnecting", { seconds: detail.retryIn }) : t("conn.reconnectingNow");
  }
  if (state === "sessionLost") return kiosk ? t("conn.sessionLostKiosk") : t("conn.sessionLost");
  if (state === "forbidden") return t("conn.forbiddenWall");
  if (state === "live") return t("conn.live");
  return t("conn.connecting");
}

function connectionBadge(inHeader = true) {
  const badge = h("span", { class: `conn state-${connection.state}`, id: inHeader ? "conn" : null,
    role: inHeader ? "status" : null,
    dataset: { state: connection.state } },
  h("span", { class: "dot", "aria-hidden": "true" }), h("span", { text: connectionText() }));
  if (connection.detail.transport && connection.state === "live") {
    badge.append(h("span", { class: "conn-transport", text: `· ${t(`conn.transport.${connection.detail.transport}`)}` }));
  }
  return badge;
}

function headerMiddle() {
  if (!wall) return [];
  const index = walls.findIndex((w) => w.id === wall.id);
  const picker = h("select", { id: "wall-select", "aria-label": t("wall.choose"),
    on: { change: () => switchTo(picker.value) } },
  (index < 0 ? [wall, ...walls] : walls).map((w, i) => h("option", { value: w.id, selected: w.id === wall.id,
    text: i < 9 && index >= 0 ? `${i + 1}. ${w.name}` : w.name })));
  const fullscreen = !!document.fullscreenElement;
  const tools = h("div", { class: "toolbar" },
    canEdit() && !wall.automatic ? h("button", { type: "button", id: "edit-toggle", "aria-pressed": String(editing),
      text: editing ? t("wall.editDone") : t("wall.edit"), on: { click: () => setEditing(!editing) } }) : null,
    h("button", { type: "button", id: "fullscreen", text: fullscreen ? t("wall.exitFullscreen") : t("wall.fullscreen"),
      on: { click: toggleFullscreen } }),
    h("button", { type: "button", class: "ghost", id: "help-button", "aria-label": t("wall.help"), title: t("wall.help"),
      text: "?", on: { click: () => help.showModal() } }));
  return [
    h("button", { type: "button", class: "ghost", "aria-label": t("wall.previous"), title: t("wall.previous"),
      text: "◀", disabled: walls.length < 2, on: { click: () => step(-1) } }),
    picker,
    h("button", { type: "button", class: "ghost", "aria-label": t("wall.next"), title: t("wall.next"),
      text: "▶", disabled: walls.length < 2, on: { click: () => step(1) } }),
    connectionBadge(),
    wall.tour ? h("span", { class: "tag tour", text: t("wall.tourRunning", {
      seconds: wall.tour.seconds, pages: (wall.tour.pages || []).length }) }) : null,
    h("span", { class: "header-spacer" }),
    tools,
  ];
}

function renderChrome() {
  if (!kiosk && me) {
    const focused = document.activeElement && document.activeElement.id;
    renderHeader(header, me, headerMiddle());
    if (focused && header.querySelector(`#${CSS.escape(focused)}`)) header.querySelector(`#${CSS.escape(focused)}`).focus();
  }
  corner.replaceChildren(connectionBadge(false));
  overlay.textContent = connection.state === "live" ? "" : connectionText();
  overlay.classList.toggle("lost", connection.state === "sessionLost" || connection.state === "forbidden");
}

function onConnection(state, detail) {
  connection = { state, detail };
  if (state === "sessionLost" && !kiosk) {
    sessionLost();
    return;
  }
  renderChrome();
}

// -- navigation --------------------------------------------------------------------------
function switchTo(id, push = true) {
  const next = walls.find((w) => w.id === id);
  if (!next || (wall && next.id === wall.id)) return;
  if (push) history.pushState(null, "", wallUrl(id));
  selected = null;
  applyWall(next);
  player.setPath(wallPath(next.id), t("wall.video", { name: next.name }));
  api.wall(next.id).then((fresh) => wall && fresh.id === wall.id && applyWall(fresh)).catch(() => {});
}

function step(delta) {
  if (walls.length < 2 || !wall) return;
  const index = walls.findIndex((w) => w.id === wall.id);
  switchTo(walls[(index + delta + walls.length) % walls.length].id);
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else document.documentElement.requestFullscreen().catch(() => {});
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && (target.closest("input, select, textarea") || target.isContentEditable)) return;
  if (help.open) return; // the dialog handles Escape itself
  const key = event.key;
  if (key === "ArrowLeft" || key === "PageUp") step(-1);
  else if (key === "ArrowRight" || key === "PageDown") step(1);
  else if (/^[1-9]$/.test(key)) {
    const next = walls[Number(key) - 1];
    if (next) switchTo(next.id);
  } else if (key === "f" || key === "F") toggleFullscreen();
  else if (key === "?") help.showModal();
  else if (key === "Escape" && editing) setEditing(false);
  else return;
  event.preventDefault();
}

let pointerTimer = null;
function showPointer() {
  document.body.classList.add("pointer");
  clearTimeout(pointerTimer);
  pointerTimer = setTimeout(() => document.body.classList.remove("pointer"), 3000);
}

// -- start ---------------------------------------------------------------------------------
async function refreshCameras() {
  let list;
  try {
    list = await api.cameras();
  } catch {
    return; // the connection state already says what is wrong
  }
  const before = [...cameras.values()].map((c) => `${c.id}\n${c.name}\n${c.commune_name}`).join("\n");
  cameras = new Map(list.map((camera) => [camera.id, camera]));
  const after = list.map((c) => `${c.id}\n${c.name}\n${c.commune_name}`).join("\n");
  if (before !== after) {
    renderCells();
    renderEditor();
  } else {
    updateCellStates();
  }
}

function showMessage(text) {
  clear(main).append(h("p", { class: "message", role: "alert", text }));
}

async function start() {
  applyI18n(document);
  if (kiosk) {
    document.body.classList.add("kiosk");
    onSessionLost(() => onConnection("sessionLost", {}));
  }
  me = await api.me();
  const id = wallIdFromPath();
  const [list, first] = await Promise.all([
    api.walls(),
    api.wall(id).catch((error) => {
      if (error.status === 404) return null;
      throw error;
    }),
  ]);
  walls = list;
  if (!first) {
    if (!kiosk) renderHeader(header, me, []);
    showMessage(t("wall.notFound"));
    return;
  }
  if (canEdit()) editor = new WallEditor(editorBox, { onApplied: applyWall });
  applyWall(first);
  player = new LivePlayer({
    stage, path: wallPath(first.id), label: t("wall.video", { name: first.name }),
    onHello: (message) => message.wall && message.wall.id === wall.id && applyWall(message.wall),
    onWall: (next) => next.id === wall.id && applyWall(next),
    onState: onConnection,
  });
  window.vigiePlayer = player; // for the browser tests and for curious operators
  player.start();
  every(CAMERA_POLL_MS, refreshCameras);
  every(60000, async () => {
    walls = await api.walls();
    renderChrome();
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("fullscreenchange", () => {
    document.body.classList.toggle("fullscreen", !!document.fullscreenElement);
    renderChrome();
  });
  document.addEventListener("mousemove", showPointer);
  window.addEventListener("popstate", () => switchTo(wallIdFromPath(), false));
  onLangChange(() => {
    applyWall(wall);
    renderCells();
  });
}

start().catch((error) => {
  if (error.status !== 401) showMessage(error.message);
});
