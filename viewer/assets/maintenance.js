// Maintenance: the cameras with a problem now (current picture beside the reference,
// acknowledgement), availability per commune for a month (CSV export), planned works.
// The server filters everything by the user's scope; police get it read only.

import { api, call, cameraPath } from "./api.js";
import { applyI18n, formatAge, formatDateTime, formatNumber, onLangChange, t } from "./i18n.js";
import { Stills } from "./stills.js";
import { clear, every, h, keepHeader } from "./ui.js";

const POLL_MS = 5000;
const PICTURE_SECONDS = 15;
// A reference changes when learned or accepted: fetched again when its time changes (its
// URL names it), else hourly. Every fetch is journaled like a snapshot.
const REFERENCE_SECONDS = 3600;

const notice = document.getElementById("notice");
const incidentsList = document.getElementById("incidents");
const problemsSummary = document.getElementById("problems-summary");
const monthInput = document.getElementById("month");
const csvLink = document.getElementById("csv");
const rows = document.getElementById("availability-rows");
const worksList = document.getElementById("works");
const worksForm = document.getElementById("works-form");

const stills = new Stills();
let me = null;
let cameras = [];
let state = { incidents: [], works: [] };
let report = null;
let shownIncidents = "";
const openCommunes = new Set();

const canAct = () => me && (me.role === "admin" || me.role === "operator");
const encode = encodeURIComponent;

function showError(key, error) {
  notice.hidden = false;
  notice.textContent = t(key, { error: error.message });
}

function cameraName(id) {
  const camera = cameras.find((c) => c.id === id);
  return camera ? camera.name : id;
}

function communeName(id) {
  const camera = cameras.find((c) => c.commune === id);
  return camera ? camera.commune_name : id;
}

function conditionText(incident) {
  return incident.kind === "stream" ? t(`maint.stream.${incident.state}`) : t(`picture.${incident.state}`);
}

function picture(url, period, label, missing) {
  const img = h("img", { alt: label, decoding: "async" });
  const box = h("figure", { class: "card-still" }, h("span", { class: "no-still", text: missing }), img,
    h("figcaption", { text: label }));
  if (url) stills.attach(img, url, period, box);
  return box;
}

function acknowledgement(incident) {
  if (incident.acknowledged) {
    const ack = incident.acknowledged;
    return h("p", { class: "ack done", dataset: { ack: incident.incident } },
      h("span", { text: t("maint.acknowledged", { user: ack.user, time: formatDateTime(ack.at) }) }),
      ack.comment ? h("q", { text: ack.comment }) : null);
  }
  if (!canAct()) return h("p", { class: "ack", text: t("maint.notAcknowledged") });
  const comment = h("input", { type: "text", maxlength: "500", "aria-label": t("maint.comment"),
    placeholder: t("maint.comment") });
  return h("form", { class: "ack-form", dataset: { ack: incident.incident }, on: { submit: async (event) => {
    event.preventDefault();
    try {
      await call("POST", `/api/incidents/${encode(incident.incident)}/acknowledge`, { comment: comment.value });
      await refreshIncidents(true);
    } catch (error) {
      showError("maint.error", error);
    }
  } } }, comment, h("button", { type: "submit", class: "primary", text: t("maint.acknowledge") }));
}

function acceptButton(incident) {
  if (!canAct() || incident.kind !== "picture") return null;
  return h("button", { type: "button", class: "accept", text: t("maint.accept"), on: { click: async (event) => {
    event.target.disabled = true;
    try {
      await call("POST", `/api/cameras/${encode(incident.camera)}/picture/reference`);
      notice.hidden = false;
      notice.textContent = t("maint.accepted");
    } catch (error) {
      showError("maint.error", error);
    } finally {
      event.target.disabled = false;
    }
  } } });
}

function incidentItem(incident, now) {
  const name = incident.name || cameraName(incident.camera);
  return h("li", { class: `incident ${incident.acknowledged ? "acknowledged" : ""}`,
    dataset: { incident: incident.incident, camera: incident.camera, state: incident.state } },
  h("div", { class: "incident-pictures" },
    picture(`${cameraPath(incident.camera)}/snapshot.jpg`, PICTURE_SECONDS, t("maint.now"), t("maint.noPicture")),
    picture(incident.reference_at
      ? `/api/cameras/${encode(incident.camera)}/picture/reference.jpg?at=${incident.reference_at}` : null,
    REFERENCE_SECONDS, t("maint.reference"), t("maint.noReference"))),
  h("div", { class: "incident-body" },
    h("a", { class: "card-title", href: cameraPath(incident.camera), text: name }),
    h("p", { class: "incident-what" },
      h("span", { class: `badge ${incident.kind === "stream" ? `state-${incident.state}` : "picture picture-problem"}`,
        text: conditionText(incident) }),
      h("span", { class: "commune-name", text: communeName(incident.commune) }),
      incident.planned ? h("span", { class: "tag", text: t("maint.planned") }) : null),
    h("p", { class: "incident-since", text: t("maint.since", {
      time: formatDateTime(incident.since), duration: formatAge(now - incident.since) }) }),
    acknowledgement(incident), acceptButton(incident)));
}

function renderIncidents() {
  incidentsList.removeAttribute("aria-busy");
  const now = state.now || Date.now() / 1000;
  // Kept as they are while nothing changed: a comment being typed is not wiped by the poll.
  const key = JSON.stringify(state.incidents.map((i) => [i.incident, i.state, i.acknowledged, i.planned,
    i.reference_at]));
  if (key === shownIncidents) {
    for (const item of incidentsList.querySelectorAll("li.incident")) {
      const incident = state.incidents.find((i) => i.incident === item.dataset.incident);
      item.querySelector(".incident-since").textContent = t("maint.since", {
        time: formatDateTime(incident.since), duration: formatAge(now - incident.since) });
    }
    return;
  }
  shownIncidents = key;
  clear(incidentsList).append(...state.incidents.map((incident) => incidentItem(incident, now)));
  if (!state.incidents.length) incidentsList.append(h("li", { class: "empty", text: t("maint.noProblem") }));
  problemsSummary.textContent = state.incidents.length ? t("maint.problemCount", {
    count: state.incidents.length, unacknowledged: state.incidents.filter((i) => !i.acknowledged).length }) : "";
  stills.prune();
}

function worksItem(works) {
  const on = [...works.communes.map((c) => t("maint.worksCommune", { name: communeName(c) })),
    ...works.cameras.map(cameraName)].join(", ");
  return h("li", { class: "works-item", dataset: { works: works.key } },
    h("strong", { text: on }), h("span", { text: t("maint.worksPeriod", {
      start: formatDateTime(works.start), end: formatDateTime(works.end) }) }),
    h("q", { text: works.reason }),
    canAct() ? h("button", { type: "button", class: "ghost", text: t("maint.worksCancel"), on: { click: async () => {
      try {
        await call("DELETE", `/api/works/${encode(works.key)}`);
        await refreshIncidents(true);
      } catch (error) {
        showError("maint.error", error);
      }
    } } }) : null);
}

function renderWorks() {
  clear(worksList).append(...state.works.map(worksItem));
  if (!state.works.length) worksList.append(h("li", { class: "empty", text: t("maint.noWorks") }));
}

async function refreshIncidents(force = false) {
  try {
    state = await call("GET", "/api/incidents");
    notice.hidden = true;
  } catch (error) {
    if (error.status !== 401) showError("maint.loadError", error);
    return;
  }
  if (force) shownIncidents = "";
  const before = shownIncidents;
  renderIncidents();
  // An incident opened, closed or acknowledged: the month's figures changed too.
  if (shownIncidents !== before && report) refreshAvailability();
  renderWorks();
}

// -- availability -------------------------------------------------------------------------

function monthRange() {
  const [year, month] = monthInput.value.split("-").map(Number);
  const since = new Date(year, month - 1, 1).getTime() / 1000;
  const until = new Date(year, month, 1).getTime() / 1000;
  return { since, until };
}

function pct(value) {
  return value === null || value === undefined ? t("maint.noData") : `${formatNumber(value, 2)} %`;
}

function cells(row) {
  return [pct(row.stream_up_pct), pct(row.picture_usable_pct), pct(row.unknown_pct), pct(row.planned_pct),
    String(row.incidents), row.mttr_seconds === null ? t("maint.noData") : formatAge(row.mttr_seconds),
    String(row.open_incidents)].map((text) => h("td", { text }));
}

function renderAvailability() {
  if (!report) return;
  document.getElementById("availability").removeAttribute("aria-busy");
  clear(rows);
  for (const commune of report.communes) {
    const expanded = openCommunes.has(commune.commune);
    const toggle = h("button", { type: "button", class: "ghost expand", "aria-expanded": String(expanded),
      "aria-label": t("maint.showCameras", { commune: communeName(commune.commune) }), text: expanded ? "▾" : "▸",
      on: { click: () => {
        if (openCommunes.has(commune.commune)) openCommunes.delete(commune.commune);
        else openCommunes.add(commune.commune);
        renderAvailability();
      } } });
    rows.append(h("tr", { class: "commune-row", dataset: { commune: commune.commune } },
      h("th", { scope: "row" }, toggle, h("span", { text: communeName(commune.commune) })),
      h("td", { text: String(commune.cameras) }), ...cells(commune)));
    if (!expanded) continue;
    for (const camera of report.cameras.filter((c) => c.commune === commune.commune)) {
      rows.append(h("tr", { class: "camera-row", dataset: { camera: camera.camera } },
        h("th", { scope: "row", class: "camera-name", text: cameraName(camera.camera) }), h("td"), ...cells(camera)));
    }
  }
}

async function refreshAvailability() {
  const { since, until } = monthRange();
  const query = `since=${since}&until=${until}`;
  csvLink.href = `/api/availability?${query}&format=csv`;
  csvLink.download = `vigie-disponibilite-${monthInput.value}.csv`;
  try {
    report = await call("GET", `/api/availability?${query}`);
  } catch (error) {
    if (error.status !== 401) showError("maint.loadError", error);
    return;
  }
  renderAvailability();
}

// -- planned works form ---------------------------------------------------------------------

function fillWorksForm() {
  const target = document.getElementById("works-target");
  const communes = new Map(cameras.map((c) => [c.commune, c.commune_name]));
  clear(target).append(
    ...[...communes].map(([id, name]) => h("option", { value: `commune:${id}`, text: t("maint.worksCommune", { name }) })),
    ...cameras.map((c) => h("option", { value: `camera:${c.id}`, text: `${c.name} (${c.commune_name})` })));
}

async function submitWorks(event) {
  event.preventDefault();
  const [kind, id] = document.getElementById("works-target").value.split(/:(.*)/s);
  const epoch = (input) => new Date(document.getElementById(input).value).getTime() / 1000;
  try {
    await call("POST", "/api/works", {
      cameras: kind === "camera" ? [id] : [], communes: kind === "commune" ? [id] : [],
      start: epoch("works-start"), end: epoch("works-end"), reason: document.getElementById("works-reason").value,
    });
    document.getElementById("works-reason").value = "";
    await refreshIncidents(true);
    await refreshAvailability();
  } catch (error) {
    showError("maint.error", error);
  }
}

async function main() {
  applyI18n(document);
  me = await api.me();
  keepHeader(document.getElementById("header"), me, () => []);
  cameras = await api.cameras();
  const today = new Date();
  monthInput.value = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}`;
  monthInput.addEventListener("change", refreshAvailability);
  if (canAct()) {
    worksForm.hidden = false;
    fillWorksForm();
    worksForm.addEventListener("submit", submitWorks);
  }
  every(POLL_MS, refreshIncidents);
  every(60000, refreshAvailability);
  onLangChange(() => {
    shownIncidents = "";
    renderIncidents();
    renderWorks();
    renderAvailability();
    if (canAct()) fillWorksForm();
  });
}

main().catch((error) => {
  if (error.status !== 401) showError("maint.loadError", error);
});
