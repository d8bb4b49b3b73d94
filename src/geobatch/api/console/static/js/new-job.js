// A new job: drop a file, pick the type and its options (a form built from the type's own
// options schema), check the file with a validate dry run, then create and start the job.

import { followEvents, getJson, request } from "./api.js";
import { h, number, problemBox } from "./dom.js";

const DRY_RUN_TARGETS = ["geocode", "reverse_geocode", "lookup", "road_match"];

function optionControl(name, spec, releases) {
  const id = `opt-${name}`;
  const types = spec.anyOf ? spec.anyOf.map((s) => s.type) : [spec.type];
  const kind = types.find((t) => t !== "null");
  const hint = spec.description ? h("small", { id: `${id}-hint` }, spec.description) : null;
  const common = { id, name, "data-option": name, "data-kind": kind,
    "aria-describedby": hint ? `${id}-hint` : null };
  let control;
  if (spec.enum) {
    control = h("select", common, spec.enum.map((v) => h("option",
      { value: v, selected: v === spec.default }, v)));
  } else if (kind === "boolean") {
    control = h("input", { ...common, type: "checkbox", checked: spec.default === true });
  } else if (kind === "integer" || kind === "number") {
    control = h("input", { ...common, type: "number", step: kind === "integer" ? "1" : "any",
      min: spec.minimum ?? spec.exclusiveMinimum, max: spec.maximum ?? spec.exclusiveMaximum,
      placeholder: spec.default ?? "" });
  } else if (name === "release") {
    control = h("select", common, h("option", { value: "" }, "newest"),
      releases.map((r) => h("option", { value: r.id }, r.id)));
  } else {
    control = h("input", { ...common, type: "text", placeholder: spec.default ?? "" });
  }
  return h("div", { class: "field" }, h("label", { for: id }, name), control, hint);
}

function readOptions(form) {
  const options = {};
  for (const control of form.querySelectorAll("[data-option]")) {
    const name = control.dataset.option;
    if (control.type === "checkbox") options[name] = control.checked;
    else if (control.value === "") continue;
    else if (control.dataset.kind === "integer" || control.dataset.kind === "number") {
      options[name] = Number(control.value);
    } else options[name] = control.value;
  }
  return options;
}

function dropZone(onFile) {
  const input = h("input", { id: "file", type: "file", name: "file",
    accept: ".csv,.txt,.tsv,.geojson,.json,.parquet,.gz" });
  const chosen = h("p", { id: "file-chosen", "aria-live": "polite" }, "No file chosen.");
  const zone = h("div", { class: "drop", id: "drop-zone" },
    h("p", {}, "Drop a CSV, GeoJSON or Parquet file here, or "),
    h("label", { for: "file", class: "button" }, "choose a file"), input, chosen);
  const take = (file) => {
    if (!file) return;
    chosen.textContent = `${file.name} (${number(file.size)} bytes)`;
    onFile(file);
  };
  input.addEventListener("change", () => take(input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(event.dataTransfer.files[0]);
  });
  return zone;
}

async function submit(file, type, options, extra) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("type", type);
  form.append("options", JSON.stringify(options));
  for (const [name, value] of Object.entries(extra)) if (value !== "") form.append(name, value);
  return (await request("POST", "/v1/jobs", { body: form })).json();
}

// Runs the dry run to its end and reports what it found (the first invalid rows too).
async function dryRun(file, type, report) {
  const job = await submit(file, "validate", { target_type: type },
    { metadata: JSON.stringify({ dry_run: "true" }) });
  report.replaceChildren(h("p", {}, `Checking every record (job ${job.id}) …`));
  const stop = new AbortController();
  await followEvents(job.id, (_type, data) => {
    report.firstChild.textContent = `Checking every record (job ${job.id}): ${data.progress} %`;
  }, stop.signal);
  const last = await getJson(`/v1/jobs/${encodeURIComponent(job.id)}`);
  const stats = last.statistics;
  const invalid = stats.invalid_records || 0;
  const bad = invalid + stats.failed_records;
  report.replaceChildren(h("p", { id: "dry-run-result", class: bad ? "warn" : "ok" },
    `${number(stats.processed_records)} records checked: ${number(stats.successful_records)} valid, `
    + `${number(invalid)} invalid, ${number(stats.failed_records)} unreadable.`
    + (bad ? " Invalid records will go to the error report." : "")));
  return last;
}

export async function newJobPage(view) {
  view.append(h("h1", {}, "New job"));
  let types;
  let releases;
  try {
    types = (await getJson("/v1/job-types")).job_types;
    releases = (await getJson("/v1/releases")).releases;
  } catch (error) {
    view.append(problemBox(error));
    return;
  }
  let file = null;
  let checked = null; // the file and type the last dry run checked
  const typeSelect = h("select", { id: "job-type", name: "type" },
    types.map((t) => h("option", { value: t.name, selected: t.name === "geocode" }, t.name)));
  const optionsBox = h("fieldset", { id: "options" });
  const report = h("div", { id: "dry-run", "aria-live": "polite" });
  const validate = h("button", { type: "button", id: "validate" }, "Validate (dry run)");
  const create = h("button", { type: "submit", id: "create", disabled: true }, "Create job");
  const startNow = h("input", { type: "checkbox", id: "start-now", checked: true });
  const bulk = h("input", { id: "bulk-id", name: "bulk_id" });
  const form = h("form", { class: "new-job", "aria-label": "New job" },
    dropZone((f) => { file = f; checked = null; ready(); }),
    h("div", { class: "field" }, h("label", { for: "job-type" }, "Job type"), typeSelect),
    optionsBox,
    h("div", { class: "field" }, h("label", { for: "bulk-id" }, "Bulk id (optional)"), bulk),
    h("div", { class: "field check" }, startNow, h("label", { for: "start-now" }, "Start at once")),
    h("div", { class: "controls" }, validate, create), report);
  view.append(form);

  const showOptions = () => {
    const kind = types.find((t) => t.name === typeSelect.value);
    const props = kind.options_schema.properties || {};
    optionsBox.replaceChildren(h("legend", {}, `Options of ${kind.name}`),
      ...Object.entries(props).map(([name, spec]) => optionControl(name, spec, releases)));
  };
  const needsDryRun = () => DRY_RUN_TARGETS.includes(typeSelect.value);
  function ready() {
    validate.disabled = !file || !needsDryRun();
    create.disabled = !file
      || (needsDryRun() && !(checked && checked.file === file && checked.type === typeSelect.value));
  }
  typeSelect.addEventListener("change", () => { showOptions(); ready(); });
  showOptions();
  ready();

  validate.addEventListener("click", async () => {
    validate.disabled = true;
    try {
      await dryRun(file, typeSelect.value, report);
      checked = { file, type: typeSelect.value };
    } catch (error) {
      report.replaceChildren(problemBox(error));
    }
    ready();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    create.disabled = true;
    try {
      const job = await submit(file, typeSelect.value, readOptions(form),
        { bulk_id: bulk.value, start: startNow.checked ? "true" : "false" });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      report.replaceChildren(problemBox(error));
      ready();
    }
  });
}
