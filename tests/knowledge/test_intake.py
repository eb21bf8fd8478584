"""The one rule on what a box does with a delivered pack, from its embedder identity alone
(runtime.knowledge.intake.plan): use it, embed it again (only when allowed), or refuse it
with a reason an operator can act on."""

from __future__ import annotations

from runtime.knowledge.identity import EmbedderIdentity
from runtime.knowledge.intake import plan


def ident(app: str = "minilm", version: str = "1.0.0", variant: str = "fp32",
          digest: str = "a") -> EmbedderIdentity:  # fmt: skip
    return EmbedderIdentity(app=app, version=version, variant=variant,
                            variant_digest=digest * 64, dimensions=384)  # fmt: skip


PACK = ident()


def test_the_same_embedder_or_another_variant_of_it_is_used() -> None:
    assert plan(PACK, [ident()]).action == "use"
    other_variant = plan(PACK, [ident(variant="int8", digest="b"), ident("e5")])
    assert other_variant.action == "use" and other_variant.app == "minilm"
    assert "queried with int8" in other_variant.reason


def test_by_default_a_differing_embedder_is_refused_with_the_reason() -> None:
    newer = plan(PACK, [ident(version="2.0.0")])
    assert newer.action == "refuse" and newer.app is None
    assert "serves minilm 2.0.0" in newer.reason and "reembed_packs = true" in newer.reason
    absent = plan(PACK, [])
    assert absent.action == "refuse" and "does not serve 'minilm'" in absent.reason
    assert "reembed_packs" not in absent.reason  # nothing here could embed it


def test_re_embedding_picks_the_embedder_it_can_name() -> None:
    same_app = plan(PACK, [ident(version="2.0.0"), ident("e5")], reembed=True)
    assert (same_app.action, same_app.app) == ("reembed", "minilm")
    only_one = plan(PACK, [ident("e5")], reembed=True)
    assert (only_one.action, only_one.app) == ("reembed", "e5")
    named = plan(PACK, [ident("e5"), ident("bge")], reembed=True, reembed_with="bge")
    assert (named.action, named.app) == ("reembed", "bge")
    several = plan(PACK, [ident("e5"), ident("bge")], reembed=True)
    assert several.action == "refuse" and "several (bge, e5)" in several.reason
    none = plan(PACK, [], reembed=True)
    assert none.action == "refuse" and "served: none" in none.reason
    missing = plan(PACK, [ident("e5")], reembed=True, reembed_with="bge")
    assert missing.action == "refuse" and "reembed_with names 'bge'" in missing.reason
