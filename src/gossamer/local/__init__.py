"""The local runtime: pods as network namespaces on one host, and the rules that mesh them.

The sandbox (tests, benchmarks and local mode share it):

- `iptables`: the nat rules of `gossamer init`, built without I/O.
- `init_rules`: applies and removes those rules in the current namespace.
- `netns`: a node namespace with a bridge, pods with veths on it (random names for tests,
  `Node.open_or_create` for local mode's fixed name); `pod` runs commands in a pod;
  `addresses`, `process`, `probe` and `runlock` (which runs are alive) serve both.

Local mode (`gossamer up`/`run`/`down`, one mesh per state directory):

- `state`: the state directory and its files; `errors`: what the CLI reports.
- `launcher`: `up` and `down` on the host side; `preflight` checks the host first.
- `supervisor/`: the daemon in the node namespace (controllers, Prometheus, destination).
- Pure parts: `backoff` (restart delays), `vips` (service addresses), `hosts` (pod name
  files), `servicerules` (node DNAT), `prometheus_config`.
- `workloadrequest`, `resourceops`, `podaccess`: what `run`, `apply`/`delete` and
  `exec`/`logs` do, over the store interface.
- `ownership` (which PIDs are ours), `nssocket` (sockets in a pod's namespace), `teardown`.

Nothing here may touch the host's own network namespace beyond creating and deleting named
namespaces: links, addresses and routes live only inside namespaces this package made.
"""
