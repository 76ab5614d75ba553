"""`gossamer check`: health checks as data, and the checks of each mode.

- `framework`: `Check` (a description, an async function, a hint), `Category` (a named list
  of checks), `run_checks` (runs them in order, retries failures until a deadline, never lets
  one check's exception end the run) and `CheckResult`.
- `local`: local mode's categories (state directory, control plane, identity, Prometheus,
  data plane) over a `LocalCheckContext` (`context`); `identity` holds the identity checks,
  which ask the identity service a question through `grpcprobe` (one unary gRPC call over a
  socket made in the node's namespace).

A Kubernetes mode adds its own module of categories over its own context; the framework and
the CLI's rendering stay as they are. May import gossamer's libraries, never the CLI.
"""
