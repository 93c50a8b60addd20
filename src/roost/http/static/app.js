// Roost's dashboard: vanilla JS, no build step, nothing loaded from elsewhere.
// Live data comes as server-sent events read with fetch() (not EventSource, which
// cannot send the Authorization header an API key needs). docs/operations.md.
"use strict";

const HISTORY = 120; // chart points: one per stats event (1 s)
const MAX_WATCHED = 200; // messages kept in the watch list
const state = { key: sessionStorage.getItem("roost-api-key") || "", last: null,
  rates: [], clientsVersion: "", retainedCount: -1, watch: null, stats: null };

const $ = (id) => document.getElementById(id);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

function needKey() {
  $("key-form").hidden = false;
  $("live-state").textContent = "API key needed";
  $("live-state").classList.remove("live");
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  if (response.status === 401) { needKey(); throw new Error("unauthorized"); }
  if (!response.ok && response.status !== 404) {
    let message = response.statusText;
    try { message = (await response.json()).message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// Reads a text/event-stream response, calling onEvent(name, data) per event, until
// the stream ends or signal aborts it.
async function readEvents(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (response.status === 401) { needKey(); throw new Error("unauthorized"); }
  if (!response.ok) throw new Error("HTTP " + response.status);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

function text(tag, content, className) {
  const element = document.createElement(tag);
  if (content !== undefined && content !== null) element.textContent = String(content);
  if (className) element.className = className;
  return element;
}

// Stats: cards, chart, and the cue to reload the client list and the retained tree.

function onStats(stats) {
  const last = state.last;
  state.last = stats;
  $("live-state").textContent = "live";
  $("live-state").classList.add("live");
  $("stat-connections").textContent = stats.connections;
  $("stat-sessions").textContent = stats.sessions_online + " / " + stats.sessions_offline;
  $("stat-subscriptions").textContent = stats.subscriptions;
  $("stat-retained").textContent = stats.retained;
  if (last) {
    const seconds = Math.max(stats.time - last.time, 0.001);
    const rateIn = (stats.messages_received - last.messages_received) / seconds;
    const rateOut = (stats.messages_sent - last.messages_sent) / seconds;
    $("rate-in").textContent = rateIn.toFixed(rateIn < 10 ? 1 : 0);
    $("rate-out").textContent = rateOut.toFixed(rateOut < 10 ? 1 : 0);
    state.rates.push([rateIn, rateOut]);
    if (state.rates.length > HISTORY) state.rates.shift();
    drawChart();
  }
  const version = stats.connections + ":" + stats.client_connects;
  if (version !== state.clientsVersion) { state.clientsVersion = version; loadClients(); }
  if (stats.retained !== state.retainedCount) { state.retainedCount = stats.retained; loadRetained(); }
}

function drawChart() {
  const rates = state.rates;
  const max = Math.max(1, ...rates.map((r) => Math.max(r[0], r[1])));
  $("chart-max").textContent = max.toFixed(max < 10 ? 1 : 0);
  const x = (i) => (600 * (i + HISTORY - rates.length)) / (HISTORY - 1);
  const y = (v) => 148 - (144 * v) / max;
  const points = (k) => rates.map((r, i) => x(i).toFixed(1) + "," + y(r[k]).toFixed(1)).join(" ");
  $("line-in").setAttribute("points", points(0));
  $("line-out").setAttribute("points", points(1));
}

async function liveStats() {
  for (;;) {
    try {
      await readEvents("/api/v1/events/stats", (name, data) => { if (name === "stats") onStats(data); });
    } catch (e) {
      if (String(e.message) === "unauthorized") return; // wait for a key
    }
    $("live-state").textContent = "reconnecting";
    $("live-state").classList.remove("live");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// Clients.

async function loadClients() {
  const search = $("client-search").value.trim();
  const query = "/api/v1/clients?limit=1000" + (search ? "&like_clientid=" + encodeURIComponent(search) : "");
  let body;
  try { body = await (await api(query)).json(); } catch (e) { return; }
  const tbody = $("clients").querySelector("tbody");
  tbody.replaceChildren();
  for (const c of body.data) {
    const row = document.createElement("tr");
    row.dataset.clientid = c.clientid;
    row.append(text("td", c.clientid, "clientid"), text("td", c.username || ""),
      text("td", c.ip_address + ":" + c.port), text("td", c.proto_ver === 5 ? "5.0" : c.proto_ver === 4 ? "3.1.1" : "3.1"),
      text("td", c.keepalive + " s"), text("td", new Date(c.connected_at).toLocaleTimeString()),
      text("td", c.inflight), text("td", c.mqueue_len));
    const cell = document.createElement("td");
    const kick = text("button", "Kick", "kick");
    kick.type = "button";
    kick.addEventListener("click", () => kickClient(c.clientid));
    cell.append(kick);
    row.append(cell);
    tbody.append(row);
  }
  $("clients-count").textContent = body.meta.count + " connected" + (search ? " matching" : "");
}

async function kickClient(clientId) {
  if (!window.confirm("Disconnect client " + clientId + "?")) return;
  try {
    await api("/api/v1/clients/" + encodeURIComponent(clientId), { method: "DELETE" });
  } catch (e) { window.alert("Could not disconnect: " + e.message); }
  loadClients();
}

// Retained messages as a topic tree.

async function loadRetained() {
  let body;
  try { body = await (await api("/api/v1/retainer/messages?limit=1000")).json(); } catch (e) { return; }
  const root = {};
  for (const m of body.data) {
    let nodes = root;
    let node = null;
    for (const level of m.topic.split("/")) {
      node = nodes[level] || (nodes[level] = { children: {}, topic: null });
      nodes = node.children;
    }
    node.topic = m.topic;
  }
  const tree = $("topic-tree");
  tree.replaceChildren(...renderTree(root));
  if (body.meta.hasnext) tree.append(text("li", "… (first 1000 of " + body.meta.count + ")", "level"));
}

function renderTree(nodes) {
  return Object.keys(nodes).sort().map((level) => {
    const node = nodes[level];
    const item = document.createElement("li");
    const label = text("span", level === "" ? "(empty)" : level, node.topic ? "topic" : "level");
    if (node.topic) {
      label.dataset.topic = node.topic;
      label.addEventListener("click", () => showRetained(node.topic));
    }
    item.append(label);
    const children = renderTree(node.children);
    if (children.length) { const list = document.createElement("ul"); list.append(...children); item.append(list); }
    return item;
  });
}

async function showRetained(topic) {
  const path = "/api/v1/retainer/message/" + topic.split("/").map(encodeURIComponent).join("/");
  const target = $("retained-payload");
  try {
    const response = await api(path + "?payload_encoding=plain");
    if (response.status === 404) { target.textContent = topic + ": gone"; return; }
    const m = await response.json();
    target.textContent = m.topic + "  (QoS " + m.qos + ", " + m.payload_size + " bytes" +
      (m.payload_encoding === "base64" ? ", base64" : "") + ")\n" + m.payload;
  } catch (e) { target.textContent = e.message; }
}

// Watching a topic.

function startWatch(topicFilter) {
  stopWatch();
  const controller = new AbortController();
  state.watch = controller;
  $("watch-stop").disabled = false;
  const list = $("watch-messages");
  list.replaceChildren();
  const path = "/api/v1/events/watch?topic=" + encodeURIComponent(topicFilter);
  readEvents(path, (name, m) => {
    if (name !== "message") return;
    const item = document.createElement("li");
    item.append(text("span", m.topic, "topic"), text("span", "  q" + m.qos + (m.retain ? " r" : "") +
      (m.dropped_before ? "  (" + m.dropped_before + " missed)" : "") + "  ", "meta"),
      text("span", m.payload_encoding === "base64" ? "[base64] " + m.payload : m.payload, "payload-text"));
    list.prepend(item);
    while (list.children.length > MAX_WATCHED) list.lastChild.remove();
  }, controller.signal).catch(() => { /* stopped, or the broker went away */ });
}

function stopWatch() {
  if (state.watch) state.watch.abort();
  state.watch = null;
  $("watch-stop").disabled = true;
}

// Start.

async function loadInfo() {
  try {
    const status = await (await api("/api/v1/status")).json();
    $("broker-info").textContent = "v" + status.version + " on " + status.node + ", " +
      status.listeners.map((l) => l.bind).join(", ");
  } catch (e) { /* needKey shows the form */ }
}

function start() {
  $("key-form").hidden = true;
  loadInfo();
  liveStats();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key-input").value.trim();
    sessionStorage.setItem("roost-api-key", state.key);
    start();
  });
  let searchTimer = null;
  $("client-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadClients, 200);
  });
  $("retained-refresh").addEventListener("click", loadRetained);
  $("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startWatch($("watch-topic").value.trim() || "#");
  });
  $("watch-stop").addEventListener("click", stopWatch);
  start();
});
