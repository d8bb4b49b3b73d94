// The console's only way to the service: the public /v1 API, with the key the user typed.

const KEY = "geobatch.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { "X-API-Key": key, ...extra } : { ...extra };
}

// An RFC 9457 problem answer (or a network failure) as an Error the views can show.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function failure(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { title: response.statusText };
  }
  return new ApiError(response.status, problem);
}

export async function request(method, path, { query, body, json } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const init = { method, headers: headers() };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url, init);
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson(path, query) {
  return (await request("GET", path, { query })).json();
}

export async function postJson(path, json) {
  return (await request("POST", path, { json })).json();
}

// Save a download under its own name; the key travels in a header, so a plain link cannot.
export async function download(path, query) {
  const response = await request("GET", path, { query });
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || "download";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return name;
}

// The first `limit` rows of a CSV download, reading no further than needed.
export async function csvHead(path, query, limit) {
  const response = await request("GET", path, { query });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let rows = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (value) text += value;
    rows = parseCsv(text, done);
    if (done || rows.length > limit) break;
  }
  await reader.cancel().catch(() => {});
  return rows.slice(0, limit + 1);
}

// RFC 4180 rows; without `complete`, the last (possibly cut) line is left out.
export function parseCsv(text, complete) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field.replace(/\r$/, "")); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (complete && (field || row.length)) { row.push(field); rows.push(row); }
  return rows;
}

// Server-sent events over fetch (EventSource cannot send the key header). Resumes after the
// last event id when the connection drops, until the job's terminal event or `signal` aborts.
export async function followEvents(jobId, onEvent, signal) {
  let after = 0;
  while (!signal.aborted) {
    let ended = false;
    try {
      const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events?after=${after}`, {
        headers: headers({ Accept: "text/event-stream" }),
        signal,
      });
      if (!response.ok) throw await failure(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { id: null, type: "message", data: "" };
          for (const line of frame.split("\n")) {
            const [name, ...rest] = line.split(":");
            const text = rest.join(":").replace(/^ /, "");
            if (name === "id") event.id = Number(text);
            else if (name === "event") event.type = text;
            else if (name === "data") event.data += text;
          }
          if (!event.data) continue;
          if (event.id !== null) after = event.id;
          const data = JSON.parse(event.data);
          // Outside this try: a failing handler is the page's error, not a dropped connection.
          queueMicrotask(() => onEvent(event.type, data));
          if (["job.succeeded", "job.failed", "job.cancelled"].includes(event.type)) ended = true;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError) throw error;
    }
    if (ended) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
