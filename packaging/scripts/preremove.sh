#!/bin/sh
# headframe prerm (deb: remove | upgrade | deconfigure | failed-upgrade) / %preun (rpm:
# 0 erase, 1 upgrade; on rpm upgrades this runs after the new package's %post).
set -e

case "$1" in
    remove | deconfigure) removing=yes ;;
    0) removing=yes ;;
    upgrade | failed-upgrade) removing=no ;;
    *) exit 0 ;;
esac

if [ "$removing" = yes ] && [ -d /run/systemd/system ]; then
    if [ "$1" = 0 ]; then
        # %systemd_preun: rpm has no deb-systemd-helper state to keep.
        systemctl --no-reload disable --now headframe.service >/dev/null 2>&1 || true
    else
        # dh_installsystemd: stop only; postrm masks on remove, forgets on purge.
        deb-systemd-invoke stop headframe.service >/dev/null 2>&1 || true
    fi
fi

# The bytecode postinstall compiled is not in the package's file list: delete it so the
# package manager can remove /opt/headframe. On a deb upgrade the new postinst recompiles;
# an rpm upgrade keeps it (the new package's %post already ran).
case "$1" in
    1) ;;
    *) find /opt/headframe -depth -type d -name __pycache__ -exec rm -rf {} + 2>/dev/null || true ;;
esac
exit 0
