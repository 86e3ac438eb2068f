/* Formatting for the board: numbers, money, times, and an alert's evidence (pure). */
"use strict";

const fmt = (() => {
  const nf = (digits) => new Intl.NumberFormat("en-US",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const n0 = nf(0), n2 = nf(2), n3 = nf(3);

  function num(value, digits = 2) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    return (digits === 0 ? n0 : digits === 3 ? n3 : n2).format(value);
  }
  function pct(value, digits = 2) {
    if (value === null || value === undefined) return "—";
    return (value > 0 ? "+" : value < 0 ? "−" : "") + num(Math.abs(value), digits) + "%";
  }
  function hkd(value) { // HK$ with a scale: 8.57bn, 302.6bn, 45.2m
    if (value === null || value === undefined) return "—";
    const sign = value < 0 ? "−" : "", a = Math.abs(value);
    if (a >= 1e9) return `${sign}HK$${num(a / 1e9, a >= 1e11 ? 1 : 2)}bn`;
    if (a >= 1e6) return `${sign}HK$${num(a / 1e6, 1)}m`;
    return `${sign}HK$${num(a, 0)}`;
  }
  function axisHkd(value) { // axis labels: 7.5bn, 200bn, 40m (the card says HK$)
    const a = Math.abs(value), sign = value < 0 ? "−" : "";
    const scaled = a >= 1e9 ? [a / 1e9, "bn"] : a >= 1e6 ? [a / 1e6, "m"] : [a, ""];
    return `${sign}${num(scaled[0], Number.isInteger(Math.round(scaled[0] * 100) / 100) ? 0 : 1)}${scaled[1]}`;
  }
  function signClass(value) { return value > 0 ? "up" : value < 0 ? "down" : ""; }
  function clock(rfc3339) { return rfc3339 ? rfc3339.slice(11, 19) : "—"; }
  function seconds(rfc3339) { return Date.parse(rfc3339) / 1000; }
  function metricValue(metric, value) {
    return metric.endsWith("_pct") ? pct(value) : hkd(value);
  }
  function duration(s) {
    if (s === null || s === undefined) return "—";
    if (Math.abs(s) < 60) return `${num(s, 1)} s`;
    if (Math.abs(s) < 3600) return `${num(s / 60, 1)} min`;
    if (Math.abs(s) < 86400 * 2) return `${num(s / 3600, 1)} h`;
    return `${num(s / 86400, 0)} days`;
  }

  /* The evidence of an alert as short phrases (docs/contracts.md#alert: evidence). */
  function evidence(alert) {
    const e = alert.evidence || {}, out = [];
    switch (alert.metric) {
      case "index.change_pct":
        out.push(`level ${num(e.level)} vs prev close ${num(e.prev_close)}`);
        if (e.change_points !== undefined) out.push(`${e.change_points >= 0 ? "+" : ""}${num(e.change_points)} pts`);
        break;
      case "stock.change_pct":
        out.push(`last HK$${num(e.last, 3)} vs prev close HK$${num(e.prev_close, 3)}`);
        out.push(`turnover ${hkd(e.turnover_hkd)}`, `${num(e.trades, 0)} trades`);
        if (e.sectors && e.sectors.length) out.push(e.sectors.join(", "));
        break;
      case "sector.gain_pct": case "sector.eq_gain_pct": case "sector.turnover_hkd":
        out.push(`day ${pct(e.gain_pct)} (equal-weighted ${pct(e.eq_gain_pct)})`);
        out.push(`${e.advancers ?? 0} up / ${e.decliners ?? 0} down`);
        for (const c of (e.top_contributors || []).slice(0, 3)) {
          out.push(`${c.name} ${pct(c.change_pct)} → ${c.contribution_pct >= 0 ? "+" : ""}${num(c.contribution_pct)} pp`);
        }
        break;
      case "market.turnover_hkd":
        out.push(`${e.advancers ?? 0} up / ${e.decliners ?? 0} down / ${e.unchanged ?? 0} unchanged`);
        break;
      case "southbound.net_inflow_hkd":
        for (const ch of ["SH", "SZ"]) {
          const c = (e.channels || {})[ch];
          if (c) out.push(`${ch} net ${hkd(c.net_hkd)} (buy ${hkd(c.buy_hkd)}, sell ${hkd(c.sell_hkd)})`);
        }
        break;
      default: break;
    }
    return out;
  }

  /* "value +2.03% ≥ threshold +2.00% (day)" */
  function versus(alert) {
    const window = alert.window && alert.window !== "day" ? ` over ${alert.window}` : "";
    return `${metricValue(alert.metric, alert.value)}${window} ${alert.op === ">=" ? "≥" : "≤"} ` +
      `threshold ${metricValue(alert.metric, alert.threshold)}`;
  }

  return { num, pct, hkd, axisHkd, signClass, clock, seconds, duration, evidence, versus, metricValue };
})();
