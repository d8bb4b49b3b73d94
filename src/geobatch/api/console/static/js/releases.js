// Reference releases: counts, sources, build time, and their bounding boxes on a map.

import { getJson } from "./api.js";
import { addBasemap, createMap, fitTo, idle, loaded } from "./basemap.js";
import { duration, h, number, problemBox, when } from "./dom.js";

function box(release) {
  const [w, s, e, n] = release.bbox;
  return { type: "Feature", properties: { id: release.id },
    geometry: { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] } };
}

function card(release) {
  const counts = Object.entries(release.counts);
  return h("section", { class: "release", "aria-labelledby": `rel-${release.id}` },
    h("h2", { id: `rel-${release.id}` }, release.id),
    h("p", {}, `Built ${when(release.created_at)} in ${duration(release.build_seconds)}`
      + ` · schema ${release.schema_version}`
      + (release.bbox ? ` · bbox ${release.bbox.map((v) => v.toFixed(3)).join(", ")}` : "")),
    h("table", {}, h("caption", {}, "Rows per table"),
      h("tbody", {}, counts.map(([name, count]) => h("tr", {},
        h("th", { scope: "row" }, name), h("td", { class: "num" }, number(count)))))),
    h("table", {}, h("caption", {}, "Sources"),
      h("thead", {}, h("tr", {}, ["File", "Kind", "Size", "SHA-256"].map((t) =>
        h("th", { scope: "col" }, t)))),
      h("tbody", {}, release.sources.map((s) => h("tr", {},
        h("td", {}, s.path), h("td", {}, s.kind), h("td", { class: "num" }, number(s.size_bytes)),
        h("td", {}, h("code", { title: s.sha256 }, s.sha256.slice(0, 12))))))));
}

export async function releasesPage(view) {
  view.append(h("h1", {}, "Releases"));
  let releases;
  try {
    releases = (await getJson("/v1/releases")).releases;
  } catch (error) {
    view.append(problemBox(error));
    return null;
  }
  if (!releases.length) {
    view.append(h("p", {}, "No release yet: the first job that needs one builds the default."));
    return null;
  }
  const mapBox = h("div", { id: "map", class: "map small", role: "region",
    "aria-label": "Bounding boxes of the releases" });
  view.append(mapBox, ...releases.map(card));
  const map = createMap(mapBox);
  await loaded(map);
  const boxes = { type: "FeatureCollection", features: releases.filter((r) => r.bbox).map(box) };
  await addBasemap(map, releases[0].id);
  map.addSource("bboxes", { type: "geojson", data: boxes });
  map.addLayer({ id: "bboxes", type: "line", source: "bboxes",
    paint: { "line-color": "#c0392b", "line-width": 2 } });
  // The view fits the newest release, whose roads and places the basemap shows.
  fitTo(map, boxes.features.slice(0, 1));
  idle(map).then(() => { mapBox.dataset.ready = "true"; });
  return () => map.remove();
}
