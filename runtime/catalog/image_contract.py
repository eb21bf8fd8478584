"""The image contract: how a picture becomes the tensor one model input takes.

A package declares it per input name in package.toml (``[images.<input>]``); the runtime
decodes a JPEG or PNG and applies exactly these steps, in this order:

1. colour: ``RGB``, ``BGR`` or ``GRAY`` (the decoder's luma), 8 bits per channel;
2. size: ``stretch`` to width x height, ``letterbox`` (keep the aspect ratio, fill the
   rest with ``pad``) or ``center_crop`` (cut the source to the target's aspect ratio,
   centred, then resize); with ``interpolation`` ``bilinear`` (half-pixel centres, as
   OpenCV and PyTorch without antialiasing), ``area`` (box average) or ``nearest``;
3. values: ``(pixel * scale - mean) / std`` per channel, pixel in 0..255, then ``dtype``;
4. layout: ``NHWC`` or ``NCHW``, a batch axis first; ``flatten`` then reshapes every
   picture to one row (the demo model takes ``[N, 64]``).

``mismatch(contract, spec)`` says which field disagrees with the model's input; the
catalog calls it when a package is read and the service when a variant is loaded, so a
wrong contract is a load error naming the field, never a silently wrong answer.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Layout = Literal["NHWC", "NCHW"]
Color = Literal["RGB", "BGR", "GRAY"]
Resize = Literal["stretch", "letterbox", "center_crop"]
Interpolation = Literal["bilinear", "area", "nearest"]
ImageDatatype = Literal["FP32", "FP16", "UINT8"]
MAX_SIDE = 8192


class ImageInput(BaseModel):
    """One input's preprocessing, as package.toml declares it under ``[images.<input>]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(ge=1, le=MAX_SIDE, description="pixels the model sees across")
    height: int = Field(ge=1, le=MAX_SIDE, description="pixels the model sees down")
    color: Color = Field(default="RGB", description="channel order, or one grey channel")
    layout: Layout = "NHWC"
    resize: Resize = "stretch"
    interpolation: Interpolation = "bilinear"
    pad: int = Field(default=0, ge=0, le=255, description="letterbox fill, pixel units")
    dtype: ImageDatatype = "FP32"
    scale: float = Field(default=1.0, description="pixel (0..255) times this, first")
    mean: tuple[float, ...] = Field(default=(0.0,), description="one value, or one a channel")
    std: tuple[float, ...] = Field(default=(1.0,), description="one value, or one a channel")
    flatten: bool = Field(default=False, description="reshape each picture to one row")

    @field_validator("scale")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v == 0:
            raise ValueError("scale is a finite, non-zero number")
        return v

    @field_validator("mean", "std")
    @classmethod
    def _finite_all(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(x) for x in v):
            raise ValueError("values are finite numbers")
        return v

    @model_validator(mode="after")
    def _per_channel(self) -> ImageInput:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(values)} values; {self.color} takes 1 or {self.channels}"
                )
        if any(s == 0 for s in self.std):
            raise ValueError("std values are non-zero")
        return self

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    def tensor_shape(self) -> tuple[int, ...]:
        """The model input's shape for a batch (-1) of pictures."""
        h, w, c = self.height, self.width, self.channels
        if self.flatten:
            return (-1, h * w * c)
        return (-1, h, w, c) if self.layout == "NHWC" else (-1, c, h, w)

    def dim_fields(self) -> tuple[str, ...]:
        """The contract field that sets each axis of ``tensor_shape()``."""
        if self.flatten:
            return ("batch", "width x height x channels")
        if self.layout == "NHWC":
            return ("batch", "height", "width", "color")
        return ("batch", "color", "height", "width")


def mismatch(name: str, contract: ImageInput, datatype: str, shape: tuple[int, ...]) -> str | None:
    """Why ``contract`` cannot feed the input ``name`` (``datatype``, ``shape`` with -1 for
    any size), naming the field; None when it fits."""
    where = f"images.{name}"
    if datatype != contract.dtype:
        return f"{where}.dtype: {contract.dtype}, but input {name!r} takes {datatype}"
    want = contract.tensor_shape()
    layout = "flattened" if contract.flatten else contract.layout
    if len(shape) != len(want):
        return (
            f"{where}: makes {len(want)}-D tensors ({layout}), but input {name!r} is "
            f"{len(shape)}-D {list(shape)}" + ("; set flatten = true" if len(shape) == 2 else "")
        )
    for field, got, made in zip(contract.dim_fields()[1:], shape[1:], want[1:], strict=True):
        if got != -1 and got != made:
            return (
                f"{where}.{field}: gives {made}, but input {name!r} has {got} there "
                f"({list(shape)}, {layout})"
            )
    return None
