// The jobs list: filters and cursor paging over GET /v1/jobs.

import { getJson } from "./api.js";
import { h, number, problemBox, when } from "./dom.js";

const STATUSES = ["created", "queued", "running", "paused", "succeeded", "failed", "cancelled",
  "expired"];
const FILTERS = ["type", "status", "bulk_id", "created_after", "created_before", "page_size"];

function field(label, id, control) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function filterForm(params, types) {
  const select = (id, values, all) => h("select", { id, name: id },
    h("option", { value: "" }, all),
    values.map((v) => h("option", { value: v, selected: params.get(id) === v }, v)));
  const form = h("form", { class: "filters", "aria-label": "Filter jobs" },
    field("Type", "type", select("type", types, "any type")),
    field("Status", "status", select("status", STATUSES, "any status")),
    field("Bulk id", "bulk_id", h("input", { id: "bulk_id", name: "bulk_id",
      value: params.get("bulk_id") || "" })),
    field("Created after", "created_after", h("input", { id: "created_after",
      name: "created_after", type: "date", value: (params.get("created_after") || "").slice(0, 10) })),
    field("Created before", "created_before", h("input", { id: "created_before",
      name: "created_before", type: "date",
      value: (params.get("created_before") || "").slice(0, 10) })),
    field("Per page", "page_size", select("page_size", ["10", "20", "50", "100"], "20")),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value;
      if (value) next.set(name, value);
    }
    location.hash = `#/jobs?${next}`;
  });
  return form;
}

function row(job) {
  const stats = job.statistics;
  return h("tr", {},
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.id)),
    h("td", {}, job.type),
    h("td", {}, h("span", { class: `status ${job.status}` }, job.status)),
    h("td", { class: "num" }, `${number(job.progress.percent, 1)} %`),
    h("td", { class: "num" }, number(stats.total_records)),
    h("td", {}, job.bulk_id || ""),
    h("td", {}, when(job.created_at)));
}

export async function jobsPage(view, _id, params) {
  view.append(h("h1", {}, "Jobs"));
  let types = [];
  try {
    types = (await getJson("/v1/job-types")).job_types.map((t) => t.name);
  } catch (error) {
    view.append(problemBox(error));
    return;
  }
  view.append(filterForm(params, types));
  const query = Object.fromEntries(FILTERS.map((n) => [n, params.get(n)]));
  query.page_size = query.page_size || "20";
  for (const name of ["created_after", "created_before"]) {
    if (query[name]) query[name] = `${query[name]}T00:00:00Z`;
  }
  query.page_token = params.get("page_token");
  let page;
  try {
    page = await getJson("/v1/jobs", query);
  } catch (error) {
    view.append(problemBox(error));
    return;
  }
  const headers = ["Job", "Type", "Status", "Done", "Records", "Bulk id", "Created"];
  view.append(h("table", { class: "jobs" },
    h("caption", {}, `${page.jobs.length} job${page.jobs.length === 1 ? "" : "s"} on this page`),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, page.jobs.map(row))));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const trail = (params.get("trail") || "").split(",").filter(Boolean);
  if (params.get("page_token")) {
    const back = new URLSearchParams(params);
    const previous = trail.pop();
    back.set("trail", trail.join(","));
    if (previous && previous !== "first") back.set("page_token", previous);
    else back.delete("page_token");
    pager.append(h("a", { href: `#/jobs?${back}`, rel: "prev" }, "← Newer"));
  }
  if (page.next_page_token) {
    const next = new URLSearchParams(params);
    next.set("trail", [...trail, params.get("page_token") || "first"].join(","));
    next.set("page_token", page.next_page_token);
    pager.append(h("a", { href: `#/jobs?${next}`, rel: "next" }, "Older →"));
  }
  view.append(pager);
}
