"""Pictures through the service itself: with micro-batching on (pictures decoded before
they join a batch), a bad picture failing alone, and the worker's bound holding."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import load_package
from runtime.config import ApplicationSettings
from runtime.demo.pictures import IMAGE_CONTRACT
from runtime.errors import InvalidImage, InvalidInput
from runtime.service import Answer, InferenceService
from tests.support.image_models import digit_picture, reference_tensor, write_picture_package
from tests.support.loaders import ort_loader

APP = "part-id-reader"
DIGITS = np.random.default_rng(3).integers(0, 17, (6, 64)).astype(np.float32)


def _bytes(*pictures: bytes) -> np.ndarray:
    arr = np.empty(len(pictures), dtype=object)
    arr[:] = pictures
    return arr


@pytest.mark.parametrize("max_batch", [1, 8], ids=["no-batching", "batching"])
def test_pictures_in_concurrent_requests_equal_their_tensors(
    tmp_path: Path, max_batch: int
) -> None:
    package = write_picture_package(tmp_path / "store")
    pictures = [digit_picture(d, scale=3 + i) for i, d in enumerate(DIGITS)]
    tensors = np.stack([reference_tensor(p, IMAGE_CONTRACT) for p in pictures]).astype(np.float32)

    async def go() -> tuple[list[object], np.ndarray]:
        settings = ApplicationSettings(name=APP, max_batch=max_batch, batch_wait_ms=20)
        service = InferenceService(ort_loader, workers=2, app_settings={APP: settings})
        await service.add(load_package(package.path))
        try:
            requests = [service.infer(APP, {"pixels": _bytes(p)}) for p in pictures]
            requests.insert(3, service.infer(APP, {"pixels": _bytes(b"not a picture")}))
            results = await asyncio.gather(*requests, return_exceptions=True)
            want = (await service.infer(APP, {"pixels": tensors})).outputs["probabilities"]
            assert service.slot(APP).worker.depth == 0  # every admission released
            return results, want
        finally:
            await service.close()

    results, want = asyncio.run(go())
    bad = results.pop(3)
    assert isinstance(bad, InvalidImage) and "picture 0: not a JPEG or PNG" in bad.message
    for i, got in enumerate(results):
        assert isinstance(got, Answer), got
        np.testing.assert_allclose(got.outputs["probabilities"][0], want[i], rtol=1e-5, atol=1e-6)


def test_a_request_of_no_pictures_and_tensors_beside_pictures(tmp_path: Path) -> None:
    package = write_picture_package(tmp_path / "store")

    async def go() -> None:
        service = InferenceService(ort_loader)
        await service.add(load_package(package.path))
        try:
            with pytest.raises(InvalidInput, match="holds no pictures"):
                await service.infer(APP, {"pixels": _bytes()})
            # The tensor path is untouched by the contract.
            out = await service.infer(APP, {"pixels": DIGITS})
            assert out.outputs["probabilities"].shape == (6, 10)
        finally:
            await service.close()

    asyncio.run(go())


def test_pictures_are_decoded_on_the_models_worker_thread_never_the_loop(tmp_path: Path) -> None:
    # Observed, not mocked: a profile hook on every thread notes which one runs decode().
    import sys
    import threading

    from runtime.images import decode as decode_module

    package = write_picture_package(tmp_path / "store")
    seen: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        code = getattr(frame, "f_code", None)
        if event == "call" and code is decode_module.decode.__code__:
            seen.append(threading.current_thread().name)

    async def go() -> str:
        service = InferenceService(ort_loader, workers=2)
        await service.add(load_package(package.path))
        try:
            await service.infer(APP, {"pixels": _bytes(*map(digit_picture, DIGITS[:2]))})
        finally:
            await service.close()
        return threading.current_thread().name

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        loop_thread = asyncio.run(go())
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    assert len(seen) == 2
    assert all(name.startswith(f"hf-{APP}") for name in seen), seen
    assert loop_thread not in seen
