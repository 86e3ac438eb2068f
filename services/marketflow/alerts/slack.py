"""Slack Block Kit messages for alerts (pure): one alert, or a digest of a burst."""

from __future__ import annotations

from typing import Any

from marketflow.core.timeutil import HKT

MAX_BLOCKS = 50
SEVERITY_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":bell:"}


def _hkt(ts: str) -> str:
    import datetime as dt

    return dt.datetime.fromisoformat(ts).astimezone(HKT).strftime("%H:%M:%S HKT %d %b %Y")


def _number(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"


def evidence_table(evidence: dict[str, Any], limit: int = 8) -> str:
    """Evidence as a compact fixed-width table for a code block."""
    rows: list[tuple[str, str]] = []
    for contributor in evidence.get("top_contributors", [])[:5]:
        rows.append((f"{contributor['symbol']} {contributor['name']}"[:24],
                     f"{contributor['change_pct']:+.2f}%  ({contributor['contribution_pct']:+.2f}"
                     f" pts)"))
    for channel, flows in evidence.get("channels", {}).items():
        rows.append((f"southbound {channel}", f"net {_number(flows['net_hkd'])}  buy "
                                              f"{_number(flows['buy_hkd'])}"))
    for key in ("level", "prev_close", "change_points", "last", "turnover_hkd", "volume",
                "advancers", "decliners"):
        if key in evidence and isinstance(evidence[key], int | float):
            rows.append((key, _number(evidence[key])))
    if evidence.get("sectors"):
        rows.append(("sectors", ", ".join(evidence["sectors"])[:40]))
    rows = rows[:limit]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def alert_message(alert: dict[str, Any]) -> dict[str, Any]:
    emoji = SEVERITY_EMOJI.get(alert["severity"], ":bell:")
    headline = f"{emoji} {alert['rule_id']}: {alert['subject']}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert["message"][:2900]},
         "fields": [
             {"type": "mrkdwn", "text": f"*Value*\n{_number(alert['value'])} "
                                        f"{alert['op']} {_number(alert['threshold'])}"},
             {"type": "mrkdwn", "text": f"*When*\n{_hkt(alert['ts'])}"},
             {"type": "mrkdwn", "text": f"*Metric*\n{alert['metric']} ({alert['window']})"},
             {"type": "mrkdwn", "text": f"*Severity*\n{alert['severity']}"},
         ]},
    ]
    table = evidence_table(alert.get("evidence") or {})
    if table:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": f"```{table[:2800]}```"}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"alert `{alert['alert_id']}` · marketflow"}]})
    return {"text": f"{alert['subject']}: {alert['message']}", "blocks": blocks}


def digest_message(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """A burst folded into one message: a header, one line per alert, at most 50 blocks."""
    if len(alerts) == 1:
        return alert_message(alerts[0])
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{len(alerts)} alerts"}}]
    room = MAX_BLOCKS - 2  # header + a possible "+N more"
    shown = alerts[:room] if len(alerts) > MAX_BLOCKS - 1 else alerts
    for alert in shown:
        emoji = SEVERITY_EMOJI.get(alert["severity"], ":bell:")
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": f"{emoji} *{alert['subject']}* {alert['message'][:200]} "
                    f"_({_hkt(alert['ts'])[:8]})_ `{alert['alert_id']}`"}})
    if len(shown) < len(alerts):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"+{len(alerts) - len(shown)} more"}]})
    text = "; ".join(f"{a['subject']}: {a['message']}" for a in alerts[:10])
    return {"text": f"{len(alerts)} alerts: {text}"[:3000], "blocks": blocks}
