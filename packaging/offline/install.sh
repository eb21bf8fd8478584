#!/bin/sh
# Install headframe from this offline bundle (no network needed).
#
#   sudo ./install.sh              verify, install the package, import the demo models, start
#   sudo ./install.sh --no-demo    the same without the demo models
#   ./install.sh --verify-only     only check the bundle (needs no root)
#
# Nothing is installed unless every file matches SHA256SUMS and no file is unlisted. To
# know the bundle is the one your vendor published (not just undamaged), compare the
# SHA256SUMS digest printed below with the one published next to the bundle.
set -eu

cd "$(dirname "$0")"
demo=yes
verify_only=no
for arg in "$@"; do
    case "$arg" in
        --no-demo) demo=no ;;
        --verify-only) verify_only=yes ;;
        -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "install.sh: $*" >&2; exit 1; }

# 1. Integrity: every listed file matches, and nothing unlisted rides along.
[ -f SHA256SUMS ] || die "SHA256SUMS missing: not a headframe offline bundle"
echo "SHA256SUMS digest: $(sha256sum SHA256SUMS | cut -d' ' -f1)"
if ! sha256sum --check --strict --quiet SHA256SUMS; then
    die "checksum mismatch: the bundle is damaged or altered; nothing was installed"
fi
listed=$(cut -c67- SHA256SUMS | LC_ALL=C sort)
present=$(find . -type f ! -name SHA256SUMS | sed 's#^\./##' | LC_ALL=C sort)
if [ "$listed" != "$present" ]; then
    die "files not listed in SHA256SUMS: $(printf '%s\n' "$present" | grep -vxF "$listed" | tr '\n' ' ')-- nothing was installed"
fi
echo "bundle verified: $(printf '%s\n' "$listed" | wc -l) files"
[ "$verify_only" = no ] || exit 0

# 2. The package, with the system's own package manager.
[ "$(id -u)" -eq 0 ] || die "run as root (sudo ./install.sh) to install"
if command -v dpkg >/dev/null 2>&1; then
    set -- packages/headframe_*.deb
    [ -f "$1" ] || die "no .deb in this bundle"
    dpkg -i "$1" || die "dpkg could not install $1 (missing dependencies? see above)"
elif command -v rpm >/dev/null 2>&1; then
    set -- packages/headframe-*.rpm
    [ -f "$1" ] || die "no .rpm in this bundle"
    rpm -U --replacepkgs "$1" || die "rpm could not install $1"
else
    die "neither dpkg nor rpm found: install from wheels/ by hand (docs/packaging.md)"
fi

# 3. The demo models, into the store the service uses; a site's own models are never
#    overwritten (an application already in the store is left as it is). The store is the
#    service user's to write, so everything done in it is done as that user: root only
#    reads this verified bundle, and a link planted in the store cannot lead a root
#    process anywhere (no root cp, chown or install -d on a path the service controls).
store=/var/lib/headframe/store
as_headframe() { runuser -u headframe -- "$@"; }
if [ "$demo" = yes ] && [ -d demo/store ]; then
    as_headframe mkdir -p -m 0750 "$store" \
        || die "cannot create $store as the headframe user; nothing was copied"
    for app in demo/store/*/; do
        name=$(basename "$app")
        if as_headframe test -e "$store/$name"; then
            echo "demo model $name: already in $store, left as it is"
        elif tar -C demo/store -cf - "$name" \
            | as_headframe tar -C "$store" -xf - --no-same-owner --no-same-permissions; then
            echo "demo model $name: imported into $store"
        else
            die "could not copy demo model $name into $store as the headframe user"
        fi
    done
fi

# 4. The service: (re)started where systemd runs, so it loads the models just imported.
if [ -d /run/systemd/system ]; then
    systemctl enable headframe.service >/dev/null 2>&1 || true
    systemctl restart headframe.service
    echo "headframe.service: $(systemctl is-active headframe.service)"
else
    echo "systemd is not running here: start it by hand with" \
        "runuser -u headframe -- /usr/bin/headframe serve"
fi
echo "done. Try: curl -s http://127.0.0.1:8080/v2/health/ready"
