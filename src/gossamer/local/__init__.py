"""The local runtime: pods as network namespaces on one host, and the rules that mesh them.

- `iptables`: the nat rules of `gossamer init`, built without I/O.
- `init_rules`: applies and removes those rules in the current namespace.
- `netns`: the pod sandbox (a node namespace with a bridge, pods with veths on it), used by
  tests, benchmarks and local mode; `pod` runs commands in a pod; `addresses`, `process`,
  `probe` and `runlock` (which runs are alive) serve both.

Nothing here may touch the host's own network namespace beyond creating and deleting named
namespaces: links, addresses and routes live only inside namespaces this package made.
"""
