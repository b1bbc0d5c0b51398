#!/usr/bin/env bash
# A two-node Ray cluster on this machine, one CPU per node, inside the caller's private network
# namespace (run as: unshare -n bash ray_cluster.sh WORK [driver args]): only `lo` exists there, so
# nothing binds or connects outside the loopback. Runs ray_driver.py against it; the cluster is
# stopped on every exit path.
set -u
work="$1"; shift
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0
# Ray 2.60 turns token auth on for `ray start --head` when ~/.ray/auth_token exists (a private ray.init()
# writes one) but the second node then connects without it; this namespace holds only the loopback
export RAY_AUTH_MODE=disabled
trap 'ray stop --force >/dev/null 2>&1' EXIT
ray start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus=1 --include-dashboard=false \
  --disable-usage-stats >/dev/null 2>&1 || { echo "ray start --head failed" >&2; exit 3; }
ray start --address=127.0.0.1:6390 --node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats \
  >/dev/null 2>&1 || { echo "ray start (second node) failed" >&2; exit 4; }
python "$(dirname "$0")/ray_driver.py" --address 127.0.0.1:6390 --work "$work" "$@"
