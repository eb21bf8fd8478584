"""Resumable downloads of signed targets over a slow, flaky link.

Bytes go to ``<name>.partial`` and survive restarts: the next attempt asks for
``Range: bytes=<have>-``. A server that ignores the range (200 instead of 206) gets the
file from zero. Failures back off exponentially with jitter, capped; the attempt
counter resets whenever bytes arrived, so a link that drops every few seconds still
finishes. The signed length bounds everything: a server that sends more is cut off
(an endless-data attack), and the length and sha256 are checked against the signed
target before the file is handed on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
from tuf.api import exceptions as tufx
from tuf.api.metadata import TargetFile

from runtime import __version__
from runtime.fleet.tufclient import (
    FleetError,
    LocalFetcher,
    Opener,
    describe_tuf_error,
)
from runtime.retry import backoff_delay

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (target path, bytes done, bytes total)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_FSYNC_EVERY = 4 * 1024 * 1024


class _Retry(Exception):
    """A transient failure: back off and try again from what is on disk."""


@dataclass
class DownloadStats:
    """What came over the wire, for the flaky-link tests and the logs."""

    requests: int = 0
    body_bytes: int = 0
    restarts_from_zero: int = 0


class Downloader:
    """Fetches one target at a time into a directory of partial files."""

    def __init__(
        self,
        *,
        bandwidth_limit_bytes_s: int | None = None,
        max_failures: int = 8,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 60.0,
        timeout_s: float = 30.0,
        chunk_bytes: int = 64 * 1024,
    ) -> None:
        self.limit = bandwidth_limit_bytes_s
        self.max_failures = max_failures
        self.base_s = backoff_base_s
        self.cap_s = backoff_cap_s
        self.chunk = chunk_bytes if not self.limit else max(1024, min(chunk_bytes, self.limit // 8))
        self.stats = DownloadStats()
        self.stopping = threading.Event()  # set by the agent's stop(): end at the next chunk
        self.client = httpx.Client(
            timeout=timeout_s,
            headers={"User-Agent": f"headframe/{__version__}", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self.client.close()

    def fetch(
        self,
        url: str,
        target: TargetFile,
        partial: Path,
        progress: Progress | None = None,
        *,
        opener: Opener | None = None,
    ) -> Path:
        """Download ``url`` into ``partial`` until it holds the signed target; verify it.

        ``opener`` reads URLs that are not HTTP (an offline bundle's members; file://
        URLs get a plain file opener). Returns ``partial`` (verified). Raises FleetError
        with a reason naming the file when the server keeps failing or the bytes do not
        match the signed length and sha256 (the bad partial is deleted so the next try
        starts clean)."""
        if opener is None and url.startswith("file:"):
            opener = LocalFetcher().open
        partial.parent.mkdir(parents=True, exist_ok=True)
        failures = 0
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            if have > target.length:
                partial.unlink()
                have = 0
            if have == target.length:
                break
            if opener is not None:
                self._attempt_local(opener, url, target, partial, progress)
                continue
            try:
                got = self._attempt(url, target, partial, have, progress)
            except _Retry as e:
                got = e.args[1] if len(e.args) > 1 else 0
                failures = 0 if got > 0 else failures + 1
                if failures >= self.max_failures:
                    raise FleetError(
                        f"{target.path}: giving up after {failures} failed attempts: {e.args[0]}",
                        f"download failed: {e.args[0]}",
                    ) from e
                if self.stopping.is_set():
                    raise FleetError(f"{target.path}: stopped", "stopped") from e
                delay = backoff_delay(failures, self.base_s, self.cap_s)
                log.info(
                    "download of %s interrupted (%s); retrying in %.1fs",
                    target.path,
                    e.args[0],
                    delay,
                )
                self.stopping.wait(delay)
        self.verify(target, partial)
        return partial

    @staticmethod
    def verify(target: TargetFile, path: Path) -> None:
        try:
            with path.open("rb") as f:
                target.verify_length_and_hashes(f)
        except tufx.LengthOrHashMismatchError as e:
            path.unlink(missing_ok=True)
            reason = f"{target.path}: {describe_tuf_error(e)}"  # the operator wants the file
            raise FleetError(reason, reason) from e

    def _attempt_local(
        self, opener: Opener, url: str, target: TargetFile, partial: Path, progress: Progress | None
    ) -> int:
        """A file or an offline bundle's member: streamed with the same length cut-off."""
        try:
            src = opener(url)
        except tufx.DownloadHTTPError as e:
            raise FleetError(str(e), f"{target.path}: missing from the repository") from e
        got = 0
        with src, partial.open("wb") as fout:
            while chunk := src.read(self.chunk):
                if got + len(chunk) > target.length:
                    fout.truncate(0)
                    reason = f"{target.path}: tampered or corrupt file (longer than signed)"
                    raise FleetError(reason, reason)
                fout.write(chunk)
                got += len(chunk)
                if progress is not None:
                    progress(target.path, got, target.length)
            fout.flush()
            os.fsync(fout.fileno())
        if got < target.length:
            partial.unlink(missing_ok=True)
            reason = f"{target.path}: tampered or corrupt file (shorter than signed)"
            raise FleetError(reason, reason)
        return got

    def _attempt(
        self, url: str, target: TargetFile, partial: Path, have: int, progress: Progress | None
    ) -> int:
        headers = {"Range": f"bytes={have}-"} if have else {}
        received = 0
        self.stats.requests += 1
        try:
            with self.client.stream("GET", url, headers=headers) as r:
                if r.status_code == 206 and have:
                    m = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
                    if not m or int(m.group(1)) != have:
                        raise _Retry(f"server sent a range we did not ask for ({m and m[0]})")
                    mode = "ab"
                elif r.status_code == 200:
                    if have:
                        log.info("%s: server ignored the range; starting from zero", target.path)
                        self.stats.restarts_from_zero += 1
                    have, mode = 0, "wb"
                elif r.status_code == 416:
                    partial.unlink(missing_ok=True)
                    raise _Retry("server refused the range; starting from zero")
                elif r.status_code in (403, 404):
                    raise FleetError(
                        f"{url}: HTTP {r.status_code}",
                        f"target missing on the server (HTTP {r.status_code}): {target.path}",
                    )
                else:
                    raise _Retry(f"HTTP {r.status_code}")
                started = time.monotonic()
                since_sync = 0
                with partial.open(mode) as f:
                    for data in r.iter_raw():  # unbuffered: a cut loses nothing received
                        for i in range(0, len(data), self.chunk):
                            if self.stopping.is_set():
                                raise FleetError(f"{target.path}: stopped", "stopped")
                            chunk = data[i : i + self.chunk]
                            if have + received + len(chunk) > target.length:
                                f.truncate(0)
                                raise FleetError(
                                    f"{target.path}: server sent more than the signed "
                                    f"{target.length} bytes",
                                    f"{target.path}: tampered or corrupt file (longer than signed)",
                                )
                            f.write(chunk)
                            received += len(chunk)
                            self.stats.body_bytes += len(chunk)
                            since_sync += len(chunk)
                            if since_sync >= _FSYNC_EVERY:
                                f.flush()
                                os.fsync(f.fileno())
                                since_sync = 0
                            if self.limit:
                                # Reading slowly is what throttles the sender (TCP window).
                                ahead = received / self.limit - (time.monotonic() - started)
                                if ahead > 0:
                                    self.stopping.wait(ahead)
                            if progress is not None:
                                f.flush()
                                progress(target.path, have + received, target.length)
                    f.flush()
                    os.fsync(f.fileno())
        except httpx.HTTPError as e:
            raise _Retry(f"{type(e).__name__}: {e}", received) from e
        if have + received < target.length:
            raise _Retry("transfer cut short", received)
        return received


class Blobs(Protocol):
    """Where verified targets go (runtime.fleet.install.Installer)."""

    def partial_path(self, target: TargetFile) -> Path: ...

    def commit_blob(self, target: TargetFile, verified: Path) -> Path: ...


def fetch_verified(
    downloader: Downloader,
    blobs: Blobs,
    todo: Sequence[TargetFile],
    url_of: Callable[[TargetFile], str],
    opener: Opener | None,
    on_bytes: Callable[[int], None],
    before_verify: Callable[[], None],
) -> None:
    """Download every target of ``todo`` (resumable, one at a time; ``on_bytes`` gets the
    bytes done over all of them), then check each one's signed length and sha256 again
    and commit it to the blob store: what a model release and a knowledge pack share."""
    before = [0]  # bytes of the targets already fetched

    def tick(_path: str, done: int, _size: int) -> None:
        on_bytes(before[0] + done)

    for t in todo:
        downloader.fetch(url_of(t), t, blobs.partial_path(t), tick, opener=opener)
        before[0] += t.length
    before_verify()
    for t in todo:
        partial = blobs.partial_path(t)
        downloader.verify(t, partial)
        blobs.commit_blob(t, partial)
