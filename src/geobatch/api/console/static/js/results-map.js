// A job's results on a map (a sample, never the whole job) beside its error report.

import { csvHead, getJson } from "./api.js";
import { addBasemap, createMap, fitTo, idle, loaded } from "./basemap.js";
import { h, number, problemBox, table } from "./dom.js";

const LEVEL_COLOURS = ["match", ["coalesce", ["get", "match_level"], "none"],
  "houseNumber", "#1a9850", "interpolated", "#66bd63", "street", "#3288bd", "poi", "#5e4fa2",
  "locality", "#fdae61", "region", "#f46d43", "country", "#d53e4f", "#888888"];
const CONFIDENCE_COLOURS = ["interpolate", ["linear"], ["coalesce", ["get", "confidence"], 0],
  0, "#d53e4f", 50, "#fee08b", 100, "#1a9850"];
const ERROR_ROWS = 200;
const SAMPLE = 2000;

function legend(entries) {
  return h("ul", { class: "legend", "aria-label": "Legend" }, entries.map(([colour, label]) =>
    h("li", {}, h("span", { class: "swatch", style: `background:${colour}` }), label)));
}

function pointLayers(map, colourBy) {
  map.addLayer({ id: "results", type: "circle", source: "results",
    paint: { "circle-radius": 4, "circle-stroke-width": 0.5, "circle-stroke-color": "#fff",
      "circle-color": colourBy === "confidence" ? CONFIDENCE_COLOURS : LEVEL_COLOURS } });
}

function roadLayers(map) {
  map.addLayer({ id: "input-roads", type: "line", source: "results",
    filter: ["==", ["get", "layer"], "input"],
    paint: { "line-color": "#222", "line-width": 5, "line-opacity": 0.25 } });
  map.addLayer({ id: "results", type: "line", source: "results",
    filter: ["==", ["get", "layer"], "matched"],
    paint: { "line-color": CONFIDENCE_COLOURS, "line-width": 2.5 } });
}

async function errorTable(jobId) {
  const rows = await csvHead(`/v1/jobs/${encodeURIComponent(jobId)}/errors`, { format: "csv" },
    ERROR_ROWS);
  if (rows.length <= 1) return h("p", { id: "no-errors" }, "No records in the error report.");
  const [header, ...body] = rows;
  return table(header, body, `Error report (first ${number(body.length)} rows)`);
}

export async function mapPage(view, jobId) {
  view.append(h("h1", {}, "Results of ", h("a", { href: `#/jobs/${jobId}` }, h("code", {}, jobId))));
  let job;
  let sample;
  try {
    job = await getJson(`/v1/jobs/${encodeURIComponent(jobId)}`);
    sample = await getJson(`/v1/jobs/${encodeURIComponent(jobId)}/sample`, { limit: SAMPLE });
  } catch (error) {
    view.append(problemBox(error));
    return null;
  }
  const roads = job.type === "road_match";
  const colourBy = h("select", { id: "colour-by" },
    h("option", { value: "match_level" }, "match level"),
    h("option", { value: "confidence" }, "confidence"));
  const summary = h("p", { id: "sample-summary" },
    `Showing ${number(sample.sampled_rows)} of ${number(sample.total_rows)} result rows`
    + (sample.sampled_rows < sample.total_rows ? " (an even sample)." : "."));
  const mapBox = h("div", { id: "map", class: "map", role: "region",
    "aria-label": "Map of the results" });
  const side = h("aside", { class: "errors", "aria-label": "Error report" }, h("p", {}, "Loading …"));
  const levels = legend([["#1a9850", "houseNumber"], ["#66bd63", "interpolated"],
    ["#3288bd", "street"], ["#5e4fa2", "poi"], ["#fdae61", "locality"], ["#f46d43", "region"],
    ["#d53e4f", "country"], ["#888888", "no match"]]);
  const confidence = legend([["#d53e4f", "confidence 0"], ["#fee08b", "50"], ["#1a9850", "100"]]);
  view.append(summary,
    roads ? legend([["#222", "input road"], ["#1a9850", "matched, confidence 100"],
      ["#d53e4f", "matched, confidence 0"]])
      : h("div", { class: "field inline" }, h("label", { for: "colour-by" }, "Colour by"), colourBy,
        levels),
    h("div", { class: "split" }, mapBox, side));
  const map = createMap(mapBox);
  await loaded(map);
  await addBasemap(map, job.release || "default");
  map.addSource("results", { type: "geojson", data: sample });
  if (roads) roadLayers(map);
  else pointLayers(map, "match_level");
  colourBy.addEventListener("change", () => {
    (colourBy.value === "confidence" ? levels : confidence).replaceWith(
      colourBy.value === "confidence" ? confidence : levels);
    map.setPaintProperty("results", "circle-color",
      colourBy.value === "confidence" ? CONFIDENCE_COLOURS : LEVEL_COLOURS);
  });
  fitTo(map, sample.features);
  idle(map).then(() => { mapBox.dataset.ready = "true"; });
  errorTable(jobId).then((node) => side.replaceChildren(node))
    .catch((error) => side.replaceChildren(problemBox(error)));
  return () => map.remove();
}
