"""The box's view of the repository: TUF-verified metadata, nothing else trusted.

python-tuf's ngclient does the client workflow (root rotation, timestamp -> snapshot ->
targets, expiry, rollback and fast-forward protection, signature thresholds). This
module adds the transport (HTTP with retries, or a local directory for offline
bundles), maps TUF's exceptions to reasons an operator can act on, and turns the
verified targets into releases.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import httpx
from tuf.api import exceptions as tufx
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Updater

from runtime import __version__
from runtime.errors import HeadframeError
from runtime.fleet.releases import (
    PackRelease,
    Release,
    ReleaseError,
    parse_pack_releases,
    parse_releases,
)
from runtime.retry import backoff_delay

log = logging.getLogger(__name__)


class FleetError(HeadframeError):
    """An update step failed; ``reason`` is the short phrase for status and MQTT."""

    code = "fleet"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def describe_tuf_error(e: BaseException) -> str:
    """A reason an operator can act on, from a python-tuf exception."""
    if isinstance(e, tufx.ExpiredMetadataError):
        return f"metadata expired (re-sign the repository): {e}"
    if isinstance(e, tufx.EqualVersionNumberError):
        return f"metadata replayed: {e}"
    if isinstance(e, tufx.BadVersionNumberError):
        return f"metadata rollback refused (older than what this box has seen): {e}"
    if isinstance(e, tufx.UnsignedMetadataError):
        return f"bad or unknown signature: {e}"
    if isinstance(e, tufx.LengthOrHashMismatchError):
        return f"tampered or corrupt file (length or sha256 mismatch): {e}"
    if isinstance(e, tufx.DownloadLengthMismatchError):
        return f"metadata refused: larger than its size cap (read stopped there): {e}"
    if isinstance(e, tufx.DownloadHTTPError):
        return f"repository answered HTTP {e.status_code}: {e}"
    if isinstance(e, tufx.DownloadError):
        return f"network: {e.__cause__ or e}"
    if isinstance(e, tufx.RepositoryError):
        return f"repository metadata rejected: {e}"
    return f"{type(e).__name__}: {e}"


# What one read from the network or a file may hand over at most (httpx reads 64 KiB).
CHUNK_BYTES = 64 * 1024
# Opens a non-HTTP URL (file://, an offline bundle's member) for reading.
Opener = Callable[[str], IO[bytes]]


@dataclass
class FetchStats:
    """What a fetcher read, for the logs and the size-cap tests."""

    requests: int = 0
    body_bytes: int = 0


class StreamingFetcher(FetcherInterface):
    """A fetcher whose ``_fetch`` yields the body chunk by chunk, so that a size cap
    stops the read. python-tuf's ``download_bytes`` stops iterating at the cap but
    leaves closing the stream to the garbage collector; here the stream is closed at
    once, so a server sending an endless body is cut at the cap, not later."""

    def __init__(self) -> None:
        self.stats = FetchStats()

    def download_bytes(self, url: str, max_length: int) -> bytes:
        received = bytearray()
        chunks = self.fetch(url)
        try:
            for chunk in chunks:
                if len(received) + len(chunk) > max_length:
                    raise tufx.DownloadLengthMismatchError(
                        f"{url}: more than the {max_length} bytes allowed for it"
                    )
                received += chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return bytes(received)


class HttpFetcher(StreamingFetcher):
    """Metadata over HTTP(S): streamed, cut at the size cap, retried with back-off
    until the body starts (a body cut off midway fails this refresh; the next one
    starts again)."""

    def __init__(
        self, *, attempts: int = 6, base_s: float = 0.5, cap_s: float = 30.0, timeout_s: float = 30
    ) -> None:
        super().__init__()
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s
        # identity: the cap counts bytes on the wire, and no decompression bomb gets in.
        self.client = httpx.Client(
            timeout=timeout_s,
            headers={"User-Agent": f"headframe/{__version__}", "Accept-Encoding": "identity"},
        )

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._stream(url)

    def _stream(self, url: str) -> Iterator[bytes]:
        last: Exception | None = None
        for attempt in range(self.attempts):
            started = False
            try:
                with self.client.stream("GET", url) as r:
                    self.stats.requests += 1
                    if r.status_code == 200:
                        started = True
                        for chunk in r.iter_raw():
                            self.stats.body_bytes += len(chunk)
                            yield chunk
                        return
                    if 400 <= r.status_code < 500:
                        raise tufx.DownloadHTTPError(f"{url}: HTTP {r.status_code}", r.status_code)
                    last = tufx.DownloadHTTPError(f"{url}: HTTP {r.status_code}", r.status_code)
            except httpx.HTTPError as e:
                if started:  # part of the body is already handed over: no silent retry
                    raise tufx.DownloadError(f"{url}: cut off: {e}") from e
                last = e
            delay = backoff_delay(attempt, self.base_s, self.cap_s)
            log.debug("fetch %s failed (%s); retrying in %.2fs", url, last, delay)
            time.sleep(delay)
        assert last is not None
        if isinstance(last, tufx.DownloadError):
            raise last
        raise tufx.DownloadError(f"{url}: {last}") from last

    def close(self) -> None:
        self.client.close()


class LocalFetcher(StreamingFetcher):
    """file:// URLs: a local copy of a repository goes through the same verification.
    ``open`` is also how the downloader reads target files that are not on HTTP."""

    def open(self, url: str) -> IO[bytes]:
        path = Path(unquote(urlparse(url).path))
        try:
            return path.open("rb")
        except FileNotFoundError as e:
            raise tufx.DownloadHTTPError(f"{path}: not in the repository", 404) from e

    def _fetch(self, url: str) -> Iterator[bytes]:
        f = self.open(url)  # raises here, before iteration, for a missing file
        return self._chunks(f)

    def _chunks(self, f: IO[bytes]) -> Iterator[bytes]:
        with f:
            self.stats.requests += 1
            while chunk := f.read(CHUNK_BYTES):
                self.stats.body_bytes += len(chunk)
                yield chunk


class TrustedRepo:
    """One refresh of the repository's metadata, anchored in the box's trusted root.

    ``base_url`` holds ``metadata/`` and ``targets/`` (http(s):// or file://).
    ``metadata_dir`` keeps what was verified last, which is what makes replays of
    older metadata detectable.
    """

    def __init__(
        self,
        base_url: str,
        metadata_dir: Path,
        trusted_root: Path,
        fetcher: FetcherInterface | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.metadata_dir = Path(metadata_dir)
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        try:
            bootstrap = Path(trusted_root).read_bytes()
        except OSError as e:
            raise FleetError(f"{trusted_root}: cannot read the trusted root: {e}") from e
        if fetcher is None:
            fetcher = LocalFetcher() if self.base_url.startswith("file:") else HttpFetcher()
        self.fetcher = fetcher
        try:
            self.updater = Updater(
                str(self.metadata_dir),
                self.base_url + "metadata/",
                target_base_url=self.base_url + "targets/",
                fetcher=fetcher,
                bootstrap=bootstrap,
            )
        except (tufx.RepositoryError, ValueError) as e:
            raise FleetError(
                f"{trusted_root}: not a valid trusted root: {e}", describe_tuf_error(e)
            ) from e

    def refresh(self) -> dict[str, list[Release]]:
        """Verify the newest metadata; application -> releases (oldest first)."""
        try:
            self.updater.refresh()
        except (tufx.RepositoryError, tufx.DownloadError) as e:
            reason = describe_tuf_error(e)
            raise FleetError(f"metadata refresh failed: {reason}", reason) from e
        # ngclient has no listing API; the verified top-level targets are what we list.
        targets = self.updater._trusted_set.targets.targets
        try:
            return parse_releases(targets)
        except ReleaseError as e:
            raise FleetError(str(e), f"malformed release metadata: {e}") from e

    def packs(self) -> dict[str, list[PackRelease]]:
        """After ``refresh``: knowledge pack -> releases (oldest first)."""
        targets = self.updater._trusted_set.targets.targets
        try:
            return parse_pack_releases(targets)
        except ReleaseError as e:
            raise FleetError(str(e), f"malformed pack metadata: {e}") from e

    def close(self) -> None:
        if isinstance(self.fetcher, HttpFetcher):
            self.fetcher.close()

    def opener(self) -> Opener | None:
        """How the downloader reads target files when they are not on HTTP."""
        return self.fetcher.open if isinstance(self.fetcher, LocalFetcher) else None

    def target_url(self, target: TargetFile) -> str:
        # Consistent snapshots: the file is stored under its hash, as ngclient forms it.
        dirname, sep, basename = target.path.rpartition("/")
        if not self.updater._trusted_set.root.consistent_snapshot:
            return f"{self.base_url}targets/{target.path}"
        return f"{self.base_url}targets/{dirname}{sep}{target.hashes['sha256']}.{basename}"
