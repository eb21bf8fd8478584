"""What the fleet reports: per application and per knowledge pack, what serves (the
store's pointers), what the agent is doing and why (its persisted state), the versions it
will never retry. ``headframe fleet status``, /status, /metrics and MQTT read these."""

from __future__ import annotations

from typing import Any

from runtime.catalog import Store
from runtime.errors import MetadataError
from runtime.fleet.install import Installer
from runtime.fleet.state import FleetState
from runtime.knowledge.pack import PackStore


def fleet_status(store: Store, state: FleetState) -> dict[str, Any]:
    """Per application: active, previous, pending, stage, reason (``fleet status``)."""
    snap = state.snapshot()
    installer = Installer(store)
    apps: dict[str, Any] = {}
    for app in sorted(set(store.applications()) | set(snap["apps"])):
        rec = snap["apps"].get(app, {})
        ptr = installer.pointer(app) if store.versions(app) else {"version": None, "previous": None}
        apps[app] = {
            "active": ptr["version"],
            "previous": ptr["previous"],
            "pending": rec.get("pending"),
            "variant": rec.get("variant"),
            "stage": rec.get("stage", "active" if ptr["version"] else "idle"),
            "reason": rec.get("reason", ""),
            "bytes_done": rec.get("bytes_done", 0),
            "bytes_total": rec.get("bytes_total", 0),
            "bad": rec.get("bad", {}),
        }
    return {"last_check": snap["last_check"], "last_error": snap["last_error"], "apps": apps}


def pack_status(packs: PackStore, state: FleetState) -> dict[str, Any]:
    snap = state.snapshot()
    out: dict[str, Any] = {}
    for name in sorted(set(packs.packs()) | set(snap["apps"])):
        rec = snap["apps"].get(name, {})
        try:
            ptr = packs.pointer(name)
        except MetadataError:
            ptr = {"version": None, "previous": None}
        out[name] = {
            "active": ptr["version"],
            "previous": ptr["previous"],
            "pending": rec.get("pending"),
            "stage": rec.get("stage", "active" if ptr["version"] else "idle"),
            "reason": rec.get("reason", ""),
            "bytes_done": rec.get("bytes_done", 0),
            "bytes_total": rec.get("bytes_total", 0),
            "bad": rec.get("bad", {}),
        }
    return out
