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
