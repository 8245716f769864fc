# Sourced by every deploy/ batch script: activate the mitoscale environment.
#
#   MITOSCALE_VENV   the virtual environment made by `make setup` on the login
#                    node (default: $HOME/mitoscale/.venv).  It must live on a
#                    file system the compute nodes mount.
#   MITOSCALE_SIF    instead of a venv, run inside this Apptainer image
#                    (deploy/apptainer/mitoscale.def); bind paths with
#                    APPTAINER_BIND.
#   MITOSCALE_MODULES  modules to `module load` first (space separated).
set -euo pipefail

if [ -n "${MITOSCALE_MODULES:-}" ] && command -v module >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    module load ${MITOSCALE_MODULES}
fi

if [ -n "${MITOSCALE_SIF:-}" ]; then
    PY=(apptainer exec ${MITOSCALE_APPTAINER_FLAGS:-} "$MITOSCALE_SIF" python)
else
    VENV="${MITOSCALE_VENV:-$HOME/mitoscale/.venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "mitoscale: no virtual environment at $VENV (set MITOSCALE_VENV)" >&2
        exit 2
    fi
    PY=("$VENV/bin/python")
fi
export MITOSCALE_NO_PROGRESS="${MITOSCALE_NO_PROGRESS:-1}"  # batch logs: no progress bars
# one BLAS/OpenMP thread per Dask worker thread; workers are the parallelism
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
