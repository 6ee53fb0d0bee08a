// Wall edit panel for operators and admins: layout, the camera of a cell, a tour.
// Every change is one PUT /api/walls/{id}; the answer (and the `wall` message every
// screen on that wall receives) redraws the cells.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { clear, h } from "./ui.js";

export const LAYOUTS = ["1x1", "2x2", "3x3", "4x4"];

export function grid(layout) {
  const [columns, rows] = String(layout || "1x1").toLowerCase().split("x").map((n) => parseInt(n, 10) || 1);
  return { columns, rows };
}

/** Cells in reading order (row, then column). */
export function orderedCells(wall) {
  return [...wall.cells].sort((a, b) => a.row - b.row || a.column - b.column);
}

export class WallEditor {
  constructor(aside, { onApplied }) {
    this.aside = aside;
    this.onApplied = onApplied;
    this.wall = null;
    this.cameras = [];
    this.selected = null; // index into orderedCells(wall)
    this.tourChoice = null; // Set of camera ids ticked for a tour
    this.status = { text: "", kind: "" };
  }

  update(wall, cameras, selected) {
    if (!this.wall || this.wall.id !== wall.id) this.tourChoice = null;
    this.wall = wall;
    this.cameras = cameras;
    this.selected = selected;
    this.render();
  }

  async send(body) {
    this.setStatus(t("edit.saving"), "");
    try {
      const wall = await api.putWall(this.wall.id, body);
      this.setStatus(t("edit.saved"), "ok");
      if (wall && wall.cells) this.onApplied(wall);
    } catch (error) {
      this.setStatus(t("edit.failed", { error: error.message }), "error");
    }
  }

  setStatus(text, kind) {
    this.status = { text, kind };
    const line = this.aside.querySelector(".status-line");
    if (line) {
      line.textContent = text;
      line.className = `status-line ${kind}`;
    }
  }

  render() {
    const wall = this.wall;
    const cells = orderedCells(wall);
    const title = h("h2", { id: "editor-title", text: t("edit.title") });
    const status = h("p", { class: `status-line ${this.status.kind}`, role: "status", text: this.status.text });
    if (wall.automatic) {
      clear(this.aside).append(title, h("p", { class: "hint", text: t("edit.automatic") }));
      return;
    }
    // layout
    const layoutButtons = LAYOUTS.map((layout) => h("button", {
      type: "button", "aria-pressed": String(layout === wall.layout), dataset: { layout }, text: layout,
      on: {
        click: () => {
          const { columns, rows } = grid(layout);
          const ids = cells.map((cell) => cell.camera);
          const count = columns * rows;
          const cameras = [...ids.slice(0, count), ...Array(Math.max(0, count - ids.length)).fill(null)];
          this.selected = null;
          this.send({ layout, cameras });
        },
      },
    }));
    const layoutSet = h("fieldset", {}, h("legend", { text: t("edit.layout") }),
      h("div", { class: "layout-choices", role: "group", "aria-label": t("edit.layout") }, layoutButtons));
    // the selected cell
    const cellSet = h("fieldset", {}, h("legend", { text: t("edit.cell") }));
    const cell = this.selected !== null ? cells[this.selected] : null;
    if (!cell) {
      cellSet.append(h("p", { class: "hint", text: t("edit.cellNone") }));
    } else {
      const select = h("select", { id: "cell-camera", on: {
        change: () => {
          const camera = select.value || null;
          const next = cells.map((c, index) => ({
            camera: index === this.selected ? camera : c.camera,
            row: c.row, column: c.column, rows: c.rows, columns: c.columns,
          }));
          this.send({ layout: wall.layout, cells: next });
        },
      } }, h("option", { value: "", text: t("edit.empty") }));
      for (const [commune, list] of this.byCommune()) {
        select.append(h("optgroup", { label: commune },
          list.map((camera) => h("option", { value: camera.id, text: camera.name, selected: camera.id === cell.camera }))));
      }
      if (!cell.camera) select.value = "";
      cellSet.append(
        h("p", { class: "hint", text: t("edit.cellName", { n: this.selected + 1, row: cell.row + 1, column: cell.column + 1 }) }),
        h("label", { for: "cell-camera", text: t("edit.camera") }), select);
    }
    clear(this.aside).append(title, layoutSet, cellSet, this.renderTour(cells.length), status);
  }

  byCommune() {
    const groups = new Map();
    for (const camera of this.cameras) {
      const name = camera.commune_name || camera.commune;
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(camera);
    }
    return groups;
  }

  renderTour(pageSize) {
    const wall = this.wall;
    const tour = wall.tour || null;
    if (!this.tourChoice) {
      const running = tour && Array.isArray(tour.pages) ? tour.pages.flat().filter(Boolean) : null;
      this.tourChoice = new Set(running && running.length ? running : this.cameras.map((c) => c.id));
    }
    const seconds = h("input", { id: "tour-seconds", type: "number", min: "3", max: "3600", step: "1",
      value: String(tour && tour.seconds ? tour.seconds : 10) });
    const summary = h("p", { class: "hint", "aria-live": "polite" });
    const chosen = () => this.cameras.map((c) => c.id).filter((id) => this.tourChoice.has(id));
    const pages = () => {
      const ids = chosen();
      const result = [];
      for (let i = 0; i < ids.length; i += pageSize) result.push(ids.slice(i, i + pageSize));
      return result;
    };
    const refresh = () => {
      summary.textContent = t("edit.tourPages", { count: chosen().length, pages: pages().length, size: pageSize })
        + (pages().length < 2 ? ` ${t("edit.tourNeedTwo")}` : "");
      start.disabled = pages().length < 2; // a tour of one page is just a layout
    };
    const list = h("div", { class: "tour-cameras", role: "group", "aria-label": t("edit.tourCameras") });
    for (const [commune, cameras] of this.byCommune()) {
      list.append(h("div", { class: "group", text: commune }));
      for (const camera of cameras) {
        const box = h("input", { type: "checkbox", checked: this.tourChoice.has(camera.id), dataset: { camera: camera.id },
          on: {
            change: () => {
              if (box.checked) this.tourChoice.add(camera.id);
              else this.tourChoice.delete(camera.id);
              refresh();
            },
          } });
        list.append(h("label", {}, box, camera.name));
      }
    }
    const setAll = (on) => {
      this.tourChoice = new Set(on ? this.cameras.map((c) => c.id) : []);
      for (const box of list.querySelectorAll("input")) box.checked = on;
      refresh();
    };
    const start = h("button", { type: "button", class: "primary", id: "tour-start", text: t("edit.tourStart"),
      on: { click: () => this.send({ tour: { seconds: Math.max(3, parseInt(seconds.value, 10) || 10), pages: pages() } }) } });
    const stop = h("button", { type: "button", id: "tour-stop", text: t("edit.tourStop"), disabled: !tour,
      on: { click: () => this.send({ tour: null }) } });
    const state = h("p", { class: "hint", text: tour
      ? t("edit.tourOn", { pages: (tour.pages || []).length, seconds: tour.seconds })
      : t("edit.tourOff") });
    refresh();
    return h("fieldset", {}, h("legend", { text: t("edit.tour") }), state,
      h("label", { for: "tour-seconds", text: t("edit.tourSeconds") }), seconds,
      h("span", { text: t("edit.tourCameras") }),
      h("div", { class: "row" },
        h("button", { type: "button", class: "ghost", text: t("edit.selectAll"), on: { click: () => setAll(true) } }),
        h("button", { type: "button", class: "ghost", text: t("edit.selectNone"), on: { click: () => setAll(false) } })),
      list, summary, h("div", { class: "row" }, start, stop));
  }
}
