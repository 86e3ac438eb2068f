/* The market board: state from /events (hello, snapshots, alert, status) and
   /api/history, drawn with uPlot (vendored) and plain HTML. No framework, no network
   beyond this server. `window.board` exposes the state for tests and the console. */
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const HKT = "Asia/Hong_Kong";
  const MAX_ALERTS = 300;
  const COLORS = { HSI: "#58a6ff", HSTECH: "#d2a8ff", SH: "#f0883e", SZ: "#3fb950",
                   total: "#e6edf3", market: "#58a6ff", threshold: "#f85149" };
  const state = {
    config: { windows: ["day", "1m", "5m", "15m", "60m"], weights: ["float", "equal"],
              rules: [], history_interval_s: 15 },
    status: {}, indices: new Map(), sectors: new Map(), stocks: new Map(),
    southbound: new Map(), market: null, alerts: [], alertIds: new Set(),
    history: {}, date: null,
    window: params.get("window") || "day", weight: params.get("weight") || "float",
    connection: "connecting", updates: 0,
  };
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  if (params.has("wall")) document.body.classList.add("wall");

  // -- history: one point per series per interval, the latest wins (as the worker) ------
  const HISTORY = { index: ["level", "change_pct"], sector: ["gain_pct", "eq_gain_pct", "turnover_hkd"],
                    market: ["turnover_hkd", "advancers", "decliners", "unchanged"],
                    southbound: ["buy_hkd", "sell_hkd", "net_hkd"] };

  function addPoint(record) {
    const fields = HISTORY[record.type];
    if (!fields || record.trading_date !== state.date) return;
    const name = `${record.type}:${record.subject}`;
    const points = state.history[name] || (state.history[name] = []);
    const point = { t: fmt.seconds(record.ts), ts: record.ts };
    for (const f of fields) point[f] = record[f];
    const step = state.config.history_interval_s;
    const last = points[points.length - 1];
    if (last && point.t < last.t) return; // older than the line's end: the history has it
    if (last && Math.floor(last.t / step) === Math.floor(point.t / step)) points[points.length - 1] = point;
    else points.push(point);
  }

  async function loadHistory() {
    if (!state.date) return;
    const date = state.date;
    try {
      const response = await fetch(`/api/history?date=${date}`, { cache: "no-store" });
      if (!response.ok) return;
      const body = await response.json();
      if (date !== state.date) return;
      const history = {};
      for (const [name, points] of Object.entries(body.series)) {
        history[name] = points.map((p) => ({ ...p, t: fmt.seconds(p.ts) }));
      }
      // keep live points newer than what the server had when it answered
      for (const [name, points] of Object.entries(state.history)) {
        const base = history[name] || (history[name] = []);
        const end = base.length ? base[base.length - 1].t : -Infinity;
        for (const p of points) if (p.t > end) base.push(p);
      }
      state.history = history;
      state.historyLoaded = true;
      schedule();
    } catch (error) { /* the next hello retries */ }
  }

  // -- events ---------------------------------------------------------------------------
  function applyBoard(board) {
    state.config = { ...state.config, ...(board.config || {}) };
    const date = board.status && board.status.trading_date;
    if (date !== state.date) { state.date = date; state.history = {}; }
    for (const [key, list] of [["indices", board.indices], ["sectors", board.sectors],
                               ["stocks", board.stocks], ["southbound", board.southbound]]) {
      state[key] = new Map((list || []).map((r) => [r.subject, r]));
    }
    state.market = board.market || null;
    for (const alert of [...(board.alerts || [])].reverse()) addAlert(alert, false);
    applyStatus(board.status || {});
    loadHistory();
    schedule();
  }

  function applySnapshots(records) {
    const maps = { index: state.indices, sector: state.sectors, stock: state.stocks,
                   southbound: state.southbound };
    for (const record of records) {
      if (record.trading_date && state.date && record.trading_date > state.date) {
        state.date = record.trading_date; state.history = {}; // a new trading day
        loadHistory();
      }
      if (record.type === "market") state.market = record;
      else if (maps[record.type]) maps[record.type].set(record.subject, record);
      addPoint(record);
    }
    state.updates += 1;
    schedule();
  }

  function addAlert(alert, fresh) {
    if (state.alertIds.has(alert.alert_id)) return;
    state.alertIds.add(alert.alert_id);
    alert._fresh = fresh;
    state.alerts.push(alert);
    state.alerts.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    if (state.alerts.length > MAX_ALERTS) {
      for (const old of state.alerts.splice(MAX_ALERTS)) state.alertIds.delete(old.alert_id);
    }
    schedule();
  }

  function applyStatus(status) {
    if (status.redis === "down") { setConnection("redis-down"); return; }
    state.status = { ...state.status, ...status };
    if (state.connection !== "live" && state.source && state.source.readyState === 1) setConnection("live");
    renderHeader();
  }

  function setConnection(value) {
    state.connection = value;
    const node = $("#conn");
    node.dataset.state = value;
    node.textContent = { live: "live", connecting: "connecting", reconnecting: "reconnecting…",
                         "redis-down": "Redis unreachable", offline: "server unreachable" }[value] || value;
  }

  function connect() {
    const source = new EventSource("/events");
    state.source = source;
    source.addEventListener("hello", (e) => { setConnection("live"); applyBoard(JSON.parse(e.data)); });
    source.addEventListener("snapshots", (e) => applySnapshots(JSON.parse(e.data)));
    source.addEventListener("alert", (e) => addAlert(JSON.parse(e.data), true));
    source.addEventListener("status", (e) => applyStatus(JSON.parse(e.data)));
    source.onerror = () => {
      setConnection("reconnecting");
      if (source.readyState === EventSource.CLOSED) { // the browser gave up: start again
        source.close();
        setTimeout(connect, 2000);
      }
    };
  }

  // -- rendering (at most once per animation frame) ------------------------------------
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  function render() {
    renderHeader();
    renderIndices();
    renderSectors();
    renderSouthbound();
    renderMarket();
    renderMovers();
    renderAlerts();
    document.body.dataset.ready = state.historyLoaded ? "1" : "0";
  }

  function renderHeader() {
    const s = state.status;
    $("#trading-date").textContent = s.trading_date || "—";
    const phase = $("#phase");
    if (s.live || !s.data_ts) {
      phase.dataset.phase = s.phase || "";
      phase.textContent = s.phase_label || "—";
    } else {
      phase.dataset.phase = "replay";
      phase.textContent = `Replay · ${s.data_phase_label || ""}`;
      phase.title = `The board shows ${s.trading_date}; now: ${s.phase_label}`;
    }
    const delay = s.live ? `delay ${fmt.duration(s.delay_s)}` : `${fmt.duration(s.delay_s)} behind`;
    $("#data-time").textContent = s.data_ts ? `data ${fmt.clock(s.data_ts)} HKT · ${delay}` : "no data yet";
  }

  function tile(label, value, sub, cls) {
    const node = el("div", "tile");
    node.append(el("div", "label", label), el("div", `value ${cls || ""}`, value));
    if (sub) node.append(el("div", `sub ${cls || ""}`, sub));
    return node;
  }

  function rulesFor(metric, subject) {
    return state.config.rules.filter((r) => r.metric === metric &&
      (r.subjects === "*" || r.subjects.includes(subject)));
  }

  function renderIndices() {
    const tiles = $("#index-tiles");
    tiles.replaceChildren(...[...state.indices.values()].map((r) => {
      const node = tile(r.name || r.subject, fmt.num(r.level), fmt.pct(r.change_pct), fmt.signClass(r.change_pct));
      node.dataset.index = r.subject;
      return node;
    }));
    const subjects = [...state.indices.keys()];
    const thresholds = [...new Set(subjects.flatMap((s) => rulesFor("index.change_pct", s)
      .filter((r) => r.window === "day").map((r) => r.threshold)))];
    drawChart("index", $("#index-chart"), subjects.map((s) => ({ name: `index:${s}`, field: "change_pct",
      label: s, color: COLORS[s] || "#8b949e" })), thresholds, (v) => fmt.pct(v), (v) => fmt.pct(v, 1));
  }

  function sectorValue(sector) {
    if (state.window === "day") return state.weight === "equal" ? sector.eq_gain_pct : sector.gain_pct;
    if (state.weight === "equal") return null;
    const v = (sector.rolling || {})[state.window];
    return v === undefined ? null : v;
  }

  function renderControls() {
    const windows = $("#window-buttons"), weights = $("#weight-buttons");
    windows.replaceChildren(...state.config.windows.map((w) => {
      const b = el("button", "", w); b.type = "button"; b.dataset.window = w;
      b.setAttribute("aria-pressed", String(w === state.window));
      b.onclick = () => { state.window = w; if (w !== "day") state.weight = "float"; schedule(); };
      return b;
    }));
    const labels = { float: "free-float", equal: "equal-weighted" };
    weights.replaceChildren(...state.config.weights.map((w) => {
      const b = el("button", "", labels[w] || w); b.type = "button"; b.dataset.weight = w;
      b.setAttribute("aria-pressed", String(w === state.weight));
      b.disabled = w === "equal" && state.window !== "day";
      if (b.disabled) b.title = "equal-weighted gains are computed for the day only";
      b.onclick = () => { state.weight = w; schedule(); };
      return b;
    }));
  }

  function renderSectors() {
    renderControls();
    const rows = [...state.sectors.values()].map((s) => ({ s, v: sectorValue(s) }));
    rows.sort((a, b) => (a.v === null) - (b.v === null) || (b.v ?? 0) - (a.v ?? 0) ||
      a.s.subject.localeCompare(b.s.subject));
    const max = Math.max(1e-9, ...rows.map((r) => Math.abs(r.v ?? 0)));
    $("#sector-caption").textContent = `${state.weight === "equal" ? "equal-weighted" : "free-float"} gain, ` +
      (state.window === "day" ? "day" : `last ${state.window}`);
    $("#sector-bars").replaceChildren(...rows.map((row, i) => {
      const li = el("li", row.v === null ? "na" : "");
      li.dataset.sector = row.s.subject;
      const track = el("div", "track");
      if (row.v !== null) {
        const bar = el("div", `bar ${row.v >= 0 ? "up" : "down"}`);
        bar.style.width = `${(Math.abs(row.v) / max) * 50}%`;
        track.append(bar);
      }
      const top = (row.s.top_contributors || []).slice(0, 3)
        .map((c) => `${c.name} ${fmt.pct(c.change_pct)}`).join(", ");
      li.title = `${row.s.subject}: day ${fmt.pct(row.s.gain_pct)}, equal-weighted ${fmt.pct(row.s.eq_gain_pct)}, ` +
        `${row.s.advancers} up / ${row.s.decliners} down${top ? `; top: ${top}` : ""}`;
      li.append(el("span", "rank", String(i + 1)), el("span", "name", row.s.subject), track,
                el("span", `val ${fmt.signClass(row.v)}`, row.v === null ? "—" : fmt.pct(row.v)));
      return li;
    }));
  }

  function renderSouthbound() {
    const order = ["SH", "SZ", "total"];
    const flows = order.filter((c) => state.southbound.has(c)).map((c) => state.southbound.get(c));
    $("#southbound-tiles").replaceChildren(...flows.map((r) => {
      const node = tile(r.subject === "total" ? "total" : `${r.subject}→HK`, fmt.hkd(r.net_hkd),
        `buy ${fmt.hkd(r.buy_hkd)} · sell ${fmt.hkd(r.sell_hkd)}`, fmt.signClass(r.net_hkd));
      node.dataset.channel = r.subject;
      return node;
    }));
    const thresholds = rulesFor("southbound.net_inflow_hkd", "total").map((r) => r.threshold);
    drawChart("southbound", $("#southbound-chart"), order.map((c) => ({ name: `southbound:${c}`,
      field: "net_hkd", label: c, color: COLORS[c], width: c === "total" ? 2.5 : 1.5 })),
      thresholds, fmt.hkd, fmt.axisHkd);
  }

  function renderMarket() {
    const m = state.market;
    $("#market-figures").replaceChildren(...(m ? [
      tile("turnover", fmt.hkd(m.turnover_hkd), `as of ${fmt.clock(m.ts)}`),
      tile("advancers / decliners", `${m.advancers} / ${m.decliners}`, `${m.unchanged} unchanged`),
    ] : []));
    const breadth = $("#breadth");
    breadth.replaceChildren();
    if (m) {
      const total = Math.max(1, m.advancers + m.decliners + m.unchanged);
      for (const [cls, n, label] of [["adv", m.advancers, "up"], ["unch", m.unchanged, "unchanged"],
                                     ["dec", m.decliners, "down"]]) {
        if (!n) continue;
        const part = el("div", cls, String(n)); part.style.flex = String(n / total); part.title = `${n} ${label}`;
        breadth.append(part);
      }
    }
    const thresholds = rulesFor("market.turnover_hkd", "market").map((r) => r.threshold);
    drawChart("turnover", $("#turnover-chart"), [{ name: "market:market", field: "turnover_hkd",
      label: "turnover", color: COLORS.market }], thresholds, fmt.hkd, fmt.axisHkd);
  }

  function renderMovers() {
    const movers = [...state.stocks.values()].sort((a, b) =>
      Math.abs(b.change_pct) - Math.abs(a.change_pct) || a.subject.localeCompare(b.subject)).slice(0, 12);
    $("#movers tbody").replaceChildren(...movers.map((s) => {
      const tr = el("tr"); tr.dataset.stock = s.subject;
      tr.append(el("td", "", s.subject), el("td", "name", s.name), el("td", "num", fmt.num(s.last, 3)),
                el("td", `num ${fmt.signClass(s.change_pct)}`, fmt.pct(s.change_pct)),
                el("td", "num", fmt.hkd(s.turnover_hkd)));
      return tr;
    }));
  }

  function renderAlerts() {
    const list = $("#alerts");
    $("#alert-count").textContent = String(state.alerts.length);
    if (!state.alerts.length) { list.replaceChildren(el("li", "empty", "No alerts yet.")); return; }
    list.replaceChildren(...state.alerts.map((a) => {
      const li = el("li", `alert${a._fresh ? " fresh" : ""}`);
      a._fresh = false;
      Object.assign(li.dataset, { alertId: a.alert_id, rule: a.rule_id, subject: a.subject, severity: a.severity });
      const head = el("div", "head");
      head.append(el("time", "", fmt.clock(a.ts)), el("span", "sev", a.severity), el("span", "", a.rule_id));
      const evidence = el("ul", "evidence");
      evidence.append(...fmt.evidence(a).map((text) => el("li", "", text)));
      li.append(head, el("div", "msg", a.message), el("div", "vs", fmt.versus(a)), evidence);
      return li;
    }));
  }

  // -- charts (uPlot), one per card, rebuilt when the series set changes ----------------
  const charts = {};
  function dayRange() {
    if (!state.date) return [0, 1];
    return [Date.parse(`${state.date}T09:00:00+08:00`) / 1000, Date.parse(`${state.date}T16:10:00+08:00`) / 1000];
  }

  function drawChart(id, node, specs, thresholds, format, axisFormat) {
    const present = specs.filter((s) => (state.history[s.name] || []).length);
    const xs = [...new Set(present.flatMap((s) => state.history[s.name].map((p) => p.t)))].sort((a, b) => a - b);
    if (!xs.length) {
      if (charts[id]) { charts[id].chart.destroy(); delete charts[id]; }
      if (!node.querySelector(".empty")) node.replaceChildren(el("div", "empty", "waiting for the first figures…"));
      return;
    }
    const data = [xs];
    for (const s of present) {
      const byT = new Map(state.history[s.name].map((p) => [p.t, p[s.field]]));
      data.push(xs.map((t) => (byT.has(t) ? byT.get(t) : null)));
    }
    for (const level of thresholds) data.push(xs.map(() => level));
    const key = present.map((s) => s.name).join("|") + `#${thresholds.join(",")}`;
    const chart = charts[id];
    if (chart && chart.key === key) { chart.chart.setData(data); return; }
    if (chart) chart.chart.destroy();
    node.replaceChildren();
    const muted = "#8b949e", grid = "#30363d";
    let legend = 30; // measured once the chart exists
    const size = () => ({ width: Math.max(200, node.clientWidth), height: Math.max(80, node.clientHeight - legend) });
    const opts = {
      ...size(),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), HKT),
      scales: { x: { time: true, range: () => dayRange() },
                y: { range: (u, min, max) => {
                  const lo = Math.min(min, 0, ...thresholds), hi = Math.max(max, 0, ...thresholds);
                  const pad = (hi - lo) * 0.08 || 1;
                  return [lo - pad, hi + pad];
                } } },
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid },
          values: (u, splits) => splits.map((s) => uPlot.fmtDate("{HH}:{mm}")(uPlot.tzDate(new Date(s * 1e3), HKT))) },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 62,
          values: (u, splits) => splits.map(axisFormat || format) },
      ],
      series: [
        { value: (u, v) => (v === null ? "—" : uPlot.fmtDate("{HH}:{mm}:{ss}")(uPlot.tzDate(new Date(v * 1e3), HKT))) },
        ...present.map((s) => ({ label: s.label, stroke: s.color, width: s.width || 2, spanGaps: true,
                                 value: (u, v) => (v === null ? "—" : format(v)) })),
        ...thresholds.map((level) => ({ label: `alert ${format(level)}`, stroke: COLORS.threshold,
                                         width: 1.2, dash: [6, 4], points: { show: false },
                                         value: () => format(level) })),
      ],
      legend: { live: true },
      cursor: { points: { size: 6 } },
    };
    const instance = new uPlot(opts, data, node);
    const fit = () => { // the legend's height is known once laid out at the chart's width
      const legendNode = instance.root.querySelector(".u-legend");
      legend = legendNode ? legendNode.offsetHeight + 4 : 0;
      instance.setSize(size());
    };
    requestAnimationFrame(fit);
    charts[id] = { chart: instance, key };
    new ResizeObserver(() => { if (charts[id] && charts[id].chart === instance) fit(); }).observe(node);
  }

  window.board = {
    state,
    series: (name) => (state.history[name] || []).slice(),
    sectorRanking: () => [...document.querySelectorAll("#sector-bars li")].map((li) => li.dataset.sector),
  };
  setConnection("connecting");
  render();
  connect();
})();
