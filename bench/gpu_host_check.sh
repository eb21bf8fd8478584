#!/usr/bin/env bash
# One prepared run on a lent NVIDIA machine that has no network (see bench/README.md,
# "On a real GPU host"). It probes the real hardware, saves what the probe read as a
# fixture tree, serves the demo application over HTTP and measures the MQTT bench on
# that machine's cores. Everything it reports lands in $OUT.
#
# What it needs in the working tree (both folders ignored through .git/info/exclude),
# made on a machine with PyPI and Debian access:
#   .whl/      wheels, for the lent machine's Python (3.12), of what it lacks:
#                pip download --no-deps --only-binary=:all: --python-version 3.12 \
#                  --implementation cp --platform manylinux_2_17_x86_64 -d .whl \
#                  pydantic pydantic-core pydantic-settings python-dotenv typing-inspection \
#                  annotated-types fastapi starlette annotated-doc opentelemetry-api uvicorn \
#                  orjson httptools paho-mqtt typing-extensions   # the versions .venv has
#   .devcarry/ bin/mosquitto (from `apt-get download mosquitto`, dpkg -x), lib/ (every
#              library `ldd bin/mosquitto` names but libc, libm and libresolv), and
#              store/ (a demo store: `headframe demo build .devcarry/store`)
# Locally, for a dry run: PY=.venv/bin/python NO_WHEELS=1 OUT=/tmp/out bench/gpu_host_check.sh
set -u
PY=${PY:-python3}
OUT=${OUT:?set OUT to a directory for the results}
HERE=$(pwd)
export PYTHONUNBUFFERED=1
if [ -z "${NO_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$HERE
fi
if [ -x .devcarry/bin/mosquitto ]; then
    # The broker's libraries come along in .devcarry/lib; Python must keep its own.
    mkdir -p /tmp/mq
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' \
        "$HERE/.devcarry/lib" "$HERE/.devcarry/bin/mosquitto" >/tmp/mq/mosquitto
    chmod +x /tmp/mq/mosquitto
    export PATH=/tmp/mq:$PATH
fi

{
    echo "== host"; nproc; uname -r; "$PY" --version
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1
    "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
    mosquitto -h 2>&1 | head -1
    echo "== detect --save-tree"
    rm -rf /tmp/tree
    "$PY" -m runtime detect --json --save-tree /tmp/tree >"$OUT/detect.json"
    echo "rc=$?"
    tar czf "$OUT/tree.tgz" -C /tmp tree
    "$PY" -m runtime detect --root /tmp/tree --json >"$OUT/detect-tree.json"
    echo "replay rc=$?"
} >"$OUT/host.txt" 2>&1

# The daemon on this box: which profile, which variant, which providers, one request.
rm -rf /tmp/hf && mkdir -p /tmp/hf && cp -r .devcarry/store /tmp/hf/store
HEADFRAME_PATHS__STATE_DIR=/tmp/hf HEADFRAME_PATHS__STORE_DIR=/tmp/hf/store \
    "$PY" -m runtime serve --port 8090 >"$OUT/serve.log" 2>&1 &
SERVE=$!
"$PY" - "$SERVE" >"$OUT/http.txt" 2>&1 <<'EOF'
import json, os, sys, time, urllib.request
base = "http://127.0.0.1:8090"
for _ in range(240):
    os.kill(int(sys.argv[1]), 0)  # the daemon died: its log says why
    try:
        if urllib.request.urlopen(base + "/v2/health/ready", timeout=1).status == 200:
            break
    except Exception:
        time.sleep(0.25)
status = json.load(urllib.request.urlopen(base + "/status", timeout=5))
print(json.dumps(status, indent=2))
body = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                               "data": [0.0] * 64}]}).encode()
req = urllib.request.Request(base + "/v2/models/part-id-reader/infer", body,
                             {"Content-Type": "application/json"})
print("== infer", urllib.request.urlopen(req, timeout=5).read().decode()[:400])
EOF
kill -TERM $SERVE; wait $SERVE

# MQTT round trip on this machine's cores (issue 5's bench), unpinned, then pinned.
"$PY" bench/mqtt_bench.py --store .devcarry/store --requests 2000 --rounds 5 --json \
    >"$OUT/mqtt.json" 2>"$OUT/mqtt.txt"
echo "unpinned rc=$?" >>"$OUT/mqtt.txt"
"$PY" bench/mqtt_bench.py --store .devcarry/store --requests 2000 --rounds 5 --pin 1 \
    >>"$OUT/mqtt.txt" 2>&1
echo "pinned rc=$?" >>"$OUT/mqtt.txt"
