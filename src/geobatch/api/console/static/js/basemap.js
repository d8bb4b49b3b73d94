// A MapLibre map whose basemap is the release's own roads and places, fetched from
// GET /v1/releases/{id}/basemap for the area in view: no tiles from the internet.

import { apiKey } from "./api.js";

const ROAD_COLOURS = ["match", ["get", "road_class"],
  ["motorway", "trunk"], "#d9822b", ["primary", "secondary"], "#e0b34c", "#b8b2a7"];

export function createMap(container) {
  const map = new maplibregl.Map({
    container,
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#f3f0e8" } }],
    },
    center: [0, 20],
    zoom: 1,
    attributionControl: false,
    // Requests the map makes itself (GeoJSON sources by URL) carry the key like any other.
    transformRequest: (url) => (url.startsWith(location.origin) && apiKey()
      ? { url, headers: { "X-API-Key": apiKey() } } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.addControl(new maplibregl.AttributionControl({
    customAttribution: "Basemap: the release's own reference data", compact: true }));
  window.consoleMap = map; // the map in view, for scripts and tests (MapLibre's own API)
  return map;
}

export function loaded(map) {
  return map.loaded() ? Promise.resolve() : new Promise((resolve) => map.once("load", resolve));
}

export async function addBasemap(map, releaseId) {
  await loaded(map);
  map.addSource("basemap", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({ id: "roads", type: "line", source: "basemap",
    filter: ["==", ["get", "layer"], "road"],
    paint: { "line-color": ROAD_COLOURS, "line-width": ["match", ["get", "road_class"],
      ["motorway", "trunk", "primary"], 2.5, 1.2] } });
  map.addLayer({ id: "places", type: "circle", source: "basemap",
    filter: ["==", ["get", "layer"], "place"],
    paint: { "circle-radius": 2.5, "circle-color": "#6d6875" } });
  let timer = null;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const b = map.getBounds();
      const clamp = (v, lim) => Math.max(-lim, Math.min(lim, v));
      const bbox = [clamp(b.getWest(), 180), clamp(b.getSouth(), 90), clamp(b.getEast(), 180),
        clamp(b.getNorth(), 90)].map((v) => v.toFixed(6)).join(",");
      map.getSource("basemap").setData(
        `${location.origin}/v1/releases/${encodeURIComponent(releaseId)}/basemap?bbox=${bbox}`);
    }, 150);
  };
  map.on("moveend", refresh);
  refresh();
}

export function fitTo(map, features) {
  const bounds = new maplibregl.LngLatBounds();
  const walk = (c) => (typeof c[0] === "number" ? bounds.extend(c) : c.forEach(walk));
  for (const f of features) if (f.geometry) walk(f.geometry.coordinates);
  if (!bounds.isEmpty()) map.fitBounds(bounds, { padding: 40, maxZoom: 16, duration: 0 });
}

// Resolves once the map has drawn everything it has (sources loaded, no pending frame).
export function idle(map) {
  return new Promise((resolve) => map.once("idle", resolve));
}
