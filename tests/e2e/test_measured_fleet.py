"""The fleet downloads exactly the variant the daemon then serves: under an operator pin
and a site floor only the pinned one; without a pin the shortlist, measured on this box
by the trial, and the winner is kept with the lighter rungs that qualified here (with
the governor on, for it to step down to; with it off or ``keep_rungs = 0``, the winner
alone). Through the real agent and daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.box import PinStore
from runtime.catalog import Store, VariantMeta
from runtime.config import load_settings
from runtime.fleet.publish import publish
from runtime.fleet.wiring import box_chooser_and_loader, build_agent
from runtime.governor.ladder import memory_order
from tests.support.fleet_box import running_daemon, served_box_config, wait_for
from tests.support.fleet_repo import DEMO_APP, make_version, reshuffle_golden, write_box_config
from tests.support.static_server import StaticServer


@pytest.mark.slow
def test_the_fleet_downloads_exactly_what_the_daemon_serves(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    metas = {v.id: v.meta for v in Store(demo_store).load(DEMO_APP).variants}
    # A site floor that turns the least accurate variants down (from what the build measured).
    accuracies = sorted({m.accuracy_bp or 0 for m in metas.values()})
    if len(accuracies) < 2:
        pytest.skip("every demo variant measured the same accuracy on this machine")
    floor = accuracies[0] + 1
    qualifying = sorted((m for m in metas.values() if (m.accuracy_bp or 0) >= floor),
                        key=lambda m: m.bytes)  # fmt: skip
    pinned = qualifying[-1].variant  # the largest that qualifies: never the rule's choice
    publish(repo_dir, keys_dir, [demo_pkg])
    state = tmp_path / "box"
    site = f'[[applications]]\nname = "{DEMO_APP}"\naccuracy_floor_bp = {floor}\n'
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        sections=site, poll_interval_s=5,
    )  # fmt: skip
    PinStore(state / "pins.json").set(DEMO_APP, pinned, "cli")  # `models use`, offline
    log = tmp_path / "daemon.log"

    def served() -> dict[str, Any]:
        apps = httpx.get(f"{url}/status", timeout=10).json()["applications"]
        return next((a for a in apps if a["app"] == DEMO_APP), {})

    def on_disk(version: str) -> set[str]:
        return {p.name for p in (state / "store" / DEMO_APP / version / "variants").iterdir()}

    with running_daemon(cfg, log) as proc:
        wait_for(lambda: served().get("version") == "1.0.0", "v1 serving", proc, log)
        assert served()["variant"] == pinned
        assert on_disk("1.0.0") == {pinned}  # only the pinned variant came down
        # The pin cleared: the next release is measured here, the winner kept with the
        # lighter rungs that qualified (the governor is on by default).
        r = httpx.post(f"{url}/admin/models/{DEMO_APP}/select", json={"variant": "auto"})
        assert r.status_code == 200, r.text
        v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
        reshuffle_golden(v2)
        publish(repo_dir, keys_dir, [v2])
        wait_for(lambda: served().get("version") == "2.0.0", "v2 serving", proc, log, timeout=240)
        winner = served()["variant"]
        kept = on_disk("2.0.0")
        ranked = {c["variant"]: c for c in served()["selection"]["ranked"]}
        fleet = httpx.get(f"{url}/status").json()["fleet"]["apps"][DEMO_APP]
    assert fleet["variant"] == winner and (metas[winner].accuracy_bp or 0) >= floor
    # Beside the winner: the lighter candidates downloaded (the governor's memory order)
    # that qualify here, each measured on this box at or above the floor; nothing else.
    chooser = box_chooser_and_loader(load_settings(cfg))[0]  # the pin is cleared by now
    candidates = set(chooser(Store(demo_store).load(DEMO_APP).meta, list(metas.values()))[0])
    assert kept == {winner} | _lighter_qualifying(metas, candidates, winner, floor, 2)
    for rung in kept - {winner}:
        measured = ranked[rung]["measured"]
        assert measured is not None and (measured["quality_bp"] or 0) >= floor, ranked[rung]


def _fetched(server: StaticServer, version: str) -> set[str]:
    """The variants whose files the box downloaded for ``version``."""
    prefix = f"/targets/{DEMO_APP}/{version}/"  # then <variant>/<sha256>.<file>
    rests = [h.path[len(prefix) :] for h in server.log if h.path.startswith(prefix)]
    return {r.split("/")[0] for r in rests if "/" in r}


def _lighter_qualifying(
    metas: dict[str, VariantMeta], among: set[str], winner: str, floor: int, count: int
) -> set[str]:
    """The ``count`` nearest variants of ``among`` below ``winner`` in memory order whose
    accuracy (the build's, on this same machine) meets ``floor``."""
    below = [metas[v] for v in among if memory_order(metas[v]) < memory_order(metas[winner])]
    ok = sorted((m for m in below if (m.accuracy_bp or 0) >= floor), key=memory_order)
    return {m.variant for m in ok[-count:]} if count else set()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "rungs"),
    [("", 2), ("keep_rungs = 0\n", 0), ("[governor]\nenabled = false\n", 0)],
    ids=["governor-on", "keep-rungs-0", "governor-off"],
)
def test_the_fleet_keeps_lighter_rungs_only_for_the_governor(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path,
    settings: str, rungs: int,
) -> None:  # fmt: skip
    # A site whose rule picks the variant with the most bytes-per-memory (OpenVINO fp16:
    # fewest bytes, highest peak): with one candidate, the lighter rungs are the extra
    # the chooser adds for the governor.
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    metas = {v.id: v.meta for v in Store(demo_store).load(DEMO_APP).variants}
    publish(repo_dir, keys_dir, [demo_pkg])
    state = tmp_path / "box"
    cfg = write_box_config(
        tmp_path / "box.toml", state=state, url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json", candidates=1,
    )  # fmt: skip
    site = (
        f'[[applications]]\nname = "{DEMO_APP}"\naccuracy_floor_bp = 9700\nobjective = "smallest"\n'
    )
    text = cfg.read_text().replace("[fleet]", site + "[fleet]")
    if settings.startswith("["):
        text = text.replace("[fleet]", settings + "[fleet]")
    else:
        text += settings
    cfg.write_text(text)
    report = build_agent(load_settings(cfg)).sync_once()
    assert report.outcomes == {DEMO_APP: "updated"}, report
    agent = build_agent(load_settings(cfg), with_backends=False)
    winner = agent.status()["apps"][DEMO_APP]["variant"]
    kept = {v.id for v in Store(state / "store").load(DEMO_APP).variants}
    expected = _lighter_qualifying(metas, set(metas), winner, 9700, rungs)
    if rungs and not expected:
        pytest.skip(f"{winner} is already the lightest qualifying variant here (no OpenVINO)")
    # Downloaded: the winner and (governor on) the lighter rungs; kept: the same.
    assert _fetched(server, "1.0.0") == kept == {winner} | expected
