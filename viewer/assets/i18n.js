// Every string the viewer shows, in French (default) and English.
// Static HTML marks its text with data-i18n="key" (text) and
// data-i18n-attr="attribute:key;attribute:key" (aria-label, title, placeholder...).
// Scripts call t("key", {name: value}). The choice is kept in localStorage.

const STRINGS = {
  fr: {
    "app.name": "Vigie",
    "app.subtitle": "Centre de supervision vidéo",
    "lang.switch": "English",
    "lang.switchLabel": "Switch to English",
    "nav.home": "Accueil",
    "nav.main": "Navigation principale",
    "user.label": "Connecté : {user} ({role})",
    "user.logout": "Se déconnecter",
    "role.admin": "administrateur",
    "role.operator": "opérateur",
    "role.police": "police municipale",
    "role.kiosk": "écran mural",

    "home.title": "Vigie — accueil",
    "home.walls": "Murs d'images",
    "home.cameras": "Caméras",
    "home.search": "Rechercher une caméra ou une commune",
    "home.searchPlaceholder": "Rechercher (nom ou commune)…",
    "home.noWalls": "Aucun mur d'images disponible.",
    "home.noCameras": "Aucune caméra disponible.",
    "home.noMatch": "Aucune caméra ne correspond à « {query} ».",
    "home.communeCount": "{live} en direct sur {total}",
    "home.summary": "{total} caméras · {live} en direct · {stalled} figées · {offline} hors ligne",
    "home.wallCameras": "{layout} · {count} caméras",
    "home.automatic": "automatique",
    "home.tour": "séquence en cours",
    "home.openWall": "Ouvrir le mur {name}",
    "home.openCamera": "Ouvrir la caméra {name}, {commune}",
    "home.still": "Image récente de {name}",
    "home.noStill": "pas d'image",
    "home.loadError": "Impossible de charger les données ({error}). Nouvel essai dans quelques secondes.",

    "state.connecting": "connexion",
    "state.live": "en direct",
    "state.stalled": "figée",
    "state.offline": "hors ligne",
    "state.unknown": "état inconnu",
    "picture.frozen": "image gelée",
    "picture.black": "image noire",
    "picture.covered": "caméra masquée",
    "picture.blurred": "image floue",
    "picture.moved": "caméra déplacée",
    "picture.too_dark": "trop sombre",
    "picture.too_bright": "trop claire",
    "picture.since": "{condition} depuis {time}",
    "age.seconds": "{value} s",
    "age.minutes": "{value} min",
    "age.hours": "{value} h",
    "age.none": "aucune image",
    "age.label": "Dernière image il y a {age}",

    "conn.connecting": "Connexion…",
    "conn.live": "En direct",
    "conn.reconnecting": "Reconnexion dans {seconds} s…",
    "conn.reconnectingNow": "Reconnexion…",
    "conn.stalled": "Image figée, reconnexion…",
    "conn.sessionLost": "Session expirée",
    "conn.sessionLostKiosk": "Session perdue : rouvrez l'adresse de l'écran (lien kiosque).",
    "conn.forbiddenWall": "Ce mur montre désormais des caméras qui ne vous sont pas accessibles : l'affichage est arrêté.",
    "conn.forbiddenCamera": "Cette caméra ne vous est plus accessible : l'affichage est arrêté.",
    "conn.unavailable": "Flux indisponible",
    "conn.transport.fmp4": "vidéo H.264",
    "conn.transport.jpeg": "images JPEG",
    "conn.transport.mjpeg": "MJPEG",

    "wall.title": "Vigie — {name}",
    "wall.loading": "Chargement du mur…",
    "wall.notFound": "Ce mur n'existe pas ou ne vous est pas accessible.",
    "wall.choose": "Mur affiché",
    "wall.previous": "Mur précédent",
    "wall.next": "Mur suivant",
    "wall.fullscreen": "Plein écran",
    "wall.exitFullscreen": "Quitter le plein écran",
    "wall.edit": "Modifier le mur",
    "wall.editDone": "Terminer",
    "wall.help": "Raccourcis clavier",
    "wall.video": "Mur vidéo {name}",
    "wall.cellOpen": "Ouvrir {name} ({commune}) en plein écran",
    "wall.cellEmpty": "Case vide",
    "wall.cellPick": "Choisir la case {n} : {name}",
    "wall.tourRunning": "Séquence : {seconds} s, {pages} pages",

    "edit.title": "Modifier le mur",
    "edit.layout": "Disposition",
    "edit.cell": "Case sélectionnée",
    "edit.cellNone": "Cliquez sur une case du mur pour y placer une caméra.",
    "edit.cellName": "Case {n} (ligne {row}, colonne {column})",
    "edit.camera": "Caméra de la case",
    "edit.empty": "(case vide)",
    "edit.tour": "Séquence automatique",
    "edit.tourSeconds": "Secondes par page",
    "edit.tourCameras": "Caméras de la séquence",
    "edit.tourPages": "{count} caméras → {pages} pages de {size}",
    "edit.tourNeedTwo": "Une séquence demande au moins deux pages.",
    "edit.tourStart": "Démarrer la séquence",
    "edit.tourStop": "Arrêter la séquence",
    "edit.tourOff": "Aucune séquence en cours.",
    "edit.tourOn": "Séquence en cours : {pages} pages, {seconds} s chacune.",
    "edit.selectAll": "Tout",
    "edit.selectNone": "Rien",
    "edit.saving": "Enregistrement…",
    "edit.saved": "Mur mis à jour.",
    "edit.failed": "Échec : {error}",
    "edit.automatic": "Mur automatique d'une commune : il suit la configuration et ne se modifie pas ici.",

    "help.title": "Raccourcis clavier",
    "help.prevNext": "Mur précédent / suivant",
    "help.jump": "Aller au n-ième mur",
    "help.fullscreen": "Plein écran",
    "help.help": "Afficher cette aide",
    "help.escape": "Fermer / revenir",
    "help.close": "Fermer",

    "camera.title": "Vigie — {name}",
    "camera.back": "Retour",
    "camera.notFound": "Cette caméra n'existe pas ou ne vous est pas accessible.",
    "camera.video": "Caméra {name}",
    "camera.stats": "État de la caméra",
    "camera.state": "État",
    "camera.reason": "Cause",
    "camera.frameAge": "Âge de l'image",
    "camera.behind": "Retard sur la caméra",
    "camera.codec": "Codec",
    "camera.resolution": "Résolution",
    "camera.fps": "Images par seconde",
    "camera.bitrate": "Débit",
    "camera.decoding": "Décodage",
    "camera.decoding.full": "complet",
    "camera.decoding.keyframes": "images clés seulement",
    "camera.decoding.reduced": "réduit : images clés seulement, le serveur manque de CPU",
    "camera.reconnects": "Reconnexions (1 h)",
    "camera.lastError": "Dernière erreur",
    "camera.since": "Depuis",
    "camera.commune": "Commune",
    "camera.transport": "Transport",
    "camera.none": "—",
    "nav.maintenance": "Maintenance",
    "maint.title": "Vigie — maintenance",
    "maint.problems": "Problèmes en cours",
    "maint.noProblem": "Aucun problème en cours.",
    "maint.problemCount": "{count} problème(s) en cours · {unacknowledged} non acquitté(s)",
    "maint.stream.offline": "hors ligne",
    "maint.stream.stalled": "flux figé",
    "maint.since": "depuis le {time} ({duration})",
    "maint.now": "Image actuelle",
    "maint.reference": "Référence",
    "maint.noPicture": "pas d'image",
    "maint.noReference": "pas encore de référence",
    "maint.acknowledged": "Acquitté par {user} le {time}",
    "maint.notAcknowledged": "Non acquitté",
    "maint.comment": "Commentaire (intervention prévue, ticket…)",
    "maint.acknowledge": "Acquitter",
    "maint.accept": "Accepter comme référence",
    "maint.accepted": "La vue actuelle est la nouvelle référence.",
    "maint.planned": "travaux programmés",
    "maint.availability": "Disponibilité par commune",
    "maint.month": "Mois",
    "maint.csv": "Exporter en CSV",
    "maint.col.commune": "Commune",
    "maint.col.cameras": "Caméras",
    "maint.col.streamUp": "Flux disponible",
    "maint.col.pictureUsable": "Image exploitable",
    "maint.col.unknown": "Inconnu",
    "maint.col.planned": "Travaux",
    "maint.col.incidents": "Incidents",
    "maint.col.mttr": "Réparation (moy.)",
    "maint.col.mttrTitle": "Durée moyenne de réparation des incidents clos",
    "maint.col.open": "En cours",
    "maint.noData": "—",
    "maint.showCameras": "Voir les caméras de {commune}",
    "maint.availabilityHint": "Le temps où Vigie ne tournait pas compte comme inconnu ; les travaux programmés ne comptent pas contre la disponibilité.",
    "maint.works": "Travaux programmés",
    "maint.noWorks": "Aucuns travaux programmés.",
    "maint.worksNew": "Déclarer des travaux",
    "maint.worksOn": "Sur",
    "maint.worksFrom": "Du",
    "maint.worksUntil": "Au",
    "maint.worksReason": "Motif",
    "maint.worksAdd": "Déclarer",
    "maint.worksCancel": "Annuler ces travaux",
    "maint.worksCommune": "commune {name} (toutes ses caméras)",
    "maint.worksPeriod": "du {start} au {end}",
    "maint.error": "Action impossible : {error}",
    "maint.loadError": "Impossible de charger les données ({error}). Nouvel essai dans quelques secondes.",
  },
  en: {
    "app.name": "Vigie",
    "app.subtitle": "Video supervision centre",
    "lang.switch": "Français",
    "lang.switchLabel": "Passer en français",
    "nav.home": "Home",
    "nav.main": "Main navigation",
    "user.label": "Signed in: {user} ({role})",
    "user.logout": "Log out",
    "role.admin": "administrator",
    "role.operator": "operator",
    "role.police": "municipal police",
    "role.kiosk": "wall screen",

    "home.title": "Vigie — home",
    "home.walls": "Video walls",
    "home.cameras": "Cameras",
    "home.search": "Search a camera or a commune",
    "home.searchPlaceholder": "Search (name or commune)…",
    "home.noWalls": "No video wall available.",
    "home.noCameras": "No camera available.",
    "home.noMatch": "No camera matches “{query}”.",
    "home.communeCount": "{live} live out of {total}",
    "home.summary": "{total} cameras · {live} live · {stalled} stalled · {offline} offline",
    "home.wallCameras": "{layout} · {count} cameras",
    "home.automatic": "automatic",
    "home.tour": "tour running",
    "home.openWall": "Open the wall {name}",
    "home.openCamera": "Open the camera {name}, {commune}",
    "home.still": "Recent picture of {name}",
    "home.noStill": "no picture",
    "home.loadError": "Could not load the data ({error}). Retrying in a few seconds.",

    "state.connecting": "connecting",
    "state.live": "live",
    "state.stalled": "stalled",
    "state.offline": "offline",
    "state.unknown": "unknown state",
    "picture.frozen": "picture frozen",
    "picture.black": "picture black",
    "picture.covered": "camera covered",
    "picture.blurred": "picture blurred",
    "picture.moved": "camera moved",
    "picture.too_dark": "too dark",
    "picture.too_bright": "too bright",
    "picture.since": "{condition} since {time}",
    "age.seconds": "{value} s",
    "age.minutes": "{value} min",
    "age.hours": "{value} h",
    "age.none": "no picture",
    "age.label": "Last picture {age} ago",

    "conn.connecting": "Connecting…",
    "conn.live": "Live",
    "conn.reconnecting": "Reconnecting in {seconds} s…",
    "conn.reconnectingNow": "Reconnecting…",
    "conn.stalled": "Picture frozen, reconnecting…",
    "conn.sessionLost": "Session expired",
    "conn.sessionLostKiosk": "Session lost: reopen the screen's address (kiosk link).",
    "conn.forbiddenWall": "This wall now shows cameras you may not see: display stopped.",
    "conn.forbiddenCamera": "You may no longer see this camera: display stopped.",
    "conn.unavailable": "Stream unavailable",
    "conn.transport.fmp4": "H.264 video",
    "conn.transport.jpeg": "JPEG pictures",
    "conn.transport.mjpeg": "MJPEG",

    "wall.title": "Vigie — {name}",
    "wall.loading": "Loading the wall…",
    "wall.notFound": "This wall does not exist or is not available to you.",
    "wall.choose": "Wall shown",
    "wall.previous": "Previous wall",
    "wall.next": "Next wall",
    "wall.fullscreen": "Full screen",
    "wall.exitFullscreen": "Leave full screen",
    "wall.edit": "Edit the wall",
    "wall.editDone": "Done",
    "wall.help": "Keyboard shortcuts",
    "wall.video": "Video wall {name}",
    "wall.cellOpen": "Open {name} ({commune}) full screen",
    "wall.cellEmpty": "Empty cell",
    "wall.cellPick": "Select cell {n}: {name}",
    "wall.tourRunning": "Tour: {seconds} s, {pages} pages",

    "edit.title": "Edit the wall",
    "edit.layout": "Layout",
    "edit.cell": "Selected cell",
    "edit.cellNone": "Click a cell of the wall to put a camera in it.",
    "edit.cellName": "Cell {n} (row {row}, column {column})",
    "edit.camera": "Camera in the cell",
    "edit.empty": "(empty cell)",
    "edit.tour": "Camera tour",
    "edit.tourSeconds": "Seconds per page",
    "edit.tourCameras": "Cameras in the tour",
    "edit.tourPages": "{count} cameras → {pages} pages of {size}",
    "edit.tourNeedTwo": "A tour needs at least two pages.",
    "edit.tourStart": "Start the tour",
    "edit.tourStop": "Stop the tour",
    "edit.tourOff": "No tour running.",
    "edit.tourOn": "Tour running: {pages} pages, {seconds} s each.",
    "edit.selectAll": "All",
    "edit.selectNone": "None",
    "edit.saving": "Saving…",
    "edit.saved": "Wall updated.",
    "edit.failed": "Failed: {error}",
    "edit.automatic": "Automatic wall of a commune: it follows the configuration and is not edited here.",

    "help.title": "Keyboard shortcuts",
    "help.prevNext": "Previous / next wall",
    "help.jump": "Go to the n-th wall",
    "help.fullscreen": "Full screen",
    "help.help": "Show this help",
    "help.escape": "Close / go back",
    "help.close": "Close",

    "camera.title": "Vigie — {name}",
    "camera.back": "Back",
    "camera.notFound": "This camera does not exist or is not available to you.",
    "camera.video": "Camera {name}",
    "camera.stats": "Camera status",
    "camera.state": "State",
    "camera.reason": "Reason",
    "camera.frameAge": "Picture age",
    "camera.behind": "Behind the camera",
    "camera.codec": "Codec",
    "camera.resolution": "Resolution",
    "camera.fps": "Frames per second",
    "camera.bitrate": "Bitrate",
    "camera.decoding": "Decoding",
    "camera.decoding.full": "full",
    "camera.decoding.keyframes": "keyframes only",
    "camera.decoding.reduced": "reduced: keyframes only, the server is short of CPU",
    "camera.reconnects": "Reconnections (1 h)",
    "camera.lastError": "Last error",
    "camera.since": "Since",
    "camera.commune": "Commune",
    "camera.transport": "Transport",
    "camera.none": "—",
    "nav.maintenance": "Maintenance",
    "maint.title": "Vigie — maintenance",
    "maint.problems": "Problems now",
    "maint.noProblem": "No problem now.",
    "maint.problemCount": "{count} problem(s) now · {unacknowledged} not acknowledged",
    "maint.stream.offline": "offline",
    "maint.stream.stalled": "stream stalled",
    "maint.since": "since {time} ({duration})",
    "maint.now": "Current picture",
    "maint.reference": "Reference",
    "maint.noPicture": "no picture",
    "maint.noReference": "no reference yet",
    "maint.acknowledged": "Acknowledged by {user} on {time}",
    "maint.notAcknowledged": "Not acknowledged",
    "maint.comment": "Comment (repair booked, ticket…)",
    "maint.acknowledge": "Acknowledge",
    "maint.accept": "Accept as reference",
    "maint.accepted": "The current view is the new reference.",
    "maint.planned": "planned works",
    "maint.availability": "Availability per commune",
    "maint.month": "Month",
    "maint.csv": "Export as CSV",
    "maint.col.commune": "Commune",
    "maint.col.cameras": "Cameras",
    "maint.col.streamUp": "Stream up",
    "maint.col.pictureUsable": "Picture usable",
    "maint.col.unknown": "Unknown",
    "maint.col.planned": "Works",
    "maint.col.incidents": "Incidents",
    "maint.col.mttr": "Repair (mean)",
    "maint.col.mttrTitle": "Mean time to repair of the closed incidents",
    "maint.col.open": "Open",
    "maint.noData": "—",
    "maint.showCameras": "Show the cameras of {commune}",
    "maint.availabilityHint": "Time when Vigie was not running counts as unknown; planned works do not count against availability.",
    "maint.works": "Planned works",
    "maint.noWorks": "No planned works.",
    "maint.worksNew": "Declare works",
    "maint.worksOn": "On",
    "maint.worksFrom": "From",
    "maint.worksUntil": "Until",
    "maint.worksReason": "Reason",
    "maint.worksAdd": "Declare",
    "maint.worksCancel": "Cancel these works",
    "maint.worksCommune": "commune {name} (all its cameras)",
    "maint.worksPeriod": "from {start} to {end}",
    "maint.error": "Could not do it: {error}",
    "maint.loadError": "Could not load the data ({error}). Trying again in a few seconds.",
  },
};

const STORAGE_KEY = "vigie.lang";
const LANGUAGES = Object.keys(STRINGS);
const listeners = new Set();

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: French
  }
}

let current = LANGUAGES.includes(stored()) ? stored() : "fr";

export function lang() {
  return current;
}

export function t(key, params = {}) {
  const text = STRINGS[current][key] ?? STRINGS.fr[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

export function setLang(next) {
  if (!LANGUAGES.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // not persisted, still switched for this page
  }
  applyI18n(document);
  for (const listener of listeners) listener(next);
}

export function toggleLang() {
  setLang(current === "fr" ? "en" : "fr");
}

/** Call `listener(lang)` after every language switch (to re-render dynamic text). */
export function onLangChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function applyI18n(root) {
  document.documentElement.lang = current;
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(";")) {
      const [attribute, key] = pair.split(":").map((part) => part.trim());
      if (attribute && key) element.setAttribute(attribute, t(key));
    }
  }
}

export function formatNumber(value, digits = 0) {
  return new Intl.NumberFormat(current === "fr" ? "fr-FR" : "en-GB", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(value);
}

/** A frame age in seconds as short text: "0,4 s", "12 s", "3 min", "2 h". */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return t("age.none");
  if (seconds < 10) return t("age.seconds", { value: formatNumber(seconds, 1) });
  if (seconds < 120) return t("age.seconds", { value: formatNumber(seconds) });
  if (seconds < 7200) return t("age.minutes", { value: formatNumber(seconds / 60) });
  return t("age.hours", { value: formatNumber(seconds / 3600) });
}

export function formatDateTime(epochSeconds) {
  return new Intl.DateTimeFormat(current === "fr" ? "fr-FR" : "en-GB", {
    dateStyle: "short", timeStyle: "medium",
  }).format(new Date(epochSeconds * 1000));
}
