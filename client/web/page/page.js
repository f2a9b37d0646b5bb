// mrd-web's dashboard (docs/http.md, "The page"). Every second it asks mrd-web for the newest
// jobs (GET /api/jobs?details=1&limit=50) and the pool's counters (GET /api/stats), and updates
// the page in place: rows are kept by job id, so a progress bar is the same element from one
// poll to the next, and a button being clicked is never replaced under the pointer.
//
// Ages are reckoned by the server's clock, not the browser's: every answer of mrd-web carries a
// Date header, from which the page keeps the offset between the two clocks (serverClock). The
// times a job reports are the server's; a browser whose clock is off would otherwise show jobs
// submitted "in the future", or hours old.
"use strict";

const POLL_MS = 1000;
const JOB_LIMIT = 50;
const CHART_MS = 5 * 60 * 1000; // the charts show the last 5 minutes at most
const CHART_MIN_MS = 30 * 1000; // and 30 seconds at least, while the page is younger
const RATE_WINDOW_MS = 5000; // each point of a chart averages the last 5 seconds
const RESULT_PREVIEW_CHARS = 20000;
const TOKEN_KEY = "mrd-token";
const UNFINISHED = new Set(["queued", "mapping", "reducing"]);

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Talking to mrd-web
// ---------------------------------------------------------------------------------------------

/** An answer of mrd-web other than 2xx: its HTTP status and its {"error": ...} text. */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** One request to mrd-web's JSON API, with the token if one is set; resolves to the JSON. */
async function api(method, path) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const sent = Date.now();
  const response = await fetch(path, { method, headers, cache: "no-store" });
  serverClock.observe(response, sent);
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null; // not JSON: an error page of a proxy, say
  }
  if (!response.ok) {
    const words = body && body.error ? body.error : "HTTP " + response.status;
    throw new ApiError(response.status, words);
  }
  return body;
}

/**
 * The server's clock as an offset from the browser's. A Date header says the answer was made
 * within a whole second [date, date + 1 s) of server time, and it was made between the moment
 * the request left and the moment the answer arrived, in browser time: each answer bounds the
 * offset from both sides, and the bounds of successive answers narrow it to well under a
 * second. Should the clocks jump (the bounds cross), it starts again from the latest answer.
 */
const serverClock = {
  low: -Infinity, // offset (server minus browser, ms) >= low
  high: Infinity, // offset < high
  observe(response, sent) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isNaN(date)) return;
    const received = Date.now();
    const low = date - received;
    const high = date + 1000 - sent;
    if (Math.max(this.low, low) > Math.min(this.high, high)) {
      this.low = low;
      this.high = high;
    } else {
      this.low = Math.max(this.low, low);
      this.high = Math.min(this.high, high);
    }
  },
  /** The server's time now, in Unix milliseconds. */
  now() {
    const offset = Number.isFinite(this.low) ? (this.low + this.high) / 2 : 0;
    return Date.now() + offset;
  },
};

// ---------------------------------------------------------------------------------------------
// Words and numbers
// ---------------------------------------------------------------------------------------------

function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return value.toFixed(digits) + " " + units[unit];
}

/** An age, coarse: "45 s", "12 min", "3 h", "2 d". */
function formatAge(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  if (seconds < 2 * 86400) return Math.floor(seconds / 3600) + " h";
  return Math.floor(seconds / 86400) + " d";
}

/** A duration, finer: "0.4 ms", "340 ms", "12.5 s", "3 min 12 s", "2 h 5 min". */
function formatDuration(ms) {
  const value = Math.max(0, ms);
  if (value < 10) return value.toFixed(1) + " ms";
  if (value < 1000) return Math.round(value) + " ms";
  if (value < 60000) return (value / 1000).toFixed(value < 10000 ? 2 : 1) + " s";
  const seconds = Math.floor(value / 1000);
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** A server timestamp in the browser's time zone: "2025-12-01 09:31:02.481". */
function formatTime(ms) {
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

function formatRate(perSecond) {
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(perSecond >= 1 ? 1 : 2);
}

/** Sets an element's text only when it changes: a poll that changes nothing touches nothing. */
function setText(element, text) {
  const value = String(text);
  if (element.textContent !== value) element.textContent = value;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

let statusTimer = 0;

/** A message in the status line; `error` ones stay until the next successful poll. */
function showStatus(text, kind = "info") {
  const status = $("status");
  setText(status, text);
  status.dataset.kind = kind;
  clearTimeout(statusTimer);
  if (kind === "info") statusTimer = setTimeout(() => showStatus("", "none"), 5000);
}

function describeError(error, what) {
  if (error instanceof ApiError && error.status === 401) {
    return `${what}: mrd wants a token (${error.message}). Enter one above.`;
  }
  if (error instanceof ApiError) return `${what}: ${error.message} (HTTP ${error.status})`;
  return `${what}: mrd-web cannot be reached (${error.message}); trying again`;
}

// ---------------------------------------------------------------------------------------------
// The jobs table
// ---------------------------------------------------------------------------------------------

const rows = new Map(); // job id -> the row's elements
const cancelledHere = new Set(); // ids cancelled from this page that the list does not say yet

/** A map or reduce cell: a progress bar and "done/total", or a dash before there are tasks. */
function progressCell(phase, id) {
  const bar = element("progress", { class: phase, max: "1", "aria-label": `${phase} tasks of job ${id}` });
  bar.value = 0;
  const words = element("span", { class: "count" });
  const label = phase === "map" ? "Map" : "Reduce";
  return { cell: element("td", { "data-label": label, class: "progress" }, bar, words), bar, words };
}

function updateProgress(part, done, total) {
  part.bar.hidden = total === 0;
  if (total > 0) {
    if (part.bar.max !== total) part.bar.max = total;
    if (part.bar.value !== done) part.bar.value = done;
  }
  setText(part.words, total > 0 ? `${done}/${total}` : "–");
}

function makeRow(id) {
  const link = element("a", { href: `#job/${id}` }, String(id));
  const state = element("span", { class: "state" });
  const kind = element("td", { "data-label": "Mapper / reducer" });
  const tenant = element("td", { "data-label": "Tenant" });
  const size = element("td", { "data-label": "Size", class: "number" });
  const age = element("time");
  const map = progressCell("map", id);
  const reduce = progressCell("reduce", id);
  const result = element("td", { "data-label": "Result", class: "result" });
  const cancel = element("button", { type: "button", class: "cancel", "aria-label": `Cancel job ${id}` }, "Cancel");
  cancel.addEventListener("click", () => cancelJob(id, cancel));
  const tr = element(
    "tr",
    { id: `job-${id}` },
    element("td", { "data-label": "Job", class: "number" }, link),
    element("td", { "data-label": "State" }, state),
    kind,
    tenant,
    size,
    element("td", { "data-label": "Age", class: "number" }, age),
    map.cell,
    reduce.cell,
    result,
    element("td", { class: "actions" }, cancel),
  );
  return { tr, state, kind, tenant, size, age, map, reduce, result, cancel, shown: "" };
}

/** The job's state, or "cancelled" if this page cancelled it and the list has not caught up. */
function stateOf(job) {
  if (!cancelledHere.has(job.id)) return job.state;
  if (!UNFINISHED.has(job.state)) {
    cancelledHere.delete(job.id);
    return job.state;
  }
  return "cancelled";
}

/** What the result cell shows: a link when done, the reason when failed. */
function resultContent(job, state) {
  if (state === "done") {
    const href = `/api/jobs/${job.id}/result`;
    const link = element("a", { href, class: "result-link", "aria-label": `Result of job ${job.id}` }, "result");
    link.addEventListener("click", (event) => {
      // A link cannot carry the token: with one, the job's page fetches the result instead.
      if (!token()) return;
      event.preventDefault();
      location.hash = `#job/${job.id}`;
    });
    return [link];
  }
  if (state === "failed") {
    return [element("span", { class: "failure", title: job.failure }, job.failure || "failed")];
  }
  return [];
}

function updateRow(row, job) {
  const state = stateOf(job);
  row.tr.dataset.state = state;
  setText(row.state, state);
  row.state.dataset.state = state;
  setText(row.kind, job.mapper ? `${job.mapper} / ${job.reducer}` : "–");
  setText(row.tenant, job.tenant || "–");
  setText(row.size, job.input_bytes ? formatBytes(job.input_bytes) : "–");
  if (job.submitted_ms > 0) {
    setText(row.age, formatAge(serverClock.now() - job.submitted_ms));
    row.age.dateTime = new Date(job.submitted_ms).toISOString();
    row.age.title = "submitted " + formatTime(job.submitted_ms);
  } else {
    setText(row.age, "–");
  }
  updateProgress(row.map, job.map_done, job.map_total);
  updateProgress(row.reduce, job.reduce_done, job.reduce_total);
  const shown = state + "\u0000" + job.failure;
  if (row.shown !== shown) {
    row.result.replaceChildren(...resultContent(job, state));
    row.shown = shown;
  }
  row.cancel.hidden = !UNFINISHED.has(state);
}

function renderJobs(jobs) {
  const body = $("job-rows");
  const present = new Set();
  let previous = null;
  for (const job of jobs) {
    let row = rows.get(job.id);
    if (!row) {
      row = makeRow(job.id);
      rows.set(job.id, row);
    }
    row.job = job;
    updateRow(row, job);
    const wanted = previous ? previous.nextSibling : body.firstChild;
    if (row.tr !== wanted) body.insertBefore(row.tr, wanted);
    previous = row.tr;
    present.add(job.id);
  }
  for (const [id, row] of rows) {
    if (!present.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $("no-jobs").hidden = jobs.length > 0;
}

/** Empties the table: on a change of token, and when mrd refuses the token (another tenant's
 * jobs must not linger on screen). */
function clearJobs() {
  for (const row of rows.values()) row.tr.remove();
  rows.clear();
  cancelledHere.clear();
  results.clear();
  clearJobPage();
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    await api("DELETE", `/api/jobs/${id}`);
    cancelledHere.add(id);
    const row = rows.get(id);
    if (row && row.job) updateRow(row, row.job);
    if (shownJob && shownJob.id === id) renderJobPage(shownJob);
    showStatus(`Job ${id} cancelled.`);
  } catch (error) {
    showStatus(describeError(error, `Cancelling job ${id}`), "error");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// The pool and its charts
// ---------------------------------------------------------------------------------------------

const samples = []; // {t: browser ms, finished, jobUsSum, jobCount}, oldest first

function histogramCount(histogram) {
  const buckets = histogram && histogram.buckets;
  return buckets && buckets.length ? buckets[buckets.length - 1].count : 0;
}

function renderStats(answer) {
  const up = answer.servers.filter((server) => server.up);
  const sum = (field) => up.reduce((total, server) => total + (server.stats[field] || 0), 0);
  setText($("pool-busy"), sum("workers_busy"));
  setText($("pool-workers"), sum("workers"));
  setText($("pool-restarts"), sum("worker_restarts"));
  setText($("pool-tasks"), sum("tasks_done"));
  setText($("pool-unfinished"), sum("jobs_unfinished"));
  setText($("pool-done"), sum("jobs_done"));
  setText($("pool-failed"), sum("jobs_failed"));
  setText($("pool-cancelled"), sum("jobs_cancelled"));
  const down = answer.servers.filter((server) => !server.up);
  const servers = answer.servers.length === 1 ? "" : `${answer.servers.length} servers, summed. `;
  const missing = down.map((server) => `${server.server} does not answer: ${server.error}`).join("; ");
  setText($("pool-servers"), servers + missing);
  $("pool-servers").dataset.kind = down.length ? "error" : "info";

  const sample = {
    t: Date.now(),
    finished: sum("jobs_done") + sum("jobs_failed"),
    jobUsSum: up.reduce((total, server) => total + server.stats.job_us.sum, 0),
    jobCount: up.reduce((total, server) => total + histogramCount(server.stats.job_us), 0),
  };
  const last = samples[samples.length - 1];
  if (last && (sample.finished < last.finished || sample.jobCount < last.jobCount)) {
    samples.length = 0; // a server restarted, or one stopped answering: counters start again
  }
  samples.push(sample);
  while (samples.length && samples[0].t < sample.t - CHART_MS - RATE_WINDOW_MS) samples.shift();
  renderCharts();
}

/**
 * The charts' points: at each sample, jobs finished per second and their mean duration (ms)
 * over the last RATE_WINDOW_MS, from the counters' deltas (a one-second delta is mostly 0 or 1).
 * Latency is null where no job finished.
 */
function chartPoints() {
  const throughput = [];
  const latency = [];
  let start = 0;
  for (let i = 1; i < samples.length; i++) {
    const now = samples[i];
    while (start < i - 1 && samples[start + 1].t <= now.t - RATE_WINDOW_MS) start += 1;
    const then = samples[start];
    const seconds = (now.t - then.t) / 1000;
    if (seconds <= 0) continue;
    throughput.push({ t: now.t, v: (now.finished - then.finished) / seconds });
    const count = now.jobCount - then.jobCount;
    latency.push({ t: now.t, v: count > 0 ? (now.jobUsSum - then.jobUsSum) / count / 1000 : null });
  }
  return { throughput, latency };
}

/** The smallest of 1, 2, 5 times a power of ten that is at least `value`. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const SVG = "http://www.w3.org/2000/svg"; // a namespace name, not a URL the page loads
const CHART_W = 300;
const CHART_H = 80;

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** "5 min", "40 s": how far back a chart goes. */
function formatSpan(ms) {
  return ms >= 60000 ? Math.round(ms / 60000) + " min" : Math.round(ms / 1000) + " s";
}

/**
 * One chart, drawn afresh: the line of `points` (a gap where a value is null) over the time the
 * page has watched, 30 s to 5 min, scaled to a round maximum, and the latest and highest values
 * in words beneath.
 */
function drawChart(container, points, describe, what) {
  const end = Date.now();
  const watched = samples.length ? end - samples[0].t : 0;
  const span = Math.min(CHART_MS, Math.max(CHART_MIN_MS, watched));
  const shown = points.filter((p) => p.t >= end - span);
  const values = shown.map((p) => p.v).filter((v) => v !== null);
  const top = niceCeiling(Math.max(0, ...values));
  const x = (t) => (((t - (end - span)) / span) * CHART_W).toFixed(1);
  const y = (v) => (CHART_H - (v / top) * (CHART_H - 4)).toFixed(1);
  let line = "";
  let run = 0; // points in the stretch being drawn: a lone one becomes a short dash
  for (const p of [...shown, { v: null }]) {
    if (p.v === null) {
      if (run === 1) line += "h2 ";
      run = 0;
      continue;
    }
    line += `${run ? "L" : "M"}${x(p.t)} ${y(p.v)} `;
    run += 1;
  }
  const latest = [...shown].reverse().find((p) => p.v !== null);
  const last = formatSpan(Math.min(span, watched));
  const summary = latest
    ? `latest ${describe(latest.v)}, highest ${describe(Math.max(...values))} in the last ${last}`
    : "no data yet";
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_W} ${CHART_H}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `${what}: ${summary}`,
    class: "chart-svg",
  });
  for (const fraction of [0.5, 1]) {
    const level = y(top * fraction);
    chart.append(svg("line", { x1: 0, x2: CHART_W, y1: level, y2: level, class: "grid" }));
  }
  chart.append(svg("line", { x1: 0, x2: CHART_W, y1: CHART_H, y2: CHART_H, class: "axis" }));
  if (line) chart.append(svg("path", { d: line.trim(), class: "line" }));
  const scale = element("span", { class: "scale" }, `top: ${describe(top)}`);
  const words = element("span", { class: "summary" }, summary);
  container.replaceChildren(chart, element("p", { class: "chart-words" }, words, scale));
}

function renderCharts() {
  const { throughput, latency } = chartPoints();
  drawChart($("throughput-chart"), throughput, (v) => formatRate(v) + " jobs/s", "Throughput");
  drawChart($("latency-chart"), latency, (v) => formatDuration(v), "Mean job latency");
}

// ---------------------------------------------------------------------------------------------
// A job's page: #job/ID
// ---------------------------------------------------------------------------------------------

let shownJob = null; // the details last shown on the job page
const results = new Map(); // job id -> the result's text, fetched once when done

function shownJobId() {
  const match = /^#job\/(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function fact(name, ...value) {
  return element("div", {}, element("dt", {}, name), element("dd", {}, ...value));
}

function timelineEntry(name, ms, note) {
  const when = ms > 0 ? element("time", { datetime: new Date(ms).toISOString() }, formatTime(ms)) : "not yet";
  return element("li", { "data-step": name.toLowerCase() }, element("strong", {}, name), " ", when, note ? element("span", { class: "note" }, " " + note) : "");
}

function renderJobPage(job) {
  shownJob = job;
  const state = stateOf(job);
  setText($("job-heading"), `Job ${job.id}`);
  const progress = (done, total) => (total > 0 ? `${done}/${total}` : "–");
  const facts = [
    fact("State", element("span", { class: "state", "data-state": state }, state)),
    fact("Mapper / reducer", job.mapper ? `${job.mapper} / ${job.reducer}` : "–"),
    fact("Tenant", job.tenant || "–"),
    fact("Size", job.input_bytes ? `${formatBytes(job.input_bytes)} (${job.input_bytes} bytes)` : "–"),
    fact("Map tasks", progress(job.map_done, job.map_total)),
    fact("Reduce tasks", progress(job.reduce_done, job.reduce_total)),
  ];
  if (state === "failed") facts.push(fact("Failure", element("span", { class: "failure" }, job.failure)));
  $("job-facts").replaceChildren(...facts);

  // The timeline: each step with its time (the server's clock) and how long since the last.
  const now = serverClock.now();
  const submitted = job.submitted_ms;
  const started = job.started_ms;
  const finished = job.finished_ms;
  let startedNote = "";
  if (started > 0 && submitted > 0) {
    startedNote =
      started >= submitted
        ? `after ${formatDuration(started - submitted)} queued`
        : "while its input was still arriving";
  } else if (submitted > 0 && UNFINISHED.has(state)) {
    startedNote = `queued for ${formatDuration(now - submitted)}`;
  }
  let finishedNote = "";
  if (finished > 0 && started > 0) {
    finishedNote = `${state} after running ${formatDuration(finished - started)}`;
    if (submitted > 0) finishedNote += `, ${formatDuration(finished - submitted)} in all`;
  } else if (finished > 0) {
    finishedNote = state;
  } else if (started > 0) {
    finishedNote = `running for ${formatDuration(now - started)}`;
  }
  $("job-timeline").replaceChildren(
    timelineEntry("Submitted", submitted, submitted > 0 ? `${formatAge(now - submitted)} ago` : ""),
    timelineEntry("Started", started, startedNote),
    timelineEntry("Finished", finished, finishedNote),
  );

  const actions = [];
  if (UNFINISHED.has(state)) {
    const cancel = element("button", { type: "button", class: "cancel", "aria-label": `Cancel job ${job.id}` }, "Cancel");
    cancel.addEventListener("click", () => cancelJob(job.id, cancel));
    actions.push(cancel);
  }
  $("job-actions").replaceChildren(...actions);

  $("job-result").hidden = state !== "done";
  if (state === "done") {
    $("job-result-link").href = `/api/jobs/${job.id}/result`;
    showResult(job.id);
  }
}

async function showResult(id) {
  const text = $("job-result-text");
  if (results.has(id)) {
    setText(text, results.get(id));
    return;
  }
  results.set(id, "Fetching…");
  const tokenWas = tokenChanges;
  try {
    const answer = await api("GET", `/api/jobs/${id}/result`);
    if (tokenWas !== tokenChanges) return; // fetched for the token before: not this one's
    // A list (counts) one entry a line; anything else indented.
    const result = answer.result;
    let words = Array.isArray(result)
      ? "[\n" + result.map((entry) => " " + JSON.stringify(entry)).join(",\n") + "\n]"
      : JSON.stringify(result, null, 1);
    if (words.length > RESULT_PREVIEW_CHARS) {
      words = words.slice(0, RESULT_PREVIEW_CHARS) + "\n… (the rest: follow the JSON link)";
    }
    results.set(id, words);
  } catch (error) {
    if (tokenWas !== tokenChanges) return;
    results.set(id, describeError(error, "The result")); // until the token changes
  }
  if (shownJobId() === id) setText(text, results.get(id));
}

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------

function showView() {
  const id = shownJobId();
  $("job-view").hidden = id === null;
  $("jobs-view").hidden = id !== null;
  $("overview").hidden = id !== null;
  if (id === null) {
    shownJob = null;
    document.title = "mrd";
  } else {
    document.title = `mrd: job ${id}`;
    if (!shownJob || shownJob.id !== id) clearJobPage();
  }
}

/** The job page without a job's details, until the next poll brings them. */
function clearJobPage() {
  shownJob = null;
  const id = shownJobId();
  setText($("job-heading"), id === null ? "Job" : `Job ${id}`);
  $("job-facts").replaceChildren();
  $("job-timeline").replaceChildren();
  $("job-actions").replaceChildren();
  $("job-result").hidden = true;
  setText($("job-result-text"), "");
}

let pollTimer = 0;
let tokenChanges = 0; // answers to a poll begun before the token changed are dropped
let polling = false; // a poll is under way
let pollAgain = false; // and another was asked for meanwhile (the view or the token changed)

async function poll() {
  clearTimeout(pollTimer);
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  const tokenWas = tokenChanges;
  const id = shownJobId();
  const asked = [api("GET", `/api/jobs?details=1&limit=${JOB_LIMIT}`), api("GET", "/api/stats")];
  if (id !== null) asked.push(api("GET", `/api/jobs/${id}`));
  const [jobs, stats, job] = await Promise.allSettled(asked);
  polling = false;
  if (tokenWas !== tokenChanges) {
    poll(); // made with the old token: ask again with the new one
    return;
  }
  const problems = [];
  if (jobs.status === "fulfilled") {
    renderJobs(jobs.value);
  } else {
    if (jobs.reason instanceof ApiError && [401, 403].includes(jobs.reason.status)) clearJobs();
    problems.push(describeError(jobs.reason, "Jobs"));
  }
  if (stats.status === "fulfilled") renderStats(stats.value);
  else problems.push(describeError(stats.reason, "Pool"));
  if (job && shownJobId() === id) {
    if (job.status === "fulfilled") renderJobPage(job.value);
    else problems.push(describeError(job.reason, `Job ${id}`));
  }
  if (problems.length) showStatus(problems.join(" "), "error");
  else if ($("status").dataset.kind === "error") showStatus("", "none");
  setText($("updated"), problems.length ? "Not updated: see below" : `Updated ${formatTime(serverClock.now()).slice(11, 19)}`);
  pollTimer = setTimeout(poll, pollAgain ? 0 : POLL_MS);
  pollAgain = false;
}

function start() {
  const field = $("token");
  field.value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = field.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    tokenChanges += 1;
    clearJobs();
    showStatus(value ? "Token set for this tab." : "No token.");
    poll();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    field.value = "";
    tokenChanges += 1;
    clearJobs();
    showStatus("Token forgotten.");
    poll();
  });
  window.addEventListener("hashchange", () => {
    showView();
    poll();
  });
  showView();
  poll();
}

start();
