"""Which embedder made a pack's vectors, and whether the box's embedder may query them.

Vectors are only comparable when the same model made them. A pack records the embedder's
identity (application, version, variant id, variant digest, dimensions); ``verdict``
is the one place that says whether the embedding application the box serves now may
query a pack:

- another application, another version or another width: refused, with the reason
  (the fleet's later slice re-embeds such a pack on the box or fetches a matching one);
- the same application and version through another variant (an int8 rung where the pack
  was built with fp32): allowed, and said so. Variants of one version are measured
  against the same source for fidelity, so their vectors agree to that fidelity; a pack
  that insists sets ``strict_variant`` and is refused instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runtime.catalog import Variant


def variant_digest(variant: Variant) -> str:
    """sha256 over the sorted sha256s of the variant's files (what calibration keys on)."""
    joined = "".join(sorted(f.sha256 for f in variant.meta.files))
    return hashlib.sha256(joined.encode()).hexdigest()


class EmbedderIdentity(BaseModel):
    """The embedding application that made (or would query) a pack's vectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    variant: str = Field(min_length=1, max_length=64)
    variant_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    dimensions: int = Field(ge=1, le=65536)
    strict_variant: bool = False

    @classmethod
    def of_slot(cls, slot: Any, dimensions: int) -> EmbedderIdentity:
        """The identity of what a service slot serves now (``ModelSlot``)."""
        return cls(
            app=slot.package.application,
            version=slot.package.version,
            variant=slot.variant.id,
            variant_digest=variant_digest(slot.variant),
            dimensions=dimensions,
        )

    def describe(self) -> str:
        return f"{self.app} {self.version} ({self.variant}, {self.dimensions} dimensions)"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def verdict(pack: EmbedderIdentity, serving: EmbedderIdentity | None) -> Verdict:
    """May ``serving`` (None: the box does not serve the pack's embedder) query ``pack``?"""
    if serving is None:
        return Verdict(
            False,
            f"the pack was embedded with {pack.describe()}, and the box does not serve "
            f"{pack.app!r}: add that embedding application, or rebuild the pack",
        )
    built = f"the pack was embedded with {pack.describe()}"
    if serving.app != pack.app:
        return Verdict(False, f"{built}; the box's embedder is {serving.describe()}")
    if serving.version != pack.version:
        return Verdict(
            False,
            f"{built}; the box serves {serving.app} {serving.version}: vectors of another "
            "version are not comparable (rebuild the pack with it)",
        )
    if serving.dimensions != pack.dimensions:
        return Verdict(
            False, f"{built}; the box's {serving.app} gives {serving.dimensions} dimensions"
        )
    if serving.variant_digest == pack.variant_digest:
        return Verdict(True, f"same embedder: {pack.describe()}")
    if pack.strict_variant:
        return Verdict(
            False,
            f"{built} and asks for that exact variant; the box serves {serving.variant}",
        )
    return Verdict(
        True,
        f"built with variant {pack.variant}, queried with {serving.variant} of the same "
        f"{pack.app} {pack.version}",
    )
