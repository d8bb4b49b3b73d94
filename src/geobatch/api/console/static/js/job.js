// One job: live progress over its event stream, details, webhook attempts and controls.

import { download, followEvents, getJson, request } from "./api.js";
import { announce, definitions, duration, h, number, problemBox, table, when } from "./dom.js";

const BASE = ["total_records", "processed_records", "successful_records", "failed_records",
  "no_match_records", "last_record_id", "records_per_second"];
const ROAD = ["num_roads_processed", "kms_processed", "roads_fully_matched_ratio",
  "roads_partially_matched_ratio", "roads_matched_ratio", "roads_unmatched_ratio",
  "confidence_threshold", "execution_time_sec"];
const MAPPABLE = ["geocode", "reverse_geocode", "lookup", "road_match"];
const CAN = {
  start: ["created", "paused"],
  stop: ["queued", "running"],
  cancel: ["created", "queued", "running", "paused"],
};

function value(v) {
  return typeof v === "number" ? number(v, 4) : v === null || v === undefined ? "–" : String(v);
}

// Per-level counts (houseNumber_records, street_records ...) and other type-specific ones.
function levelCounts(stats) {
  return Object.entries(stats).filter(([k]) => k.endsWith("_records") && !BASE.includes(k)
    && !ROAD.includes(k));
}

function progressView() {
  const bar = h("progress", { id: "job-progress", max: "100", value: "0",
    "aria-label": "Progress" });
  const figures = h("p", { class: "figures", id: "job-figures" });
  const levels = h("div", { id: "job-levels" });
  const status = h("span", { class: "status", id: "job-status" });
  return { bar, figures, levels, status, node: h("section", { "aria-labelledby": "progress-h" },
    h("h2", { id: "progress-h" }, "Progress ", status), bar, figures, levels) };
}

function showProgress(parts, data) {
  const { progress, statistics: stats, status } = data;
  parts.status.textContent = status;
  parts.status.className = `status ${status}`;
  parts.bar.value = progress.percent;
  parts.bar.textContent = `${progress.percent} %`;
  parts.figures.replaceChildren(
    h("span", { "data-figure": "percent" }, `${number(progress.percent, 1)} %`), " · ",
    h("span", { "data-figure": "processed" },
      `${number(stats.processed_records)} of ${number(stats.total_records)} records`), " · ",
    h("span", { "data-figure": "rate" }, `${number(progress.records_per_second)} records/s`),
    " · ", h("span", { "data-figure": "eta" }, `ETA ${duration(progress.eta_seconds)}`));
  const levels = levelCounts(stats);
  const most = Math.max(1, ...levels.map(([, v]) => v));
  parts.levels.replaceChildren(levels.length ? h("table", { class: "levels" },
    h("caption", {}, "Records by match level"),
    h("tbody", {}, levels.map(([name, count]) => h("tr", {},
      h("th", { scope: "row" }, name.replace(/_records$/, "")),
      h("td", { class: "num" }, number(count)),
      h("td", {}, h("span", { class: "levelbar", style: `width:${(100 * count) / most}%` })))))) : "");
}

function details(job) {
  const stats = job.statistics;
  const road = job.type === "road_match"
    ? h("section", {}, h("h2", {}, "Road statistics"),
      definitions(ROAD.map((k) => [k, value(stats[k])])))
    : null;
  const attempts = job.delivery_attempts;
  return h("div", { class: "details" },
    h("section", {}, h("h2", {}, "Job"), definitions([
      ["Type", job.type], ["Release", job.release || "–"], ["Bulk id", job.bulk_id || "–"],
      ["Priority", job.priority], ["Created", when(job.created_at)],
      ["Started", when(job.started_at)], ["Finished", when(job.finished_at)],
      ["Input", `${job.input.format || ""} ${number(job.input.size_bytes)} bytes`],
      ["Error", job.error ? job.error.message : "–"],
    ])),
    h("section", {}, h("h2", {}, "Options"),
      definitions(Object.entries(job.options).map(([k, v]) => [k, value(v)]))),
    h("section", {}, h("h2", {}, "Statistics"),
      definitions(Object.entries(stats).filter(([k]) => !ROAD.includes(k))
        .map(([k, v]) => [k, value(v)]))),
    road,
    h("section", { class: "wide" }, h("h2", {}, "Webhook deliveries"),
      attempts === null || attempts === undefined ? h("p", {}, "This job has no callback.")
        : attempts.length === 0 ? h("p", {}, "No delivery attempts yet.")
          : table(["Event", "Attempt", "Status", "At", "Duration", "Error", "Next attempt"],
            attempts.map((a) => [a.event_type, a.attempt, a.status_code ?? "–",
              when(a.attempted_at), `${number(a.duration_ms)} ms`, a.error || "",
              when(a.next_attempt_at)]))));
}

function controls(job, act) {
  const button = (name, label, enabled, extra = {}) => h("button",
    { type: "button", "data-action": name, disabled: !enabled, onclick: () => act(name), ...extra },
    label);
  const done = Boolean(job.output);
  return h("div", { class: "controls", role: "group", "aria-label": "Job actions" },
    button("start", job.status === "paused" ? "Resume" : "Start", CAN.start.includes(job.status)),
    button("stop", "Stop", CAN.stop.includes(job.status)),
    button("cancel", "Cancel", CAN.cancel.includes(job.status)),
    button("delete", "Delete", true, { class: "danger" }),
    button("results", "Download results", done),
    button("errors", "Download errors", done),
    MAPPABLE.includes(job.type) && done
      ? h("a", { class: "button", href: `#/jobs/${job.id}/map` }, "Results on a map") : null);
}

export async function jobPage(view, jobId) {
  const heading = h("h1", {}, "Job ", h("code", {}, jobId));
  view.append(heading);
  let job;
  try {
    job = await getJson(`/v1/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    if (error.status === 404) {
      error.problem.detail = `${error.problem.detail || ""} It does not exist, or it belongs to `
        + "another tenant than this API key's.";
    }
    view.append(problemBox(error));
    return null;
  }
  const live = progressView();
  const message = h("p", { id: "action-message", role: "status" });
  const controlBox = h("div");
  const detailBox = h("div");
  view.append(controlBox, message, live.node, detailBox);
  const stream = new AbortController();

  const render = (fresh) => {
    job = fresh;
    controlBox.replaceChildren(controls(job, act));
    detailBox.replaceChildren(details(job));
    showProgress(live, job);
  };
  // Events carry the status, percent and base counts; the job itself (read again after each,
  // one read at a time) adds throughput, ETA and the per-level counts.
  let reading = false;
  let again = false;
  const refresh = async () => {
    if (reading) { again = true; return; }
    reading = true;
    try {
      render(await getJson(`/v1/jobs/${encodeURIComponent(jobId)}`));
    } catch {
      // A job deleted meanwhile: the event stream reports it.
    } finally {
      reading = false;
    }
    if (again) { again = false; refresh(); }
  };

  async function act(name) {
    message.replaceChildren();
    try {
      if (name === "results" || name === "errors") {
        const saved = await download(`/v1/jobs/${encodeURIComponent(jobId)}/${name}`);
        message.textContent = `Saved ${saved}.`;
        return;
      }
      if (name === "delete") {
        if (!confirm(`Delete job ${jobId} and all its files?`)) return;
        await request("DELETE", `/v1/jobs/${encodeURIComponent(jobId)}`);
        announce(`Job ${jobId} deleted.`);
        location.hash = "#/jobs";
        return;
      }
      const fresh = await (await request("POST",
        `/v1/jobs/${encodeURIComponent(jobId)}/${name}`)).json();
      render({ ...job, ...fresh, delivery_attempts: job.delivery_attempts });
      message.textContent = `Job ${fresh.status}.`;
      refresh();
    } catch (error) {
      message.replaceChildren(problemBox(error));
    }
  }

  render(job);
  // The stream replays the job's history first; what is older than the job just read is not
  // shown, so the page never steps back.
  const since = Date.parse(job.updated_at);
  followEvents(jobId, (type, data) => {
    if (Date.parse(data.created_at) < since) return;
    live.bar.value = data.progress;
    live.status.textContent = data.status;
    live.status.className = `status ${data.status}`;
    if (type !== "job.progress") announce(`Job ${data.status}.`);
    refresh();
  }, stream.signal).catch((error) => message.replaceChildren(problemBox(error)));
  return () => stream.abort();
}
