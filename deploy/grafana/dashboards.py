"""Grafana dashboards as code: `python deploy/grafana/dashboards.py` writes
deploy/grafana/dashboards/*.json (`make dashboards`; a test fails when they are stale).

Every query here is run on a real Prometheus fed by a real worker by
tests/integration/test_prometheus.py, and must return data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           fmt: str = "time_series") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
            "instant": instant, "range": not instant, "format": fmt}


def panel(title: str, kind: str, targets: list[dict[str, Any]], grid: tuple[int, int, int, int],
          unit: str = "short", description: str = "", **extra: Any) -> dict[str, Any]:
    x, y, w, h = grid
    out: dict[str, Any] = {
        "title": title, "type": kind, "datasource": DATASOURCE, "description": description,
        "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    for key, value in extra.items():
        if key == "defaults":
            out["fieldConfig"]["defaults"].update(value)
        else:
            out[key] = value
    return out


def query_variable(name: str, label: str, metric: str, multi: bool = False,
                   default: str = "") -> dict[str, Any]:
    query = f"label_values({metric}, {label})"
    current = ({"text": "All", "value": "$__all"} if multi
               else {"text": default, "value": default})
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "multi": multi, "includeAll": multi, "allValue": ".*" if multi else None,
            "current": current, "sort": 1}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]],
              variables: list[dict[str, Any]] = (), annotations: list[dict[str, Any]] = (),
              ) -> dict[str, Any]:
    for number, each in enumerate(panels, 1):
        each["id"] = number
    return {
        "uid": uid, "title": title, "tags": ["marketflow"], "timezone": "Asia/Hong_Kong",
        "schemaVersion": 39, "version": 1, "editable": False, "refresh": "5s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": [
            {"builtIn": 1, "name": "Annotations & Alerts", "type": "dashboard", "enable": True,
             "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
             "datasource": {"type": "grafana", "uid": "-- Grafana --"}},
            *annotations]},
        "panels": panels,
    }


def market_overview() -> dict[str, Any]:
    southbound_line = {"thresholdsStyle": {"mode": "line+area"}}
    panels = [
        panel("Index change", "timeseries",
              [target("max by (index) (marketflow_index_change_ratio)", "{{index}}")],
              (0, 0, 12, 8), "percentunit", "Change vs previous close"),
        panel("Index level", "stat",
              [target("max by (index) (marketflow_index_level)", "{{index}}", instant=True)],
              (12, 0, 6, 8), "none"),
        panel("Market session", "stat",
              [target("marketflow:market_session_phase == 1", "{{phase}}", "A", instant=True),
               target("max by (kind) (marketflow_market_day_kind) == 1", "{{kind}}", "B",
                      instant=True)],
              (18, 0, 6, 8), "none", "Hong Kong session phase (XHKG calendar)",
              options={"textMode": "name", "colorMode": "none"}),
        panel("Sector gains ($window)", "bargauge",
              [target('max by (sector) (marketflow_sector_gain_ratio{window="$window", '
                      'sector=~"$sector"})', "{{sector}}", instant=True)],
              (0, 8, 12, 10), "percentunit", "Free-float cap weighted, by window",
              options={"orientation": "horizontal", "displayMode": "gradient"}),
        panel("Sector gains through the day ($window)", "timeseries",
              [target('max by (sector) (marketflow_sector_gain_ratio{window="$window", '
                      'sector=~"$sector"})', "{{sector}}")],
              (12, 8, 12, 10), "percentunit"),
        panel("Top movers", "table",
              [target("topk(10, max by (symbol, name) (marketflow_stock_change_ratio))",
                      ref="A", instant=True, fmt="table"),
               target("bottomk(10, max by (symbol, name) (marketflow_stock_change_ratio))",
                      ref="B", instant=True, fmt="table")],
              (0, 18, 12, 12), "percentunit", "Ten best and ten worst stocks of the day",
              transformations=[{"id": "merge", "options": {}},
                               {"id": "organize", "options": {
                                   "excludeByName": {"Time": True},
                                   "renameByName": {"Value": "change"}}}],
              options={"sortBy": [{"displayName": "change", "desc": True}]}),
        panel("Turnover through the day", "timeseries",
              [target("max(marketflow_market_turnover_hkd)", "market", "A"),
               target('max by (sector) (marketflow_sector_turnover_hkd{sector=~"$sector"})',
                      "{{sector}}", "B")],
              (12, 18, 12, 12), "currencyHKD"),
        panel("Southbound net inflow (cumulative)", "timeseries",
              [target("max by (channel) (marketflow_southbound_net_inflow_hkd)", "{{channel}}")],
              (0, 30, 12, 10), "currencyHKD", "By channel; the line is HK$8bn",
              defaults={"custom": southbound_line, "thresholds": {"mode": "absolute", "steps": [
                  {"color": "transparent", "value": None}, {"color": "red", "value": 8e9}]}}),
        panel("Alerts fired (per minute)", "timeseries",
              [target("marketflow:alerts:increase1m", "{{rule}}")],
              (12, 30, 12, 10), "short", drawStyle="bars"),
    ]
    variables = [
        query_variable("window", "window", "marketflow_sector_gain_ratio", default="day"),
        query_variable("sector", "sector", "marketflow_sector_gain_ratio", multi=True),
    ]
    annotations = [{
        "name": "Alerts", "enable": True, "iconColor": "red", "datasource": DATASOURCE,
        "expr": 'ALERTS{alertstate="firing", kind="market"}', "step": "15s",
        "titleFormat": "{{alertname}}", "textFormat": "{{index}}{{sector}}{{channel}}{{name}}",
        "useValueForTime": False,
    }]
    return dashboard("marketflow-market", "marketflow — Market overview", panels, variables,
                     annotations)


def pipeline_health() -> dict[str, Any]:
    heatmap = {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1}
    panels = [
        panel("Ticks/s per worker and partition", "timeseries",
              [target("marketflow:ticks:rate1m_by_instance_partition",
                      "{{instance}} p{{partition}}")], (0, 0, 12, 8), "short"),
        panel("Ticks/s (all workers)", "stat", [target("marketflow:ticks:rate1m", "ticks/s")],
              (12, 0, 6, 8), "short"),
        panel("Workers up and ready", "stat",
              [target('up{job=~"marketflow-.*"}', "{{job}} {{instance}} up", "A", instant=True),
               target("marketflow_worker_ready", "{{instance}} ready", "B", instant=True)],
              (18, 0, 6, 8), "none"),
        panel("Tick-to-alert latency", "heatmap",
              [target("marketflow:tick_to_alert_seconds_bucket:rate1m", "{{le}}",
                      fmt="heatmap")], (0, 8, 12, 9), "s", options=heatmap),
        panel("md.ticks record processing", "heatmap",
              [target("marketflow:batch_process_seconds_bucket:rate1m", "{{le}}",
                      fmt="heatmap")], (12, 8, 12, 9), "s", options=heatmap),
        panel("Latency quantiles", "timeseries",
              [target("marketflow:tick_to_alert_seconds:p99_5m", "tick-to-alert p99", "A"),
               target("marketflow:tick_to_alert_seconds:p50_5m", "tick-to-alert p50", "B"),
               target("marketflow:frame_close_seconds:p99_5m", "frame close p99", "C"),
               target("marketflow:batch_process_seconds:p99_5m", "record p99", "D")],
              (0, 17, 12, 8), "s"),
        panel("Consumer lag", "timeseries",
              [target("marketflow:consumer_lag_records:sum", "{{topic}}", "A"),
               target("max by (topic, partition) (marketflow_consumer_lag_records)",
                      "{{topic}}[{{partition}}]", "B")],
              (12, 17, 12, 8), "short", "Records behind the end of each partition"),
        panel("Frames waiting to close", "timeseries",
              [target("max by (instance) (marketflow_frames_waiting)", "{{instance}} waiting",
                      "A"),
               target("max by (instance) (marketflow_frame_wait_seconds)",
                      "{{instance}} oldest (s)", "B")],
              (0, 25, 12, 8), "short"),
        panel("Partitions assigned", "timeseries",
              [target("max by (instance, topic) (marketflow_partitions_assigned)",
                      "{{instance}} {{topic}}")], (12, 25, 12, 8), "short"),
        panel("Dead letters by reason", "timeseries",
              [target("marketflow:records_rejected:rate5m", "{{reason}}")],
              (0, 33, 12, 8), "short", "Records/s rejected to mf.deadletter"),
        panel("Slack deliveries", "timeseries",
              [target("marketflow:slack_posts:rate5m", "{{route}} {{outcome}}", "A"),
               target("histogram_quantile(0.99, sum by (le) "
                      "(rate(marketflow_slack_post_seconds_bucket[5m])))", "post p99 (s)", "B")],
              (12, 33, 12, 8), "short", "Webhook posts/s by route and outcome; post time p99"),
    ]
    return dashboard("marketflow-pipeline", "marketflow — Pipeline health", panels)


DASHBOARDS = {"market-overview.json": market_overview, "pipeline-health.json": pipeline_health}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
