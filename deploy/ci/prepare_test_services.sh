#!/usr/bin/env bash
# Install the system services the test-suite uses: a single-node SLURM
# (Debian's slurm-wlm 22.05 + munge).  The daemons themselves are started and
# stopped by the session fixture in tests/hpc/conftest.py.
#
# Idempotent and fast when already installed; it NEVER fails the build: when
# the packages cannot be installed (no root, no apt, no registry), the SLURM
# tests skip with a clear reason.
set -u

log() { echo "prepare_test_services: $*" >&2; }

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1
}

if have_slurm; then
    log "slurm $(dpkg-query -W -f='${Version}' slurmd 2>/dev/null) and munge already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    log "not root: cannot install slurm-wlm/munge; SLURM tests will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: cannot install slurm-wlm/munge; SLURM tests will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
PKGS="slurmctld slurmd slurm-client munge"
log "installing $PKGS"
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
exit 0
