"""The polling mode's renderers: what assets/swarmbot.js computes in the browser from the
stores, computed in Python from the coordinator's view (same output order and text)."""

from __future__ import annotations

import datetime
import html
from typing import Any, Dict, List, Optional, Tuple

MARK = {"blocked": "! ", "done": "✓ ", "queued": "+ ", "burst": "# "}
def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


TITLES = {"queued": "Queued", "research": "Research", "code": "Code", "review": "Review", "test": "Test", "done": "Done"}


def agents(view: Dict[str, Dict[str, Any]], order: List[str]) -> str:
    rows = []
    for aid in order:
        a = view.get(aid, {})
        p = a.get("progress") or 0
        probe = a.get("probe")
        rows.append(
            f'<tr data-agent="{esc(aid)}" data-status="{esc(a.get("status"))}" data-ts="{esc(a.get("ts"))}" '
            f'data-probe="{esc(probe)}"><td class="agent-id">{esc(aid)}</td><td>{esc(a.get("role"))}</td>'
            f'<td class="status">{esc(a.get("status"))}</td><td class="mono">{esc(a.get("task") or "—")}</td>'
            f'<td class="progress" style="background: linear-gradient(90deg, #dbeafe {p}%, transparent {p}%)">{p}%</td>'
            f'<td class="num">{esc(a.get("done") or 0)}</td><td class="note">{esc(a.get("note"))}</td></tr>'
        )
    return (
        '<table class="agents-table"><thead><tr><th>Agent</th><th>Role</th><th>Status</th><th>Task</th>'
        "<th>Progress</th><th>Done</th><th>Doing</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def board(tasks: Dict[str, Dict[str, Any]], columns: List[str]) -> str:
    cols: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {c: [] for c in columns}
    for tid, t in tasks.items():
        if t["stage"] in cols:
            cols[t["stage"]].append((tid, t))
    out = []
    for key in columns:
        items = cols[key]
        if key == "done":
            items.sort(key=lambda it: -(it[1].get("finished") or 0))
        else:
            items.sort(key=lambda it: it[1]["created"])
        cards = []
        for tid, t in items[:8]:
            who = esc(t["agent"]) if t["agent"] else ("done" if key == "done" else "<em>waiting</em>")
            cards.append(f'<div class="task" data-task="{esc(tid)}"><b>{esc(tid)}</b> · {who}<div class="task-title">{esc(t["title"])}</div></div>')
        if len(items) > 8:
            cards.append(f'<div class="more">+{len(items) - 8} more</div>')
        out.append(f'<div class="column"><h4>{TITLES[key]} ({len(items)})</h4>{"".join(cards)}</div>')
    return '<div class="board">' + "".join(out) + "</div>"


def _clock(ms: Optional[float]) -> str:
    if not ms:
        return ""
    d = datetime.datetime.fromtimestamp(ms / 1000)
    return d.strftime("%H:%M:%S.") + f"{d.microsecond // 1000:03d}"


def _pad(text: str, n: int) -> str:
    return text[: n - 1] + " " if len(text) >= n else text + " " * (n - len(text))


def activity(entries: List[Dict[str, Any]]) -> str:
    lines = []
    for d in reversed(entries[-200:]):
        lines.append(_pad(_clock(d.get("t")), 14) + MARK.get(d.get("kind", ""), "  ") + _pad(d.get("agent") or "coordinator", 14) + str(d.get("text", "")))
    return "\n".join(lines)


def _fig(traces: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "data": traces,
        "layout": {
            "height": 170,
            "margin": {"l": 40, "r": 10, "t": 6, "b": 28},
            "showlegend": len(traces) > 1,
            "legend": {"orientation": "h", "x": 0, "y": 1.15, "font": {"size": 10}},
            "xaxis": {"type": "date", "tickformat": "%H:%M:%S", "showgrid": False},
            "yaxis": {"rangemode": "tozero", "title": {"text": ""}, "showgrid": False, "zeroline": True, "zerolinecolor": "#e5e7eb"},
            "hovermode": False,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"size": 11},
            "uirevision": "keep",
        },
    }


def _line(x: List[str], y: List[Any], name: str, color: str) -> Dict[str, Any]:
    return {"x": x, "y": y, "name": name, "type": "scatter", "mode": "lines", "line": {"color": color, "width": 2}}


def graphs(samples: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    x = [datetime.datetime.fromtimestamp(m["t"] / 1000).isoformat(timespec="milliseconds") for m in samples]

    def col(k: str) -> List[Any]:
        return [m.get(k) for m in samples]

    return [
        _fig([_line(x, col("eps"), "events/s", "#6366f1")]),
        _fig([_line(x, col("tpm"), "tasks/min", "#16a34a")]),
        _fig([_line(x, col("queue"), "queue", "#f59e0b"), _line(x, col("busy"), "busy agents", "#0ea5e9")]),
        _fig([_line(x, col("lat50"), "p50", "#8b5cf6"), _line(x, col("lat95"), "p95", "#ef4444")]),
    ]
