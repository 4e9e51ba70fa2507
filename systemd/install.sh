#!/usr/bin/env bash
# Install posdiag on a Debian 12 terminal: a virtualenv under /opt/posdiag built with Debian's own
# python3, the systemd unit, sysusers/tmpfiles snippets, the udev rules, and /etc/posdiag with the
# annotated sample as the starting configuration. Run through `make install` (see systemd/README.md).
#
#   DESTDIR   stage into this root instead of / (packaging, tests); paths inside the installed
#             files are those of the final system, never DESTDIR
#   PREFIX    the virtualenv (default /opt/posdiag)
#   PYTHON    the interpreter the virtualenv is made from (default /usr/bin/python3: Debian's, which
#             the terminal keeps patched; not a developer's pyenv)
#
# Why a virtualenv and not a Debian package of its own: the agent needs paho-mqtt 2, and Debian 12
# ships 1.6, so a .deb would have to carry its dependencies anyway; a venv in /opt is the same
# thing without pretending to be part of the distribution. Nothing is written to /usr/bin (dpkg's);
# the technician's `posdiag` command is a link in /usr/local/bin.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/posdiag}
PYTHON=${PYTHON:-/usr/bin/python3}
UNITDIR=/usr/lib/systemd/system
say() { printf 'posdiag install: %s\n' "$*"; }
die() { printf 'posdiag install: %s\n' "$*" >&2; exit 1; }

case $PREFIX in /home/*|/root/*) die "PREFIX=$PREFIX: ProtectHome=yes hides it from the service";; esac
[ -x "$PYTHON" ] || die "$PYTHON not found: apt-get install python3 python3-venv"
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python >= 3.11 with venv: apt-get install python3-venv"

VENV=$DESTDIR$PREFIX
say "virtualenv $PREFIX${DESTDIR:+ (staged in $DESTDIR)}"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-compile "$SRC"

if [ -n "$DESTDIR" ]; then
    # The venv was made at $DESTDIR$PREFIX: scripts' shebangs, activate files and pyvenv.cfg name
    # that path. Rewrite them to the final one, so the staged tree is what the terminal gets.
    grep -rlIF -- "$VENV" "$VENV" | while IFS= read -r f; do
        sed -i "s|$VENV|$PREFIX|g" "$f"
    done
    if grep -rqIF -- "$DESTDIR" "$VENV"; then die "staging path left in the virtualenv"; fi
fi
# Byte-compile once, as the final paths (tracebacks and the service's read-only /opt need them).
"$VENV/bin/python" -m compileall -q -f -j 0 ${DESTDIR:+-s "$DESTDIR" -p /} "$VENV/lib" >/dev/null

say "systemd unit, sysusers, tmpfiles, udev rules"
install -D -m 0644 "$SRC/systemd/posdiag.service" "$DESTDIR$UNITDIR/posdiag.service"
install -D -m 0644 "$SRC/systemd/posdiag.sysusers" "$DESTDIR/usr/lib/sysusers.d/posdiag.conf"
install -D -m 0644 "$SRC/systemd/posdiag.tmpfiles" "$DESTDIR/usr/lib/tmpfiles.d/posdiag.conf"
install -D -m 0644 "$SRC/systemd/60-posdiag.rules" "$DESTDIR/usr/lib/udev/rules.d/60-posdiag.rules"
if [ "$PREFIX" != /opt/posdiag ]; then
    # The unit names /opt/posdiag; another prefix gets a drop-in rather than an edited unit.
    install -d -m 0755 "$DESTDIR/etc/systemd/system/posdiag.service.d"
    printf '[Service]\nExecStart=\nExecStart=%s/bin/posdiag run\n' "$PREFIX" \
        > "$DESTDIR/etc/systemd/system/posdiag.service.d/prefix.conf"
fi
install -d -m 0755 "$DESTDIR/usr/local/bin"
ln -sfn "$PREFIX/bin/posdiag" "$DESTDIR/usr/local/bin/posdiag"

install -d -m 0755 "$DESTDIR/etc/posdiag" "$DESTDIR/etc/posdiag/conf.d"
if [ -e "$DESTDIR/etc/posdiag/posdiag.toml" ]; then
    say "/etc/posdiag/posdiag.toml exists: kept (the new sample is $PREFIX/share/posdiag.sample.toml)"
else
    install -m 0644 "$SRC/docs/posdiag.sample.toml" "$DESTDIR/etc/posdiag/posdiag.toml"
    say "/etc/posdiag/posdiag.toml: the annotated sample; set [terminal] id and [mqtt] next"
fi
install -D -m 0644 "$SRC/docs/posdiag.sample.toml" "$VENV/share/posdiag.sample.toml"

if [ -z "$DESTDIR" ]; then
    cat <<EOF
posdiag install: done. Next, as root:
  systemd-sysusers posdiag.conf && systemd-tmpfiles --create posdiag.conf
  udevadm control --reload && udevadm trigger --subsystem-match=usb --subsystem-match=tty
  posdiag config check
  systemctl daemon-reload && systemctl enable --now posdiag
EOF
fi
