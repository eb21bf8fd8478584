"""A knowledge pack delivered to a box: query it as built, embed it again, or refuse it;
then its trial. The fleet (runtime.fleet.pack_sync) calls these; the rules live here.

``plan(pack, served, reembed=, reembed_with=)`` is pure and needs only the pack's
embedder identity, so the fleet decides from the signed metadata before downloading:

- the box serves the pack's embedder (runtime.knowledge.identity.verdict allows it):
  ``use``;
- it does not (another version, another model, none) and re-embedding is off (the
  default): ``refuse``, with the verdict's reason;
- re-embedding is on (``[fleet] reembed_packs``): ``reembed`` with ``reembed_with`` when
  set, else the pack's own application when the box serves another version of it, else
  the one embedding application the box serves; refused when it serves none, or several
  and none is named.

``await admit(service, name, vdir, manifest, plan)`` works on the staged copy: embeds it
again when the plan says so (runtime.knowledge.reembed), opens it as the library will
(counts checked), checks the embedder the service serves against it and the width of its
vectors, and asks its golden questions (runtime.knowledge.golden): the pack passes at a
recall@k at or above the floor its manifest names. It never raises for a bad pack: the
``Admission`` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from runtime.errors import HeadframeError, ModelNotFound
from runtime.knowledge.embedder import EmbedService, ServiceEmbedder
from runtime.knowledge.golden import load_golden, recall
from runtime.knowledge.identity import EmbedderIdentity, verdict
from runtime.knowledge.library import OpenPack, embedder_verdict
from runtime.knowledge.pack import GOLDEN, Manifest
from runtime.knowledge.reembed import reembed

log = logging.getLogger(__name__)

Action = Literal["use", "reembed", "refuse"]


class BoxService(EmbedService, Protocol):
    """What intake needs of runtime.service.InferenceService: its embedders and slots."""

    def slots(self) -> list[Any]: ...


@dataclass(frozen=True)
class Plan:
    action: Action
    app: str | None  # the embedding application that will query the pack
    reason: str


def served_embedders(service: BoxService, dimensions: int) -> list[EmbedderIdentity]:
    """The embedding applications the service serves now (``dimensions``: the pack's,
    which the trial checks against what the embedder really gives)."""
    return [EmbedderIdentity.of_slot(s, dimensions) for s in service.slots()
            if s.package.meta.task == "embedding"]  # fmt: skip


def plan(
    pack: EmbedderIdentity,
    served: Sequence[EmbedderIdentity],
    *,
    reembed: bool = False,
    reembed_with: str | None = None,
) -> Plan:
    """Use, re-embed or refuse a pack embedded by ``pack`` on a box serving ``served``."""
    same = next((s for s in served if s.app == pack.app), None)
    found = verdict(pack, same)
    if found.ok:
        return Plan("use", pack.app, found.reason)
    if not reembed:
        hint = (" (or set [fleet] reembed_packs = true to embed it again on this box)"
                if served else "")  # fmt: skip
        return Plan("refuse", None, found.reason + hint)
    apps = [s.app for s in served]
    if reembed_with:
        if reembed_with not in apps:
            return Plan("refuse", None, f"{found.reason}; [fleet] reembed_with names "
                        f"{reembed_with!r}, which this box does not serve")  # fmt: skip
        app = reembed_with
    elif same is not None:
        app = same.app
    elif len(apps) == 1:
        app = apps[0]
    else:
        which = f"several ({', '.join(sorted(apps))}); name one in [fleet] reembed_with" if apps \
            else "none"  # fmt: skip
        return Plan("refuse", None, f"{found.reason}; embedding applications served: {which}")
    return Plan("reembed", app, f"{found.reason}: embedding it again with {app}")


@dataclass(frozen=True)
class Admission:
    ok: bool
    reason: str
    manifest: Manifest
    recall_bp: int | None = None


async def admit(
    service: BoxService, name: str, vdir: Path, manifest: Manifest, decided: Plan
) -> Admission:
    """Re-embed when planned, open, check the embedder, ask the golden questions."""
    try:
        if decided.action == "refuse":
            return Admission(False, f"refused: {decided.reason}", manifest)
        if decided.action == "reembed":
            assert decided.app is not None
            done = await reembed(vdir, manifest, ServiceEmbedder(service, decided.app))
            manifest = done.manifest
            log.info("knowledge pack %s %s embedded again with %s (%d chunks in halves)",
                     name, manifest.version, manifest.embedder.describe(), done.halved)  # fmt: skip
        pack = OpenPack.open(name, vdir, manifest)
        found = embedder_verdict(service, manifest.embedder)
        if not found.ok:
            return Admission(False, f"refused: {found.reason}", manifest)
        embedder = ServiceEmbedder(service, manifest.embedder.app)
        width = int((await embedder.embed(["width"])).shape[1])
        if width != pack.vectors.dimensions:
            return Admission(False, f"refused: its vectors have {pack.vectors.dimensions} "
                             f"dimensions, {embedder.app} gives {width}", manifest)  # fmt: skip
        spec = manifest.golden
        if spec is None:
            return Admission(True, "opened; it has no golden questions", manifest)
        got = await recall(pack.text, pack.vectors, load_golden(vdir / GOLDEN), spec.k,
                           spec.mode, embedder.embed_query)  # fmt: skip
        if got.recall_bp < spec.recall_floor_bp:
            return Admission(False, f"golden {got.describe()}, below the floor "
                             f"{spec.recall_floor_bp} bp", manifest, got.recall_bp)  # fmt: skip
        return Admission(True, f"golden {got.describe()} >= {spec.recall_floor_bp} bp",
                         manifest, got.recall_bp)  # fmt: skip
    except ModelNotFound as e:
        return Admission(False, f"refused: {e.message}", manifest)
    except HeadframeError as e:
        return Admission(False, f"trial failed: {e.message}", manifest)
