#!/bin/sh
# headframe postinst (deb: "configure" [old-version]) / %post (rpm: 1 install, 2 upgrade).
# Must work without systemd as PID 1 (containers, CI, image builds): every systemctl call
# is guarded by /run/systemd/system. See docs/packaging.md.
set -e

case "$1" in
    configure | abort-upgrade | abort-deconfigure | abort-remove) kind=deb ;;
    [0-9]*) kind=rpm ;;
    *) exit 0 ;;
esac

# The service user: sysusers.d when systemd is installed, else useradd (same result).
if ! getent passwd headframe >/dev/null 2>&1; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/headframe.conf
    else
        useradd --system --user-group --home-dir /var/lib/headframe --no-create-home \
            --shell /usr/sbin/nologin --comment "headframe edge AI runtime" headframe
    fi
fi
# Accelerator nodes (/dev/dri/renderD*, /dev/accel/*) belong to these groups.
for group in render video; do
    if getent group "$group" >/dev/null 2>&1; then
        usermod -a -G "$group" headframe
    fi
done

# systemd creates these for the unit (StateDirectory= ...); creating them here too lets the
# command line and `runuser -u headframe` work before the first start, or without systemd.
# Existing directories keep their contents: upgrades never touch the model store.
for dir in /var/lib/headframe /var/cache/headframe; do
    install -d -o headframe -g headframe -m 0750 "$dir"
done
install -d -o root -g root -m 0700 /etc/headframe/credentials

# Bytecode is compiled here, not shipped (Debian Python policy); preremove deletes it.
/opt/headframe/bin/python -m compileall -q -j 0 /opt/headframe/lib >/dev/null 2>&1 || true

if [ "$kind" = deb ]; then
    # What dh_installsystemd generates: enable on first install, keep the admin's choice
    # on upgrades, (re)start only where systemd runs.
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper unmask headframe.service >/dev/null || true
        if deb-systemd-helper --quiet was-enabled headframe.service; then
            deb-systemd-helper enable headframe.service >/dev/null || true
        else
            deb-systemd-helper update-state headframe.service >/dev/null || true
        fi
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then action=restart; else action=start; fi
        deb-systemd-invoke "$action" headframe.service >/dev/null || true
    fi
else
    # RPM convention (%systemd_post): presets decide enabling on first install.
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ "$1" = 1 ]; then
            systemctl --no-reload preset headframe.service >/dev/null 2>&1 || true
        else
            systemctl try-restart headframe.service >/dev/null 2>&1 || true
        fi
    fi
fi
exit 0
