# Sourced by main.sh and codec.sh once they run from their copy: wait for the PIDs given, then the settings
# every queue shares (the repository root, one thread per run, the runs folder, nice 10).
for pid in "$@"; do while kill -0 "$pid" 2>/dev/null; do sleep 20; done; done
cd "$PERCEPTLAB_QUEUE_ROOT" || exit 1
export OMP_NUM_THREADS=1
R=${PERCEPTLAB_RUNS:-~/perceptlab-runs}
py() { nice -n 10 .venv/bin/python "$@"; }
