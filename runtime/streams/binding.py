"""One stream binding: samples -> window -> the application's model -> result and alert.

Runs on the event loop; the model runs on its worker through ``infer`` (the service's).
One window is in flight at a time and one waits; a newer window replaces the waiting one
(counted as ``dropped_windows``) so a slow model sees the freshest data instead of an
ever longer queue. A bad sample is counted by kind and logged once per kind; it never
stops the binding. A sample's own time (``timestamp_pointer``) is believed only up to
``max_ahead_s`` ahead of its arrival: a sample from further ahead is ``future``, since
taken as the newest it would make every later sample ``late``. ``stalled`` means no
sample was accepted for ``stall_after_s``, however many bad ones arrive.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import numpy as np
import orjson

from runtime.config import StreamSettings
from runtime.streams.samples import BadSample, Fields, reader, timestamp_reader
from runtime.streams.window import Window, Windower

log = logging.getLogger(__name__)


class Answered(Protocol):
    """The service's answer (runtime.service.Answer): the outputs and who computed them."""

    @property
    def outputs(self) -> Mapping[str, np.ndarray]: ...

    @property
    def version(self) -> str: ...

    @property
    def variant(self) -> str: ...


# infer(app, inputs) -> the answer (the service's, with protocol "stream")
Infer = Callable[[str, Mapping[str, np.ndarray]], Awaitable[Answered]]
Publish = Callable[[str, bytes, int, bool], None]
_DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}


class ShapeMismatch(ValueError):
    """The window does not fit the model input (said at load, not per window)."""


def fit_shape(shape: tuple[int, ...], elements: int) -> tuple[int, ...]:
    """The input shape for one window of ``elements`` values: batch 1, and at most one
    other free (-1) dimension sized to fit."""
    dims = [1 if i == 0 and d == -1 else d for i, d in enumerate(shape)]
    free = [i for i, d in enumerate(dims) if d == -1]
    known = math.prod(d for d in dims if d != -1)
    if len(free) > 1 or (not free and known != elements) or (free and elements % known):
        raise ShapeMismatch(f"a window of {elements} values does not fit shape {list(shape)}")
    if free:
        dims[free[0]] = elements // known
    return tuple(dims)


class Binding:
    def __init__(
        self,
        settings: StreamSettings,
        *,
        infer: Infer,
        slot: Callable[[str], Any],
        publish: Publish,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = s = settings
        self.infer, self.slot, self.publish, self.clock = infer, slot, publish, clock
        self.read = reader(s)
        self.read_time = timestamp_reader(s)
        self.fields = Fields(s.fields) if s.fields else None
        self.width = len(s.fields) or 1
        self.windower = Windower(s.size, s.hop, s.window_s)
        kinds = ("samples", "windows", "results", "errors", "non_numeric", "missing", "late",
                 "future", "ignored", "dropped_windows", "alerts")  # fmt: skip
        self.counters = dict.fromkeys(kinds, 0)
        self.alert_on = False
        self.last_sample_at: float | None = None  # arrival of the last sample accepted
        self.last_result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.problem: str | None = None  # why no window can run (set by check)
        self.started_at = clock()
        self._logged: set[str] = set()
        self._busy = False
        self._waiting: Window | None = None
        self._rate_mark = (self.started_at, 0)
        self._newest: float | None = None  # the sensor's newest sample time (timestamp_pointer)
        self.rate = 0.0
        self._input: tuple[str, tuple[int, ...], Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- load-time check ------------------------------------------------------------
    def check(self) -> str | None:
        """Resolve the model input and its shape for one window; None when it fits, else
        the reason (shown on /status; windows are counted as errors until it fits)."""
        s = self.settings
        try:
            slot = self.slot(s.app)
            specs = list(slot.schema.inputs)
            spec = specs[0] if s.input is None else next(i for i in specs if i.name == s.input)
            dtype = _DTYPES.get(spec.datatype)
            if dtype is None:
                raise ShapeMismatch(f"input {spec.name} is {spec.datatype}, not a float type")
            shape = fit_shape(tuple(spec.shape), s.size * self.width)
        except StopIteration:
            self.problem = f"{s.app} has no input {s.input!r}"
        except ShapeMismatch as e:
            self.problem = f"{s.app}: {e}"
        except Exception as e:
            self.problem = f"{s.app}: {getattr(e, 'message', e)}"
        else:
            self._input, self.problem = (spec.name, shape, dtype), None
        if self.problem:
            log.error("stream %s: %s", s.name, self.problem)
        return self.problem

    # ---- samples (event loop) ---------------------------------------------------------
    def on_sample(self, topic: str, payload: bytes, at: float) -> None:
        """A message that arrived at ``at`` (Unix seconds)."""
        self.counters["samples"] += 1
        if at - self._rate_mark[0] >= 5.0:
            t0, n0 = self._rate_mark
            self.rate = (self.counters["samples"] - n0) / (at - t0)
            self._rate_mark = (at, self.counters["samples"])
        arrived = at
        try:
            if self.read_time is not None:
                at = self.read_time(payload)
                self._check_time(at, arrived)
            value = self.read(payload, topic)
            row = self.fields.add(topic, value) if self.fields else [value]
            if self.read_time is not None:
                self._newest = at  # only a sample that is used moves the clock on
        except BadSample as e:
            self.counters[e.kind] += 1
            if e.kind not in self._logged and e.kind != "ignored":
                self._logged.add(e.kind)
                log.warning("stream %s: %s (counted as %s; logged once)",
                            self.settings.name, e, e.kind)  # fmt: skip
            return
        self.last_sample_at = arrived
        if row is not None:
            window = self.windower.add(at, row, arrived)
            if window is not None:
                self.submit(window)

    def _check_time(self, at: float, arrived: float) -> None:
        ahead = at - arrived
        if ahead > self.settings.max_ahead_s:
            raise BadSample(
                "future",
                f"a sample from {at}, {ahead:.0f} s after its arrival (streams.max_ahead_s "
                f"= {self.settings.max_ahead_s:g}; check the sensor's clock)",
            )
        if self._newest is not None and at < self._newest:
            raise BadSample("late", f"a sample from {at} after one from {self._newest}")

    def tick(self, now: float) -> None:
        window = self.windower.tick(now)
        if window is not None:
            self.submit(window)

    def submit(self, window: Window) -> None:
        self.counters["windows"] += 1
        if self._busy:
            if self._waiting is not None:
                self.counters["dropped_windows"] += 1
            self._waiting = window
            return
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._run(window))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, window: Window) -> None:
        try:
            while True:
                await self._one(window)
                if self._waiting is None:
                    return
                window, self._waiting = self._waiting, None
        finally:
            self._busy = False

    async def _one(self, window: Window) -> None:
        s = self.settings
        if self._input is None and self.check() is not None:
            self.counters["errors"] += 1
            self.last_error = self.problem
            return
        assert self._input is not None
        name, shape, dtype = self._input
        try:
            array = np.asarray(window.rows, dtype=dtype).reshape(shape)
            answer = await self.infer(s.app, {name: array})
        except Exception as e:
            self.counters["errors"] += 1
            self.last_error = str(getattr(e, "message", e))
            self._input = None  # a swap may have changed the model: check again
            return
        doc = {
            "stream": s.name,
            "app": s.app,
            "version": answer.version,  # the version and variant that computed it
            "variant": answer.variant,
            "window": {"number": window.number, "samples": len(window.rows),
                       "first_at": window.first_at, "last_at": window.last_at},
            "outputs": {k: np.asarray(v).tolist() for k, v in answer.outputs.items()},
        }  # fmt: skip
        self.publish(s.publish, orjson.dumps(doc), s.qos, s.retain)
        self.counters["results"] += 1
        self.last_result = doc
        if s.alert is not None:
            self._alert(doc, answer.outputs)

    def _alert(self, doc: dict[str, Any], outputs: Mapping[str, np.ndarray]) -> None:
        rule = self.settings.alert
        assert rule is not None
        first = np.asarray(next(iter(outputs.values()))).ravel()
        if rule.output >= first.size:
            self.counters["errors"] += 1
            self.last_error = f"alert output {rule.output} is past the output's {first.size}"
            return
        value = float(first[rule.output])
        if not self.alert_on and value > rule.threshold:
            self.alert_on = True
        elif self.alert_on and value < rule.threshold - rule.hysteresis:
            self.alert_on = False
        else:
            return
        self.counters["alerts"] += 1
        body = {
            "stream": self.settings.name,
            "app": doc["app"],
            "state": "on" if self.alert_on else "off",
            "value": value,
            "threshold": rule.threshold,
            "window": doc["window"],
            "variant": doc["variant"],
            "version": doc["version"],
        }
        self.publish(rule.topic, orjson.dumps(body), self.settings.qos, True)

    # ---- visible ------------------------------------------------------------------------
    def summary(self) -> str | None:
        """A short line for Sparkplug's "Last Result"."""
        if self.last_result is None:
            return None
        outputs = self.last_result["outputs"]
        first = np.asarray(next(iter(outputs.values()), [])).ravel()[:4]
        values = ", ".join(f"{v:.4g}" for v in first)
        state = " alert" if self.alert_on else ""
        return f"{self.settings.name} #{self.last_result['window']['number']}: [{values}]{state}"

    def status(self, now: float) -> dict[str, Any]:
        s = self.settings
        since = self.last_sample_at if self.last_sample_at is not None else self.started_at
        last = self.last_result
        return {
            "app": s.app,
            "subscribe": list(s.subscribe),
            "publish": s.publish,
            "rate_per_s": round(self.rate, 3),
            "stalled": now - since > s.stall_after_s,
            "last_sample_at": self.last_sample_at,
            "last_window": last["window"] if last else None,
            "last_result": last["outputs"] if last else None,
            "alert": ("on" if self.alert_on else "off") if s.alert else None,
            "problem": self.problem,
            "last_error": self.last_error,
            "counters": {
                **self.counters,
                "short_windows": self.windower.short,
                "overwritten": self.fields.overwritten if self.fields else 0,
            },
        }
