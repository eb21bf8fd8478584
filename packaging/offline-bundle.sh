#!/usr/bin/env bash
# Assemble the offline bundle from what packaging/build.sh left behind:
#
#   dist/headframe-offline-<version>-<arch>.tar.gz
#     headframe-offline-<version>-<arch>/
#       install.sh        verifies SHA256SUMS, installs the package, imports the demo models
#       SHA256SUMS        every other file of the bundle
#       packages/         the .deb and the .rpm
#       wheels/           every wheel the environment was built from (plus pip, setuptools), so the
#                         environment or the package can be rebuilt without internet
#       demo/store/       the demo model packages (runtime.demo.build_demo_catalog)
#
# OUT_DIR, BUILD_DIR  as for build.sh (packages in OUT_DIR, wheels in BUILD_DIR/wheels)
# DEMO_STORE          an already-built demo store to copy (default: build one)
# HOST_PYTHON         the interpreter with headframe[demo] installed (default: .venv/bin/python)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$REPO/dist}
BUILD_DIR=${BUILD_DIR:-$REPO/build/package}
HOST_PYTHON=${HOST_PYTHON:-$REPO/.venv/bin/python}
die() { echo "packaging/offline-bundle.sh: $*" >&2; exit 1; }

shopt -s nullglob
debs=("$OUT_DIR"/headframe_*.deb)
rpms=("$OUT_DIR"/headframe-*.rpm)
[ ${#debs[@]} -eq 1 ] || die "expected one .deb in $OUT_DIR (run make package first)"
[ -d "$BUILD_DIR/wheels" ] || die "no wheels in $BUILD_DIR/wheels (run make package first)"
base=$(basename "${debs[0]}" .deb)           # headframe_<version>_<arch>
version=${base#headframe_}; version=${version%_*}
arch=${base##*_}
name=headframe-offline-$version-$arch

stage=$BUILD_DIR/offline/$name
rm -rf "$BUILD_DIR/offline"
mkdir -p "$stage/packages" "$stage/wheels" "$stage/demo"
cp "${debs[@]}" "${rpms[@]}" "$stage/packages/"
cp "$BUILD_DIR"/wheels/*.whl "$stage/wheels/"
# pip itself (a target without python3-pip runs python3 wheels/pip-*.whl/pip ...), and
# headframe's build requirements, so packaging/build.sh also runs offline from wheels/.
"$BUILD_DIR/root/opt/headframe/bin/python" -m pip download -q --no-deps -d "$stage/wheels" \
    pip "setuptools>=69" wheel

if [ -n "${DEMO_STORE:-}" ]; then
    cp -R "$DEMO_STORE" "$stage/demo/store"
else
    "$HOST_PYTHON" -m runtime demo build "$stage/demo/store"
fi
find "$stage/demo" -name '__pycache__' -prune -exec rm -rf {} +

install -m 0755 "$REPO/packaging/offline/install.sh" "$stage/install.sh"
(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
    | xargs -d '\n' sha256sum > SHA256SUMS)
tar -C "$BUILD_DIR/offline" -czf "$OUT_DIR/$name.tar.gz" "$name"
echo "offline bundle: $OUT_DIR/$name.tar.gz"
