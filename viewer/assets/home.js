// Home: the walls the user may see, and the cameras by commune with their live state.
// Everything shown comes from the API, which already filters by the user's scope.

import { api, cameraPath, wallPath } from "./api.js";
import { applyI18n, formatAge, onLangChange, t } from "./i18n.js";
import { Stills } from "./stills.js";
import { clear, every, h, keepHeader, pictureAge, pictureBadge, stateBadge } from "./ui.js";

const WALL_STILL_SECONDS = 10;
const CAMERA_STILL_SECONDS = 30;
const POLL_MS = 5000;

const header = document.getElementById("header");
const wallsList = document.getElementById("walls");
const communesBox = document.getElementById("communes");
const search = document.getElementById("search");
const noMatch = document.getElementById("no-match");
const summary = document.getElementById("summary");
const notice = document.getElementById("notice");

const stills = new Stills();
let walls = [];
let cameras = [];
let cameraIds = "";

function normalise(text) {
  return (text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

function still(url, period, name) {
  const img = h("img", { alt: t("home.still", { name }), decoding: "async" });
  const box = h("div", { class: "card-still" }, h("span", { class: "no-still", text: t("home.noStill") }), img);
  stills.attach(img, url, period, box);
  return box;
}

function wallCard(wall) {
  const count = wall.cells.filter((cell) => cell.camera).length;
  const meta = h("div", { class: "card-meta" },
    h("span", { text: t("home.wallCameras", { layout: wall.layout, count }) }),
    wall.automatic ? h("span", { class: "tag", text: t("home.automatic") }) : null,
    wall.tour ? h("span", { class: "tag tour", text: t("home.tour") }) : null);
  return h("li", {},
    h("a", { class: "card", href: wallPath(wall.id), "aria-label": t("home.openWall", { name: wall.name }),
      dataset: { wall: wall.id } },
    still(`${wallPath(wall.id)}/snapshot.jpg`, WALL_STILL_SECONDS, wall.name),
    h("div", { class: "card-body" }, h("span", { class: "card-title", text: wall.name }), meta)));
}

function cameraMeta(camera) {
  // No null among them: replaceChildren() (updateCameras) would show it as the text "null".
  return [stateBadge(camera), pictureBadge(camera),
    h("span", { class: "age", title: t("age.label", { age: formatAge(pictureAge(camera)) }),
      text: formatAge(pictureAge(camera)) })].filter(Boolean);
}

function cameraCard(camera) {
  return h("li", { dataset: { search: normalise(`${camera.name} ${camera.commune_name} ${camera.id}`) } },
    h("a", { class: "card", href: cameraPath(camera.id), dataset: { camera: camera.id },
      "aria-label": t("home.openCamera", { name: camera.name, commune: camera.commune_name }) },
    still(`${cameraPath(camera.id)}/snapshot.jpg`, CAMERA_STILL_SECONDS, camera.name),
    h("div", { class: "card-body" },
      h("span", { class: "card-title", text: camera.name }),
      h("div", { class: "card-meta", dataset: { meta: camera.id } }, cameraMeta(camera)))));
}

function communeCount(list) {
  return t("home.communeCount", { live: list.filter((c) => c.state === "live").length, total: list.length });
}

function renderWalls() {
  wallsList.removeAttribute("aria-busy");
  clear(wallsList).append(...walls.map(wallCard));
  if (!walls.length) wallsList.append(h("li", { class: "empty", text: t("home.noWalls") }));
}

function groups() {
  const byCommune = new Map();
  for (const camera of cameras) {
    if (!byCommune.has(camera.commune)) byCommune.set(camera.commune, { name: camera.commune_name, cameras: [] });
    byCommune.get(camera.commune).cameras.push(camera);
  }
  return byCommune;
}

function renderCameras() {
  communesBox.removeAttribute("aria-busy");
  clear(communesBox);
  if (!cameras.length) {
    communesBox.append(h("p", { class: "empty", text: t("home.noCameras") }));
  }
  for (const [commune, group] of groups()) {
    const titleId = `commune-${commune}`;
    communesBox.append(h("section", { class: "commune", "aria-labelledby": titleId, dataset: { commune } },
      h("h2", { id: titleId }, h("span", { text: group.name }),
        h("span", { class: "commune-count", dataset: { count: commune }, text: communeCount(group.cameras) })),
      h("ul", { class: "cards camera-cards" }, group.cameras.map(cameraCard))));
  }
  stills.prune();
  applySearch();
  renderSummary();
}

function renderSummary() {
  const count = (state) => cameras.filter((c) => c.state === state).length;
  summary.textContent = cameras.length ? t("home.summary", {
    total: cameras.length, live: count("live"), stalled: count("stalled"), offline: count("offline"),
  }) : "";
}

/** Update states and ages in place: the stills and the scroll position stay. */
function updateCameras() {
  for (const camera of cameras) {
    const meta = communesBox.querySelector(`[data-meta="${CSS.escape(camera.id)}"]`);
    if (meta) meta.replaceChildren(...cameraMeta(camera));
  }
  for (const [commune, group] of groups()) {
    const count = communesBox.querySelector(`[data-count="${CSS.escape(commune)}"]`);
    if (count) count.textContent = communeCount(group.cameras);
  }
  renderSummary();
}

function applySearch() {
  const query = normalise(search.value.trim());
  let shown = 0;
  for (const section of communesBox.querySelectorAll(".commune")) {
    let inSection = 0;
    for (const item of section.querySelectorAll("li[data-search]")) {
      const match = !query || item.dataset.search.includes(query);
      item.hidden = !match;
      if (match) inSection++;
    }
    section.hidden = inSection === 0;
    shown += inSection;
  }
  noMatch.hidden = !(query && shown === 0 && cameras.length);
  noMatch.textContent = t("home.noMatch", { query: search.value.trim() });
}

function showError(error) {
  notice.hidden = false;
  notice.textContent = t("home.loadError", { error: error.message });
}

async function refreshCameras() {
  try {
    cameras = await api.cameras();
    notice.hidden = true;
  } catch (error) {
    if (error.status !== 401) showError(error);
    return;
  }
  const ids = cameras.map((camera) => camera.id).join("\n");
  if (ids !== cameraIds) {
    cameraIds = ids;
    renderCameras();
  } else {
    updateCameras();
  }
}

async function refreshWalls() {
  try {
    walls = await api.walls();
    renderWalls();
    stills.prune();
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
}

async function main() {
  applyI18n(document);
  const me = await api.me();
  keepHeader(header, me, () => []);
  search.addEventListener("input", applySearch);
  every(POLL_MS, refreshCameras);
  every(60000, refreshWalls); // a tour starting, a wall added by a reload
  onLangChange(() => {
    renderWalls();
    renderCameras();
  });
}

main().catch((error) => {
  if (error.status !== 401) showError(error);
});
