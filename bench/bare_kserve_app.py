"""The bare KServe v2 JSON app the serving benchmarks compare headframe with.

uvicorn (uvloop, httptools) + orjson + onnxruntime on one intra-op thread, one model, no
checks. ``inline`` runs onnxruntime on the event loop (the ceiling nobody should ship: a
slow model stalls every connection); ``threaded`` hands each inference to one worker
thread, as headframe's rule 6 requires, and is the fair baseline.

    python bench/bare_kserve_app.py MODEL.onnx PORT inline|threaded
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
THREADED = sys.argv[3] == "threaded"
pool = ThreadPoolExecutor(1)
DT = {"FP32": np.float32}


def run(name: str, x: np.ndarray) -> Any:
    return sess.run(None, {name: x})[0]


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "GET":  # readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    req = orjson.loads(body)
    i = req["inputs"][0]
    x = np.asarray(i["data"], dtype=DT[i["datatype"]]).reshape(i["shape"])
    if THREADED:
        y = await asyncio.get_running_loop().run_in_executor(pool, run, i["name"], x)
    else:
        y = run(i["name"], x)
    out = orjson.dumps({"model_name": "m", "outputs": [{"name": "probabilities",
          "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}]})  # fmt: skip
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": out})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip
