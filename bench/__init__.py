"""The side-by-side benchmark: Gossamer against direct, HAProxy and nginx on the mesh path,
in plaintext and with mutual TLS, and the identity service's Certify rate.

`bench/run` is the entry point (see README.md). The pieces, in the order a run uses them:

- `settings`: durations, connection counts, the fixed latency rate and the CPU pinning plan.
- `testbed`: the pods, origin servers and proxy instances, as data.
- `scenarios`: what is measured (client pod, target, which proxies count), as data.
- `configs`: HAProxy and nginx configuration files rendered from the testbed data.
- `bringup`: starts the testbed in the pod sandbox of `gossamer.local` (with the mesh's
  control plane and certificates for the mTLS paths).
- `loadgen`: wrk and h2load command lines and the parsing of their output.
- `procstat`: CPU time, RSS and per-core busy time from /proc.
- `runner`: one scenario once (warm-up, throughput, fixed-rate latency, checks).
- `certify`: the Certify requests and driver (and a standalone measurement).
- `report`: medians over rounds, ratios to HAProxy, targets, JSON and markdown.

This package measures; it is not a test suite and asserts nothing about speed.
"""
