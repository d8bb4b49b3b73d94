// The console's entry point: the API key form and a hash router over the views.

import { apiKey, setApiKey } from "./api.js";
import { announce } from "./dom.js";
import { jobPage } from "./job.js";
import { jobsPage } from "./jobs.js";
import { mapPage } from "./results-map.js";
import { newJobPage } from "./new-job.js";
import { releasesPage } from "./releases.js";

const ROUTES = [
  [/^#\/jobs\/([^/?]+)\/map$/, mapPage],
  [/^#\/jobs\/([^/?]+)$/, jobPage],
  [/^#\/jobs(?:\?.*)?$/, jobsPage],
  [/^#\/new$/, newJobPage],
  [/^#\/releases$/, releasesPage],
];

let leave = null; // what the current view does when it is left (stop its event stream, map)

async function route() {
  const hash = location.hash || "#/jobs";
  const view = document.getElementById("view");
  if (leave) leave();
  leave = null;
  view.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    const here = hash.startsWith(link.getAttribute("href"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(hash);
    if (match) {
      const params = new URLSearchParams(hash.split("?")[1] || "");
      leave = (await page(view, decodeURIComponent(match[1] || ""), params)) || null;
      return;
    }
  }
  location.hash = "#/jobs";
}

function setUpKeyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  input.value = apiKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    announce(input.value ? "API key set for this tab." : "API key cleared.");
    route();
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    input.value = "";
    setApiKey("");
    announce("API key cleared.");
    route();
  });
}

setUpKeyForm();
window.addEventListener("hashchange", route);
route();
