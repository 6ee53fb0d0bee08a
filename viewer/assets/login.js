// Login page: keep the page asked for, show why a login failed, speak the viewer's language
// (the choice the viewer keeps in localStorage). Works without it too.
const params = new URLSearchParams(location.search);
const next = params.get("next");
if (next && next.startsWith("/") && !next.startsWith("//")) {
  document.getElementById("next").value = next;
}
if (params.get("error") === "1") document.getElementById("error").hidden = false;
if (params.get("error") === "throttled") document.getElementById("throttled").hidden = false;

const TEXTS = {
  fr: {
    title: "Vigie — connexion", subtitle: "Centre de supervision vidéo", user: "Identifiant",
    password: "Mot de passe", submit: "Se connecter", error: "Identifiant ou mot de passe incorrect.",
    throttled: "Trop d'essais : patientez avant de réessayer.", other: "English", otherLang: "en",
  },
  en: {
    title: "Vigie — sign in", subtitle: "Video supervision centre", user: "User name",
    password: "Password", submit: "Sign in", error: "Wrong user name or password.",
    throttled: "Too many attempts: wait a moment before trying again.", other: "Français", otherLang: "fr",
  },
};

function stored() {
  try {
    return localStorage.getItem("vigie.lang");
  } catch {
    return null;
  }
}

function apply(lang) {
  const texts = TEXTS[lang] || TEXTS.fr;
  document.documentElement.lang = lang;
  document.title = texts.title;
  for (const element of document.querySelectorAll("[data-text]")) element.textContent = texts[element.dataset.text];
  const button = document.getElementById("lang");
  button.textContent = texts.other;
  button.lang = texts.otherLang;
  button.hidden = false;
}

let lang = stored() === "en" ? "en" : "fr";
apply(lang);
document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "fr" ? "en" : "fr";
  try {
    localStorage.setItem("vigie.lang", lang);
  } catch {
    // not kept: this page only
  }
  apply(lang);
});
