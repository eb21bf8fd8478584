"""A picture as the whole request: HTTP ``Content-Type: image/jpeg|png`` bodies and MQTT
messages with that Content Type, for curl, ``mosquitto_pub -f`` and cameras.

The bytes become a one-picture BYTES tensor on the package's one image input (its
``[images.<input>]`` contract does the rest, on the model's worker). The reply is the usual
KServe JSON: every output, the ones with a label list as the top ``DEFAULT_TOP_K`` with
names (the classification strings of runtime.codecs.classification).
"""

from __future__ import annotations

import numpy as np

from runtime.catalog import PackageMeta
from runtime.codecs.kserve import InferRequest, RequestedOutput
from runtime.errors import InvalidImage, NoImageContract

IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
DEFAULT_TOP_K = 3


def media_type(content_type: str | None) -> str | None:
    """``image/png`` from ``Image/PNG; charset=x``; None when absent."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def is_picture(content_type: str | None) -> bool:
    """True for any image/* type: JPEG and PNG are decoded, the rest refused by name."""
    media = media_type(content_type)
    return media is not None and media.startswith("image/")


def picture_request(app: str, meta: PackageMeta, media: str | None, body: bytes) -> InferRequest:
    """The request for ``body``, a whole JPEG or PNG sent as ``media``."""
    if media not in IMAGE_TYPES:
        raise InvalidImage(f"{media} is not taken: send image/jpeg or image/png")
    contracts = meta.images or {}
    if not contracts:
        raise NoImageContract(
            f"{app} takes no pictures: its package declares no [images.<input>] contract"
        )
    if len(contracts) > 1:
        raise InvalidImage(
            f"{app} takes {len(contracts)} pictures ({', '.join(contracts)}): send a KServe "
            "request with one BYTES input each"
        )
    if not body:
        raise InvalidImage(f"empty body: send the {media} bytes")
    name = next(iter(contracts))
    labels = meta.labels or {}
    requested = None
    if labels:
        names = [s.name for s in meta.outputs] or list(labels)
        requested = [
            RequestedOutput(n, classification=DEFAULT_TOP_K if n in labels else None) for n in names
        ]
    picture = np.empty(1, dtype=object)
    picture[0] = bytes(body)
    return InferRequest({name: picture}, outputs=requested)
