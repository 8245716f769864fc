#!/usr/bin/env bash
# Install the system services the test-suite uses:
#  - a single-node SLURM (Debian's slurm-wlm 22.05 + munge); the daemons themselves are started
#    and stopped by the session fixture in tests/hpc/conftest.py;
#  - a virtual X display (Xvfb) and the X/GL libraries Qt's xcb platform needs, so that the
#    napari test (tests/segment/test_napari.py) opens the output in a real, headless viewer.
#
# Idempotent and fast when already installed; it NEVER fails the build: when
# the packages cannot be installed (no root, no apt, no registry), the tests that
# need them skip with a clear reason.
set -u

log() { echo "prepare_test_services: $*" >&2; }

SLURM_PKGS="slurmctld slurmd slurm-client munge"
# Xvfb, and what PyQt5's xcb plugin and vispy's OpenGL need (as in napari's and pytest-qt's CI)
X_PKGS="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0
        libxkbcommon-x11-0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libgl1-mesa-dri libegl1"

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1
}
have_x() {
    command -v Xvfb >/dev/null 2>&1 && dpkg-query -W libxcb-icccm4 libxkbcommon-x11-0 libgl1-mesa-dri \
        >/dev/null 2>&1
}

PKGS=""
if have_slurm; then
    log "slurm $(dpkg-query -W -f='${Version}' slurmd 2>/dev/null) and munge already installed"
else
    PKGS="$SLURM_PKGS"
fi
if have_x; then
    log "Xvfb $(dpkg-query -W -f='${Version}' xvfb 2>/dev/null) already installed"
else
    PKGS="$PKGS $X_PKGS"
fi
[ -z "${PKGS// /}" ] && exit 0
if [ "$(id -u)" != "0" ]; then
    log "not root: cannot install $PKGS; the SLURM/napari tests that need them will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: cannot install $PKGS; the SLURM/napari tests that need them will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "installing" $PKGS
# Try from the current package lists first; refresh them only if that fails.
if ! timeout 600 apt-get install -y -q --no-install-recommends $PKGS >/tmp/mitoscale-apt.log 2>&1; then
    timeout 300 apt-get update -q >>/tmp/mitoscale-apt.log 2>&1 || true
    timeout 900 apt-get install -y -q --no-install-recommends $PKGS >>/tmp/mitoscale-apt.log 2>&1 || true
fi
# Debian's postinst may try to start services; there is no systemd here, and
# the test fixture runs private daemons, so stop anything the install started.
for svc in munge slurmd slurmctld; do
    service "$svc" stop >/dev/null 2>&1 || true
done

if have_slurm; then
    log "installed slurm $(dpkg-query -W -f='${Version}' slurmd 2>/dev/null)"
else
    log "slurm-wlm/munge could not be installed (see /tmp/mitoscale-apt.log); SLURM tests will be skipped"
    tail -n 5 /tmp/mitoscale-apt.log >&2 || true
fi
if have_x; then
    log "installed Xvfb $(dpkg-query -W -f='${Version}' xvfb 2>/dev/null)"
else
    log "Xvfb could not be installed (see /tmp/mitoscale-apt.log); the napari test will be skipped"
fi
exit 0
