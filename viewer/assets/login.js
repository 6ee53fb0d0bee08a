// Login page: keep the page asked for, show why a login failed. Works without it too.
const params = new URLSearchParams(location.search);
const next = params.get("next");
if (next && next.startsWith("/") && !next.startsWith("//")) {
  document.getElementById("next").value = next;
}
if (params.get("error") === "1") document.getElementById("error").hidden = false;
if (params.get("error") === "throttled") document.getElementById("throttled").hidden = false;
