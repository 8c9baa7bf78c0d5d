// Switchboard's dashboard: plain JavaScript, no framework, no build step.
//
// It reads the operator endpoints next to it (/plugins, /api/stats,
// /api/calls, /api/calls/{id}) and runs tools through POST /api/try. Every
// URL is relative to the page (/ui/), so a mount prefix is kept. Everything
// that came from a call (numbers, arguments, results, errors) is put on the
// page as text, never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "switchboard.adminToken";
  const POLL_MS = 2000;
  // Plugins and per-tool figures change slowly: every fifth poll.
  const PLUGINS_EVERY = 5;
  const PAGE = 50;

  const $ = (id) => document.getElementById(id);

  // ---------- small helpers ----------

  /** An element with attributes (`text` sets its text) and children. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** A table cell labelled for narrow screens, its content in one span. */
  function cell(label, cls, ...children) {
    const content = children.filter((c) => c !== null && c !== undefined && c !== false);
    return el("td", { class: cls, "data-label": label }, content.length ? el("span", { class: "v" }, ...content) : null);
  }

  const pad = (n, width = 2) => String(n).padStart(width, "0");

  /** `HH:MM:SS` in local time, with the date before it when not today. */
  function clock(ms, withMillis) {
    if (ms === null || ms === undefined) return "—";
    const d = new Date(ms);
    let text = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (withMillis) text += `.${pad(d.getMilliseconds(), 3)}`;
    const today = new Date();
    if (d.toDateString() !== today.toDateString()) {
      text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${text}`;
    }
    return text;
  }

  function millis(ms) {
    if (typeof ms !== "number") return "—";
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 100) return `${ms.toFixed(1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(2)} s`;
  }

  function seconds(s) {
    if (typeof s !== "number") return "—";
    if (s < 60) return `${Math.round(s)} s`;
    return `${Math.floor(s / 60)} min ${pad(Math.round(s % 60))} s`;
  }

  function percent(rate) {
    if (typeof rate !== "number") return "—";
    if (rate === 0) return "0 %";
    return rate < 0.01 ? `${(rate * 100).toFixed(2)} %` : `${(rate * 100).toFixed(1)} %`;
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  function storedToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function storeToken(token) {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // No storage (private mode): the token lasts as long as the page.
    }
    memoryToken = token;
  }

  let memoryToken = storedToken();

  // ---------- the API ----------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** JSON from `path` (relative to /ui/), with the admin token when there is one. */
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (memoryToken) headers.Authorization = `Bearer ${memoryToken}`;
    let response;
    try {
      response = await fetch(`../${path}`, { ...options, headers, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, `Switchboard does not answer (${e.message})`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    let message = body && typeof body.error === "string" && body.error;
    if (!message && response.status === 404) message = `${path.split("?")[0]} is not served here (404)`;
    if (!message) message = `${response.status} ${response.statusText}`;
    if (response.status === 401 || response.status === 403) {
      askForToken(message);
      throw new ApiError(response.status, message);
    }
    if (!response.ok) throw new ApiError(response.status, message);
    tokenAccepted();
    return body;
  }

  function askForToken(reason) {
    $("access").hidden = false;
    $("access-reason").textContent = memoryToken ? `The server refused the token: ${reason}` : reason;
  }

  function tokenAccepted() {
    $("access").hidden = true;
    $("token-forget").hidden = !memoryToken;
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken($("token-input").value.trim());
    $("token-input").value = "";
    $("access").hidden = true;
    pluginsAt = 0;
    pollNow();
  });

  $("token-forget").addEventListener("click", () => {
    storeToken("");
    $("token-forget").hidden = true;
    pollNow();
  });

  // ---------- views ----------

  /** The view the URL names: `#/`, `#/calls/<id>`, `#/try`, `#/try/<tool>`. */
  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [first, ...rest] = hash.split("/");
    const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
    if (first === "calls" && arg) return { view: "call", id: arg };
    if (first === "try") return { view: "try", tool: arg };
    return { view: "overview" };
  }

  let current = route();

  function show() {
    current = route();
    for (const name of ["overview", "call", "try"]) $(`view-${name}`).hidden = name !== current.view;
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === current.view);
    }
    if (current.view === "call") {
      $("call-id").textContent = current.id;
      if (shownCall !== current.id) {
        shownCall = current.id;
        lastCallKey = "";
        $("call-summary").replaceChildren();
        $("timeline").replaceChildren();
        setMessage("call-message", "Loading…");
      }
      document.title = `Call ${current.id} · Switchboard`;
    } else if (current.view === "try") {
      if (current.tool) wantedTool = current.tool;
      fillToolPicker();
      document.title = "Try a tool · Switchboard";
    } else {
      document.title = "Switchboard";
    }
  }

  window.addEventListener("hashchange", () => {
    show();
    pollNow();
  });

  function setMessage(id, text, isError) {
    const node = $(id);
    node.hidden = !text;
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  // ---------- plugins and tools ----------

  let plugins = null; // the last GET /plugins
  let pluginsAt = 0; // polls until the next plugins refresh

  async function loadPlugins() {
    const [list, stats] = await Promise.all([
      api("plugins"),
      api("api/stats").catch((e) => {
        if (e.status === 401 || e.status === 403) throw e;
        return { error: e.message };
      }),
    ]);
    plugins = list;
    renderPlugins(list, stats);
    fillToolPicker();
  }

  function renderPlugins(list, stats) {
    const byTool = new Map();
    for (const figure of (stats && stats.tools) || []) byTool.set(figure.tool, figure);

    const errors = list.errors || [];
    $("load-errors").hidden = errors.length === 0;
    $("load-errors").replaceChildren(
      ...errors.map((e) =>
        el(
          "li",
          { "data-plugin": e.name },
          el("strong", { text: e.name }),
          " did not load",
          e.path ? el("span", { class: "muted", text: ` (${e.path})` }) : null,
          el("pre", { class: "error", text: e.error }),
        ),
      ),
    );

    const rows = [];
    const names = [];
    for (const plugin of list.plugins || []) {
      const tools = plugin.tools && plugin.tools.length ? plugin.tools : [null];
      for (const tool of tools) {
        if (tool) names.push(tool);
        const figure = tool ? byTool.get(tool) : null;
        const failing = figure && figure.failed > 0;
        rows.push(
          el(
            "tr",
            { "data-tool": tool, "data-plugin": plugin.name, class: failing ? "failing" : null },
            cell("Tool", "wide", tool ? el("strong", { text: tool }) : el("span", { class: "muted", text: eventsOnly(plugin) })),
            cell("Plugin", "wide", plugin.name, el("span", { class: "muted", text: ` · ${plugin.kind || "?"} · ${plugin.tier || "?"}` })),
            cell("Version", null, el("code", { text: plugin.version || "—", title: loadedTitle(plugin) })),
            cell("Calls (1 h)", "num", figure ? String(figure.calls) : tool ? "0" : null),
            cell("Per min", "num", figure ? figure.per_minute.toFixed(1) : null),
            cell("p50", "num", figure ? millis(figure.p50_ms) : null),
            cell("p99", "num", figure ? millis(figure.p99_ms) : null),
            cell(
              "Errors",
              failing ? "num bad" : "num",
              figure ? percent(figure.error_rate) : null,
              figure && figure.failed ? el("span", { class: "muted", text: ` (${figure.failed})` }) : null,
            ),
            cell(null, "actions", tool ? el("a", { href: `#/try/${encodeURIComponent(tool)}`, text: "Try" }) : null),
          ),
        );
      }
    }
    $("tools").querySelector("tbody").replaceChildren(...rows);
    $("tools").hidden = rows.length === 0;
    let message = rows.length === 0 ? "No plugins are loaded." : "";
    if (stats && stats.error) message = `${message} Per-tool figures are not available: ${stats.error}`.trim();
    setMessage("plugins-message", message);

    names.sort();
    $("tool-names").replaceChildren(...names.map((name) => el("option", { value: name })));
  }

  function eventsOnly(plugin) {
    const subscriptions = plugin.subscriptions || [];
    return subscriptions.length ? `no tools; receives ${subscriptions.join(", ")}` : "no tools";
  }

  function loadedTitle(plugin) {
    const parts = [];
    if (plugin.loaded_at) parts.push(`loaded ${new Date(plugin.loaded_at * 1000).toISOString()}`);
    if (plugin.timeout_ms) parts.push(`timeout ${plugin.timeout_ms} ms`);
    if (plugin.memory_mib) parts.push(`memory ${plugin.memory_mib} MiB`);
    if (plugin.path) parts.push(plugin.path);
    return parts.join(" · ");
  }

  // ---------- recent calls ----------

  let calls = []; // summaries on screen, newest first
  let nextBefore = null; // the cursor after the oldest page on screen
  let extended = false; // whether "More" added pages
  let filterGeneration = 0; // bumps when the filters change: older answers are dropped
  let lastCallsKey = "";

  function filterQuery() {
    const query = new URLSearchParams();
    const number = $("filter-number").value.trim();
    const tool = $("filter-tool").value.trim();
    const outcome = $("filter-outcome").value;
    if (number) query.set("number", number);
    if (tool) query.set("tool", tool);
    if (outcome) query.set("outcome", outcome);
    query.set("limit", String(PAGE));
    return query;
  }

  function filtered() {
    return Boolean($("filter-number").value.trim() || $("filter-tool").value.trim() || $("filter-outcome").value);
  }

  async function loadCalls() {
    const generation = filterGeneration;
    const page = await api(`api/calls?${filterQuery()}`);
    if (generation !== filterGeneration) return;
    const fresh = page.calls || [];
    if (extended) {
      const seen = new Set(fresh.map((c) => c.call_id));
      calls = fresh.concat(calls.filter((c) => !seen.has(c.call_id)));
    } else {
      calls = fresh;
      nextBefore = page.next_before || null;
    }
    renderCalls();
  }

  async function loadMoreCalls() {
    if (!nextBefore) return;
    const generation = filterGeneration;
    const query = filterQuery();
    query.set("before", nextBefore);
    $("calls-more").disabled = true;
    try {
      const page = await api(`api/calls?${query}`);
      if (generation !== filterGeneration) return;
      const seen = new Set(calls.map((c) => c.call_id));
      calls = calls.concat((page.calls || []).filter((c) => !seen.has(c.call_id)));
      nextBefore = page.next_before || null;
      extended = true;
      renderCalls();
    } catch (e) {
      setMessage("calls-message", e.message, true);
    } finally {
      $("calls-more").disabled = false;
    }
  }

  function renderCalls() {
    $("calls-more").hidden = !nextBefore;
    const key = JSON.stringify(calls);
    if (key === lastCallsKey) return;
    lastCallsKey = key;
    if (calls.length === 0) {
      setMessage("calls-message", filtered() ? "No calls match these filters." : "No calls logged yet.");
    } else {
      setMessage("calls-message", "");
    }
    $("calls").hidden = calls.length === 0;
    $("calls").querySelector("tbody").replaceChildren(...calls.map(callRow));
  }

  function callRow(call) {
    const href = `#/calls/${encodeURIComponent(call.call_id)}`;
    const status = call.ended_reason ? `ended: ${call.ended_reason}` : call.status || "—";
    return el(
      "tr",
      { "data-call-id": call.call_id, class: call.failed > 0 ? "failing" : null },
      cell("Started", null, el("span", { title: call.first_at, text: clock(call.first_at_ms) })),
      cell("Call", "wide", el("a", { href, class: "mono", text: call.call_id })),
      cell("Customer", "wide", call.customer_number || "—"),
      cell("Line", null, call.phone_number || "—"),
      cell(
        "Tool calls",
        "num",
        String(call.tool_calls),
        call.failed > 0 ? el("span", { class: "badge bad", text: `${call.failed} failed` }) : null,
      ),
      cell("Status", "wide", status),
      cell("Duration", "num", seconds(call.duration_seconds)),
    );
  }

  // A click anywhere on a row opens the call (the id is also a link).
  $("calls").querySelector("tbody").addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    const row = event.target.closest("[data-call-id]");
    if (row) location.hash = `#/calls/${encodeURIComponent(row.dataset.callId)}`;
  });

  let filterTimer = null;
  function filtersChanged() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      filterGeneration += 1;
      calls = [];
      nextBefore = null;
      extended = false;
      lastCallsKey = "";
      setMessage("calls-message", "Loading…");
      pollNow();
    }, 250);
  }
  for (const id of ["filter-number", "filter-tool"]) $(id).addEventListener("input", filtersChanged);
  $("filter-outcome").addEventListener("change", filtersChanged);
  $("call-filters").addEventListener("submit", (event) => event.preventDefault());
  $("calls-more").addEventListener("click", loadMoreCalls);

  // ---------- one call's timeline ----------

  let shownCall = null;
  let lastCallKey = "";

  async function loadCall() {
    const id = current.id;
    let answer;
    try {
      answer = await api(`api/calls/${encodeURIComponent(id)}`);
    } catch (e) {
      if (id !== current.id) return;
      if (e.status === 404) {
        setMessage("call-message", `No call “${id}” in the log (yet).`);
        return;
      }
      throw e;
    }
    if (id !== current.id) return;
    const key = JSON.stringify(answer);
    if (key === lastCallKey) return;
    lastCallKey = key;
    setMessage("call-message", "");
    renderSummary(answer.call || {});
    renderTimeline(answer.entries || []);
  }

  function renderSummary(call) {
    const facts = [
      ["Customer", call.customer_number],
      ["Line", call.phone_number],
      ["Status", call.status],
      ["Ended", call.ended_reason],
      ["Duration", typeof call.duration_seconds === "number" ? seconds(call.duration_seconds) : null],
      ["Tool calls", call.tool_calls],
      ["Failed", call.failed],
      ["First seen", call.first_at],
      ["Last seen", call.last_at],
    ];
    $("call-summary").replaceChildren(
      ...facts
        .filter(([, value]) => value !== null && value !== undefined)
        .flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]),
    );
  }

  function renderTimeline(entries) {
    const start = entries.length ? entries[0].at_ms : 0;
    $("timeline").replaceChildren(...entries.map((entry) => timelineEntry(entry, start)));
  }

  function timelineEntry(entry, start) {
    const when = el(
      "div",
      { class: "when", title: entry.at },
      el("span", { text: clock(entry.at_ms, true) }),
      el("span", { class: "muted", text: ` +${((entry.at_ms - start) / 1000).toFixed(3)} s` }),
    );
    if (entry.kind === "tool_call") return toolCallEntry(entry, when);
    return webhookEntry(entry, when);
  }

  function toolCallEntry(entry, when) {
    const ok = entry.outcome === "ok";
    const failed = ["error", "timeout", "invalid_arguments"].includes(entry.outcome);
    const meta = [
      entry.plugin ? `${entry.plugin}${entry.version ? ` ${entry.version}` : ""}` : "no plugin",
      `via ${entry.door}`,
      millis(entry.duration_ms),
      `id ${entry.tool_call_id}`,
    ];
    const body = [
      field("Arguments", "arguments", entry.arguments, "not captured"),
    ];
    if (entry.error) body.push(field("Error", "error", entry.error, null, true));
    if (entry.result !== null && entry.result !== undefined) body.push(field("Result", "result", entry.result));
    else if (!entry.error && ok) body.push(field("Result", "result", null, "not captured"));
    return el(
      "li",
      {
        class: `entry tool-call${failed ? " failing" : ""}`,
        "data-kind": "tool_call",
        "data-tool": entry.tool,
        "data-outcome": entry.outcome,
        "data-tool-call-id": entry.tool_call_id,
      },
      when,
      el(
        "div",
        { class: "what" },
        el("div", { class: "title" }, "Tool ", el("strong", { text: entry.tool }), " ", outcomeBadge(entry.outcome)),
        el("div", { class: "meta muted", text: meta.join(" · ") }),
        ...body,
      ),
    );
  }

  function outcomeBadge(outcome) {
    const tone = outcome === "ok" ? "good" : ["duplicate", "async"].includes(outcome) ? "neutral" : "bad";
    return el("span", { class: `badge ${tone}`, text: (outcome || "?").replace(/_/g, " ") });
  }

  /** A labelled value: text as it is, anything else as indented JSON. */
  function field(label, name, value, absent, isError) {
    const present = value !== null && value !== undefined;
    return el(
      "div",
      { class: "field", "data-field": name },
      el("div", { class: "label", text: label }),
      present
        ? el("pre", { class: isError ? "error" : "json", text: typeof value === "string" && isError ? value : json(value) })
        : el("div", { class: "muted", text: absent || "—" }),
    );
  }

  const EVENT_TITLES = {
    "tool-calls": "Tool calls webhook",
    "assistant-request": "Assistant request",
    "status-update": "Status update",
    "end-of-call-report": "End-of-call report",
  };

  function webhookEntry(entry, when) {
    const detail = entry.detail || {};
    const title = el("div", { class: "title" }, el("strong", { text: EVENT_TITLES[entry.event] || entry.event }));
    if (entry.event === "status-update" && detail.status) {
      title.append(" ", el("span", { class: "badge neutral", text: detail.status }));
    }
    const meta = [`HTTP ${entry.http_status}`, millis(entry.duration_ms)];
    const body = [];
    if (entry.event === "status-update") {
      if (detail.ended_reason) body.push(fact("Ended reason", detail.ended_reason));
      if (detail.error) body.push(field("Error", "error", detail.error, null, true));
    } else if (entry.event === "end-of-call-report") {
      body.push(report(detail));
    } else if (entry.detail) {
      body.push(field("Detail", "detail", entry.detail));
    }
    return el(
      "li",
      { class: `entry webhook event-${entry.event}`, "data-kind": "webhook", "data-event": entry.event },
      when,
      el("div", { class: "what" }, title, el("div", { class: "meta muted", text: meta.join(" · ") }), ...body),
    );
  }

  function fact(name, value) {
    return el("dl", { class: "facts small" }, el("dt", { text: name }), el("dd", { text: value }));
  }

  /** The end-of-call report's fields: the known ones first, then the rest. */
  function report(detail) {
    const known = ["ended_reason", "duration_seconds", "cost", "summary"];
    const names = known.filter((k) => k in detail).concat(Object.keys(detail).filter((k) => !known.includes(k)));
    const list = el("dl", { class: "facts report", "data-field": "report" });
    for (const name of names) {
      const value = detail[name];
      let shown;
      if (name === "duration_seconds" && typeof value === "number") shown = el("dd", { text: seconds(value) });
      else if (value !== null && typeof value === "object") {
        shown = el("dd", {}, el("details", {}, el("summary", { text: Array.isArray(value) ? `${value.length} items` : "show" }), el("pre", { class: "json", text: json(value) })));
      } else shown = el("dd", { text: value === null ? "—" : String(value) });
      list.append(el("dt", { text: name.replace(/_/g, " ") }), shown);
    }
    return list;
  }

  // ---------- try a tool ----------

  let wantedTool = "";

  function fillToolPicker() {
    if (!plugins) return;
    const picker = $("try-tool");
    const chosen = wantedTool || picker.value;
    const options = [];
    for (const plugin of plugins.plugins || []) {
      for (const tool of plugin.tools || []) options.push({ tool, plugin: plugin.name });
    }
    options.sort((a, b) => a.tool.localeCompare(b.tool));
    const key = JSON.stringify(options);
    if (picker.dataset.key !== key) {
      picker.dataset.key = key;
      picker.replaceChildren(
        ...options.map((o) => el("option", { value: o.tool, text: o.tool === o.plugin ? o.tool : `${o.tool} (${o.plugin})` })),
      );
    }
    if (chosen && options.some((o) => o.tool === chosen)) picker.value = chosen;
    wantedTool = "";
    $("try-run").disabled = options.length === 0;
    if (options.length === 0) $("try-status").textContent = "No tools are loaded.";
  }

  async function runTry(event) {
    event.preventDefault();
    const output = $("try-output");
    const status = $("try-status");
    const tool = $("try-tool").value;
    let args;
    try {
      args = JSON.parse($("try-arguments").value || "{}");
    } catch (e) {
      showTry("invalid", "Arguments are not valid JSON", e.message);
      return;
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      showTry("invalid", "Arguments must be a JSON object", json(args));
      return;
    }
    $("try-run").disabled = true;
    status.textContent = `Running ${tool}…`;
    output.removeAttribute("data-outcome");
    try {
      const answer = await api("api/try", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ tool, arguments: args }),
      });
      if (typeof answer.error === "string") showTry("error", `${tool} failed in ${millis(answer.duration_ms)}`, answer.error);
      else showTry("ok", `${tool} answered in ${millis(answer.duration_ms)}`, json(answer.result));
    } catch (e) {
      showTry("error", "The server refused the request", e.message);
    } finally {
      $("try-run").disabled = false;
    }
  }

  function showTry(outcome, summary, text) {
    const output = $("try-output");
    $("try-status").textContent = summary;
    $("try-status").className = outcome === "ok" ? "good-text" : "bad-text";
    output.hidden = false;
    output.textContent = text;
    output.className = `output ${outcome === "ok" ? "json" : "error"}`;
    output.dataset.outcome = outcome;
  }

  $("try-form").addEventListener("submit", runTry);
  $("try-arguments").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("try-form").requestSubmit();
  });

  // ---------- polling ----------

  let timer = null;
  let polling = false;
  let again = false;

  /** Refreshes what the current view shows, then again in POLL_MS. */
  async function poll() {
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    try {
      if (!plugins || pluginsAt <= 0) {
        await loadPlugins();
        pluginsAt = PLUGINS_EVERY;
      }
      pluginsAt -= 1;
      if (current.view === "overview") await loadCalls();
      else if (current.view === "call") await loadCall();
      live(`live · ${clock(Date.now())}`, false);
    } catch (e) {
      live(e.status === 401 || e.status === 403 ? "needs the admin token" : e.message, true);
      if (current.view === "overview" && !(e.status === 401 || e.status === 403)) setMessage("calls-message", e.message, true);
      if (current.view === "call") setMessage("call-message", e.message, true);
    } finally {
      polling = false;
      if (again) {
        again = false;
        timer = setTimeout(poll, 0);
      } else if (!document.hidden) {
        timer = setTimeout(poll, POLL_MS);
      }
    }
  }

  function pollNow() {
    clearTimeout(timer);
    poll();
  }

  function live(text, isError) {
    const node = $("live");
    node.textContent = text;
    node.classList.toggle("error", isError);
  }

  // A hidden tab does not poll; it catches up when shown.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      live("paused", false);
    } else {
      pollNow();
    }
  });

  $("token-forget").hidden = !memoryToken;
  show();
  poll();
})();
