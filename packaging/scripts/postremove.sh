#!/bin/sh
# headframe postrm (deb: remove | purge | upgrade | ...) / %postun (rpm: 0 erase, 1 upgrade).
#
# remove (and rpm erase): the programs go; configuration, credentials and the model store
#   (/var/lib/headframe) stay.
# purge: configuration, credentials and cache go too (and /var/log/headframe, which
#   versions before the journal-only logs created). The model store and the
#   headframe user stay unless asked, because models may have come over a slow link:
#       HEADFRAME_PURGE_STATE=1 dpkg --purge headframe     (or apt-get purge)
#   or touch /etc/headframe/purge-state before purging. rpm has no purge: an erase with
#   HEADFRAME_PURGE_STATE=1 (or the flag file) removes everything the same way.
set -e

purge_state() {
    [ "${HEADFRAME_PURGE_STATE:-0}" = 1 ] || [ -e /etc/headframe/purge-state ]
}

purge_all() {
    wipe_state=no
    if purge_state; then wipe_state=yes; fi
    rm -rf /etc/headframe/credentials /var/cache/headframe /var/log/headframe
    rm -f /etc/headframe/purge-state
    rmdir /etc/headframe 2>/dev/null || true
    if [ "$wipe_state" = yes ]; then
        rm -rf /var/lib/headframe
        # No file owned by the user is left, so the user can go as well.
        if getent passwd headframe >/dev/null 2>&1; then
            userdel headframe >/dev/null 2>&1 || true
        fi
        if getent group headframe >/dev/null 2>&1; then
            groupdel headframe >/dev/null 2>&1 || true
        fi
    fi
}

case "$1" in
    remove)
        if [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
        fi
        if command -v deb-systemd-helper >/dev/null 2>&1; then
            deb-systemd-helper mask headframe.service >/dev/null || true
        fi
        ;;
    purge)
        if command -v deb-systemd-helper >/dev/null 2>&1; then
            deb-systemd-helper purge headframe.service >/dev/null || true
            deb-systemd-helper unmask headframe.service >/dev/null || true
        fi
        purge_all
        ;;
    0)
        if [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
        fi
        rm -rf /var/cache/headframe
        if purge_state; then purge_all; fi
        ;;
    1)
        if [ -d /run/systemd/system ]; then
            systemctl try-restart headframe.service >/dev/null 2>&1 || true
        fi
        ;;
esac
exit 0
