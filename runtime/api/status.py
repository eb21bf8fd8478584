"""The status page (GET /, server-rendered HTML, no external assets) and GET /status (JSON).

Both come from one document so they never disagree: the host, the matched device
profile and why, each application with its chosen variant, why the others were turned
down, and live rates and latencies. Extra sections (update state, MQTT) are callables
registered with ``ServerContext.add_section`` by the daemon.
"""

from __future__ import annotations

import html
import os
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runtime import __version__
from runtime.service import InferenceService

if TYPE_CHECKING:
    from runtime.api.context import ServerContext
    from runtime.box.description import BoxDescription


def _profile(box: BoxDescription) -> dict[str, Any] | None:
    match = box.match
    if match is None:
        return None
    profile = match.profile
    return {
        "name": profile.name,
        "description": profile.description,
        "reasons": list(match.reasons),
        "targets": [f"{t.backend}/{t.device}" for t in profile.targets],
        "candidates": [
            {"name": c.name, "matched": c.matched, "reasons": list(c.reasons)}
            for c in match.candidates
        ],
    }


def _host(box: BoxDescription) -> dict[str, Any]:
    host: dict[str, Any] = {"hostname": box.hostname}
    report = box.report
    if report is not None:
        host.update(
            arch=report.cpu.arch,
            cpu=report.cpu.model,
            cores=report.cpu.cores,
            memory_bytes=report.memory.total_bytes,
            accelerators=[f"{a.kind} {a.vendor} {a.model}" for a in report.accelerators],
        )
    return host


def status_document(service: InferenceService, context: ServerContext) -> dict[str, Any]:
    """The one JSON document behind both /status and the HTML page."""
    stats = service.stats.snapshot()
    apps = []
    for slot in sorted(service.slots(), key=lambda s: s.app):
        entry = slot.to_dict()  # state: "serving", or "parked (idle since ...)"
        entry["stats"] = stats.get(slot.app, {})
        apps.append(entry)
    for app, error in sorted(service.failures().items()):
        if not any(a["app"] == app for a in apps):
            apps.append(
                {"app": app, "state": "failed", "error": error, "stats": stats.get(app, {})}
            )
    for app in service.known_apps():
        if not any(a["app"] == app for a in apps):
            apps.append({"app": app, "state": "loading", "stats": {}})
    doc: dict[str, Any] = {
        "server": {
            "name": "headframe",
            "version": __version__,
            "pid": os.getpid(),
            "ready": service.is_ready(),
            "readiness": service.readiness,  # the rule behind "ready" (api.readiness)
            "started_at": context.started_at,
            "uptime_s": round(time.time() - context.started_at, 1),
        },
        "host": _host(context.box),
        "profile": _profile(context.box),
        "applications": apps,
    }
    for name, section in context.sections.items():
        try:
            doc[name] = section()
        except Exception as e:  # a broken section must not take the page down
            doc[name] = {"error": str(e)}
    return doc


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _app_html(a: dict[str, Any]) -> str:
    stats = a.get("stats") or {}
    head = f"<h2>{_e(a['app'])} <small>{_e(a.get('version', ''))}</small></h2>"
    parked = str(a["state"]).startswith("parked")  # idle-unloaded: ready, loads on use
    if a["state"] != "serving" and not parked:
        problem = f"{_e(a['state'])}: {_e(a.get('error'))}"
        return f'<section class="app">{head}<p class="bad">{problem}</p></section>'
    rows = []
    sel = a.get("selection") or {}
    chosen = sel.get("chosen") or {}
    why = chosen.get("reason") or sel.get("reason") or ("pinned" if a.get("pin") else "")
    rows.append(
        f'<tr class="chosen"><td>{_e(a["variant"])}</td><td>{_e(a["precision"])}</td>'
        f"<td>{_e(a['state'])} on {_e(a['backend'])}/{_e(a['device'])}</td>"
        f"<td>{_e(why)}</td></tr>"
    )
    for r in sel.get("ranked", [])[1:] if isinstance(sel.get("ranked"), list) else []:
        rows.append(
            f"<tr><td>{_e(r.get('variant'))}</td><td>{_e(r.get('precision'))}</td>"
            f"<td>fallback</td><td>{_e(r.get('reason'))}</td></tr>"
        )
    for r in sel.get("rejected", []) or []:
        rows.append(
            f"<tr class='rejected'><td>{_e(r.get('variant'))}</td><td></td><td>turned down</td>"
            f"<td>{_e(r.get('reason'))}</td></tr>"
        )
    p50, p95 = stats.get("p50_ms") or "-", stats.get("p95_ms") or "-"
    return (
        f'<section class="app">{head}'
        f'<p>variant <b class="variant">{_e(a["variant"])}</b> ({_e(a["format"])}, '
        f"{_e(a['precision'])}) on {_e(a['backend'])}/{_e(a['device'])}; "
        f"{_e(stats.get('rate_per_s', 0))} req/s over the last minute, "
        f"p50 {_e(p50)} ms, p95 {_e(p95)} ms, "
        f"{_e(stats.get('requests', 0))} requests, {_e(stats.get('errors', 0))} errors, "
        f"queue {_e(a.get('queue_depth', 0))}</p>"
        "<table><tr><th>variant</th><th>precision</th><th>state</th><th>why</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left}
.chosen{background:#e8f5e9}.rejected{color:#777}.bad{color:#b00020}.ok{color:#1b5e20}
small{color:#666;font-weight:normal}"""


def _fleet_html(fleet: dict[str, Any]) -> str:
    """The update agent's section (runtime.fleet.runner.FleetRunner.status)."""
    rows = []
    for app, a in fleet["apps"].items():
        stage_cls = {"failed": "bad", "active": "ok"}.get(a.get("stage", ""), "")
        progress = ""
        if a.get("stage") == "downloading" and a.get("bytes_total"):
            progress = f" {100 * a['bytes_done'] // a['bytes_total']}%"
        rows.append(
            f"<tr><td>{_e(app)}</td><td>{_e(a.get('active'))}</td><td>{_e(a.get('previous'))}"
            f"</td><td>{_e(a.get('pending'))}</td><td class='{stage_cls}'>"
            f"{_e(a.get('stage'))}{_e(progress)}</td><td>{_e(a.get('reason'))}</td></tr>"
        )
    err = fleet.get("last_error")
    note = f"<p class='bad'>last check failed: {_e(err)}</p>" if err else ""
    return (
        f"<h2>updates <small>node {_e(fleet.get('node_id'))}, channel "
        f"{_e(fleet.get('channel'))}</small></h2>{note}<table class='fleet'><tr><th>application"
        "</th><th>active</th><th>previous</th><th>pending</th><th>stage</th><th>reason</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def value_html(value: Any) -> str:
    """Any section's JSON value as HTML a person reads: a table of keys and values, a list
    of records as one table with a column per key, scalars as text."""
    if isinstance(value, dict):
        if not value:
            return "<p>none</p>"
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{value_html(v)}</td></tr>" for k, v in value.items()
        )
        return f"<table class='kv'>{rows}</table>"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            head = "".join(f"<th>{_e(c)}</th>" for c in columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{value_html(row.get(c))}</td>" for c in columns) + "</tr>"
                for row in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        return ", ".join(value_html(v) for v in value) if value else "none"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _e(value)


def render_html(doc: dict[str, Any]) -> str:
    server, host, profile = doc["server"], doc["host"], doc.get("profile")
    ready = (
        '<span class="ok">ready</span>' if server["ready"] else '<span class="bad">not ready</span>'
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='5'><title>headframe on ",
        _e(host.get("hostname")),
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>headframe <small>{_e(server['version'])}</small> on ",
        f"<span class='host'>{_e(host.get('hostname'))}</span>: {ready}</h1>",
    ]
    if "cpu" in host:
        accel = ", ".join(host.get("accelerators") or []) or "no accelerators"
        parts.append(
            f"<p>{_e(host['arch'])}, {_e(host['cpu'])}, {_e(host['cores'])} CPUs, "
            f"{_e(round(host['memory_bytes'] / 2**30, 1))} GiB; {_e(accel)}</p>"
        )
    if profile:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in profile["reasons"])
        parts.append(
            f"<h2>profile <span class='profile'>{_e(profile['name'])}</span></h2>"
            f"<p>{_e(profile['description'])}; tries {_e(', '.join(profile['targets']))}</p>"
            f"<ul>{reasons}</ul>"
        )
    parts.extend(_app_html(a) for a in doc["applications"])
    if not doc["applications"]:
        parts.append("<p>No applications are configured or in the store.</p>")
    for key, value in doc.items():
        if key == "fleet" and isinstance(value, dict) and "apps" in value:
            parts.append(_fleet_html(value))
        elif key not in ("server", "host", "profile", "applications"):
            parts.append(f"<h2>{_e(key)}</h2>{value_html(value)}")
    parts.append(f"<p><small>up {_e(server['uptime_s'])} s, pid {_e(server['pid'])}; ")
    parts.append("<a href='/status'>JSON</a>, <a href='/metrics'>metrics</a></small></p>")
    parts.append("</body></html>")
    return "".join(parts)


def router(service: InferenceService, context: ServerContext) -> APIRouter:
    api = APIRouter(tags=["status"])

    @api.get("/status", summary="Server, profile and applications as JSON")
    async def status_json() -> dict[str, Any]:
        return status_document(service, context)

    @api.get("/", summary="Status page", response_class=HTMLResponse)
    async def status_page() -> HTMLResponse:
        return HTMLResponse(render_html(status_document(service, context)))

    return api
