// The web app's entry: `#token=…` opens the end user's page, anything else the operator's.
// `api=` in the fragment points the page at an API on another origin (the API must allow it).

import { Api, explain } from "./api.js";
import { startEndUser } from "./enduser.js";
import { startOperator } from "./operator.js";

const fragment = new URLSearchParams(location.hash.slice(1));
const base = fragment.get("api") || location.origin;

function say(text, ok = false) {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.hidden = !text;
  notice.classList.toggle("ok", ok);
}

function network(lost) {
  if (lost) say("The network connection was lost; retrying…");
  else if (document.getElementById("notice").textContent.startsWith("The network")) say("");
}

const token = fragment.get("token") || sessionStorage.getItem("lote.token");
if (token) {
  sessionStorage.setItem("lote.token", token);
  if (fragment.has("token")) history.replaceState(null, "", location.pathname + (fragment.get("api") ? `#api=${base}` : ""));
  startEndUser(new Api(base, token, network), say).catch((error) => say(explain(error)));
} else {
  startOperator(base, network, say);
}
