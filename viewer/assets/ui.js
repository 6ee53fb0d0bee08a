// Small DOM helpers shared by the pages, and the page header (user, role, language, logout).
// Text always goes in through textContent: camera names never become markup.

import { api } from "./api.js";
import { lang, onLangChange, t, toggleLang } from "./i18n.js";

/** h("a", {href: "/", class: "x", on: {click: fn}, dataset: {id: 1}}, "text", child...) */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "on") for (const [event, fn] of Object.entries(value)) element.addEventListener(event, fn);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "text") element.textContent = value;
    else if (name === "style") throw new Error("no inline style attributes (CSP): use classes or element.style");
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export const STATES = ["connecting", "live", "stalled", "offline"];

export function stateOf(camera) {
  return camera && STATES.includes(camera.state) ? camera.state : "unknown";
}

/** How old the camera's latest picture is: since it was decoded, plus how far behind its
 * camera's clock it came (a slow link, a busy server); null if there is none. */
export function pictureAge(camera) {
  if (!camera || typeof camera.frame_age !== "number" || camera.frame_age < 0) return null;
  return camera.frame_age + (typeof camera.behind === "number" && camera.behind > 0 ? camera.behind : 0);
}

export function stateText(camera) {
  return t(`state.${stateOf(camera)}`);
}

/** The picture's raised conditions (picture health), worst first: [{condition, since}]. */
export function pictureConditions(camera) {
  const conditions = camera && camera.picture && Array.isArray(camera.picture.conditions) ? camera.picture.conditions : [];
  const order = ["black", "covered", "frozen", "moved", "blurred", "too_dark", "too_bright"];
  return conditions.filter((c) => order.includes(c.condition))
    .sort((a, b) => order.indexOf(a.condition) - order.indexOf(b.condition));
}

/** "camera covered since 14:02", for each raised condition; empty when the picture is fine. */
export function pictureText(camera) {
  return pictureConditions(camera).map((c) => t("picture.since", {
    condition: t(`picture.${c.condition}`),
    time: new Date(c.since * 1000).toLocaleTimeString(lang() === "fr" ? "fr-FR" : "en-GB",
      { hour: "2-digit", minute: "2-digit" }),
  })).join(" · ");
}

/** A warning badge naming the picture's conditions, or null (shown beside the state badge). */
export function pictureBadge(camera) {
  const conditions = pictureConditions(camera);
  if (!conditions.length) return null;
  const tampering = conditions.some((c) => !c.condition.startsWith("too_"));
  return h("span", { class: `badge picture ${tampering ? "picture-problem" : "picture-note"}`,
    dataset: { picture: conditions.map((c) => c.condition).join(" ") } },
    h("span", { class: "picture-mark", "aria-hidden": "true", text: "!" }),
    h("span", { class: "badge-text", text: pictureText(camera) }));
}

/** A coloured dot plus the state in words (colour is never the only cue). */
export function stateBadge(camera) {
  const state = stateOf(camera);
  return h("span", { class: `badge state-${state}` },
    h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "badge-text", text: stateText(camera) }));
}

/** The page header: brand (link home), optional middle content, user, language, logout. */
export function renderHeader(header, me, middle = []) {
  const brand = h("a", { class: "brand", href: "/", "aria-label": t("nav.home") },
    h("img", { src: "/assets/vigie.svg", alt: "", width: "32", height: "32" }),
    h("span", { class: "brand-name", text: t("app.name") }));
  const user = h("span", { class: "user", text: t("user.label", { user: me.user, role: t(`role.${me.role}`) }) });
  const langButton = h("button", {
    type: "button", class: "ghost lang", lang: t("lang.switch") === "English" ? "en" : "fr",
    "aria-label": t("lang.switchLabel"), text: t("lang.switch"), on: { click: toggleLang },
  });
  const logout = h("button", {
    type: "button", class: "ghost logout", text: t("user.logout"),
    on: {
      click: async () => {
        try {
          await api.logout();
        } finally {
          location.assign("/login");
        }
      },
    },
  });
  // Camera health for who may see it (server/api/maintenance.py); not on a wall screen.
  const maintenance = ["admin", "operator", "police"].includes(me.role) && location.pathname !== "/maintenance"
    ? h("a", { class: "nav-link", href: "/maintenance", text: t("nav.maintenance") }) : null;
  clear(header).append(brand, ...(maintenance ? [maintenance] : []), h("div", { class: "header-middle" }, middle),
    h("div", { class: "header-user" }, user, langButton, logout));
}

/** Re-render the header after a language switch. */
export function keepHeader(header, me, middle) {
  renderHeader(header, me, middle());
  onLangChange(() => renderHeader(header, me, middle()));
}

export function formatBitrate(bps) {
  if (!bps) return "—";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

/** Run `fn` every `ms` while the page is visible, at once when it becomes visible again.
 * Returns a function that stops it. */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (!document.hidden) {
      try {
        await fn();
      } catch (error) {
        console.warn(error);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  const onVisible = () => {
    if (!document.hidden && timer !== null) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener("visibilitychange", onVisible);
  tick();
  return () => {
    stopped = true;
    document.removeEventListener("visibilitychange", onVisible);
    if (timer !== null) clearTimeout(timer);
  };
}
