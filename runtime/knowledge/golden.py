"""A pack's golden questions: what its trial asks, and which chunks must come back.

``knowledge build --golden FILE`` reads a JSON list of questions, each naming what
answers it, either by chunk id (``headframe knowledge search --json`` shows them) or by
where it is written (a source file, and optionally its page)::

    [{"question": "What torque for the main bearing bolts?", "source": "manual.pdf", "page": 2},
     {"question": "What does E-4711 mean?", "chunks": [14, 15]}]

The builder resolves each to the chunk ids of the pack it builds (``resolve``: a source
and page that hold no chunk, or an unknown id, is an error naming the question), scores
the pack (``recall``) and stores the resolved list as ``golden.json`` in the pack, with
``k``, the floor and the measured recall in the manifest (runtime.knowledge.pack
``GoldenSpec``). The fleet's trial on a box (runtime.knowledge.intake) asks the same
questions of the delivered pack, with the box's embedder, and refuses it below the floor.

recall@k: the share of questions with at least one expected chunk among their first k
results, in basis points (an integer: it goes into signed metadata).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.errors import InvalidInput, MetadataError
from runtime.knowledge.search import Mode, SearchRequest, search_pack
from runtime.knowledge.textindex import TextIndex
from runtime.knowledge.vectorindex import VectorIndex

MAX_QUESTIONS = 1000
MAX_FILE_BYTES = 4 * 1024 * 1024
MISSES_SHOWN = 3

EmbedQuery = Callable[[str], Awaitable[np.ndarray]]


class Asked(BaseModel):
    """One question of the user's file: expected chunk ids, or a source (and page)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    chunks: list[int] | None = Field(default=None, min_length=1, max_length=256)
    source: str | None = Field(default=None, min_length=1)
    page: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_way(self) -> Asked:
        if (self.chunks is None) == (self.source is None):
            raise ValueError("name the expected chunks or their source (and page), not both")
        if self.page is not None and self.source is None:
            raise ValueError("a page needs its source")
        return self


@dataclass(frozen=True)
class Question:
    """A golden question resolved against one pack: the chunk ids that answer it."""

    question: str
    chunks: tuple[int, ...]
    expect: str  # what the user's file said, for the reasons

    def to_json(self) -> dict[str, object]:
        return {"question": self.question, "chunks": list(self.chunks), "expect": self.expect}


def read_questions(path: Path) -> list[Asked]:
    """The user's golden file; InvalidInput naming the file and the question."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"--golden {path}: larger than {MAX_FILE_BYTES} bytes")
        data = json.loads(path.read_text())
    except OSError as e:
        raise InvalidInput(f"--golden {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise InvalidInput(f"--golden {path}: not JSON: {e}") from e
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"--golden {path}: a JSON list of questions")
    if len(data) > MAX_QUESTIONS:
        raise InvalidInput(f"--golden {path}: more than {MAX_QUESTIONS} questions")
    asked = []
    for i, item in enumerate(data):
        try:
            asked.append(Asked.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            why = str(first.get("msg", "")).removeprefix("Value error, ")
            raise InvalidInput(f"--golden {path}: question {i + 1}: "
                               + (f"{field}: {why}" if field else why)) from e  # fmt: skip
    return asked


def resolve(asked: Sequence[Asked], text: TextIndex, where: str = "--golden") -> list[Question]:
    """Each question's expected chunk ids in this pack; InvalidInput for one that names
    no chunk of it."""
    out = []
    for i, a in enumerate(asked, start=1):
        if a.chunks is not None:
            known = text.rows(a.chunks)
            unknown = [c for c in a.chunks if c not in known]
            if unknown:
                raise InvalidInput(f"{where}: question {i}: no chunk {unknown} in the pack")
            out.append(Question(a.question, tuple(a.chunks), f"chunks {a.chunks}"))
            continue
        if a.page is None:
            ids = text.ids_where("source = ?", [a.source])
            expect = str(a.source)
        else:
            ids = text.ids_where("source = ? AND page = ?", [a.source, a.page])
            expect = f"{a.source} page {a.page}"
        if not ids:
            raise InvalidInput(f"{where}: question {i}: no chunk of the pack is from {expect}")
        out.append(Question(a.question, tuple(sorted(ids)), expect))
    return out


def write_golden(path: Path, questions: Sequence[Question]) -> None:
    path.write_text(json.dumps([q.to_json() for q in questions], indent=1) + "\n")


def load_golden(path: Path) -> list[Question]:
    """The resolved questions a pack carries (``golden.json``); MetadataError if malformed."""
    try:
        data = json.loads(Path(path).read_text())
        return [Question(str(d["question"]), tuple(int(c) for c in d["chunks"]),
                         str(d.get("expect", ""))) for d in data]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MetadataError(f"{path}: not a pack's golden questions: {e}") from e


@dataclass(frozen=True)
class Recall:
    recall_bp: int
    found: int
    asked: int
    k: int
    misses: tuple[str, ...]  # the first questions that found nothing expected

    def describe(self) -> str:
        text = f"recall@{self.k} {self.recall_bp} bp ({self.found} of {self.asked} questions)"
        if self.misses:
            text += "; missed: " + "; ".join(self.misses)
        return text


async def recall(
    text: TextIndex,
    vectors: VectorIndex,
    questions: Sequence[Question],
    k: int,
    mode: Mode,
    embed: EmbedQuery | None,
) -> Recall:
    """Ask every question of the pack (``embed``: the query's vector, None for text-only
    ranking) and count those whose first ``k`` results hold an expected chunk."""
    found = 0
    misses: list[str] = []
    for q in questions:
        request = SearchRequest(query=q.question, max_num_results=k, mode=mode)
        vecs = [await embed(q.question)] if mode != "text" and embed is not None else []
        hits = await asyncio.to_thread(search_pack, text, vectors, [q.question], vecs, request)
        if any(h.row.id in q.chunks for h in hits):
            found += 1
        elif len(misses) < MISSES_SHOWN:
            misses.append(f"{q.question!r} (expected {q.expect})")
    asked = len(questions)
    return Recall(found * 10_000 // max(asked, 1), found, asked, k, tuple(misses))
