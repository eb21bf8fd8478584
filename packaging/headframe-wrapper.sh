#!/bin/sh
# /usr/bin/headframe as installed by the package. Every user of this command (root, the
# headframe service user, an operator with sudo) reads the site's configuration in
# /etc/headframe, as the service does; without this a non-root user would read
# ~/.config/headframe instead. An explicit --config or CONFIGURATION_DIRECTORY still wins.
: "${CONFIGURATION_DIRECTORY:=/etc/headframe}"
export CONFIGURATION_DIRECTORY
exec /opt/headframe/bin/headframe "$@"
