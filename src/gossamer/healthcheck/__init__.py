"""`gossamer check`: health checks as data, and the checks of each mode.

- `framework`: `Check` (a description, an async function, a hint), `Category` (a named list
  of checks), `run_checks` (runs them in order, retries failures until a deadline, never lets
  one check's exception end the run) and `CheckResult`.
- `local`: local mode's categories (state directory, control plane, Prometheus, data plane)
  over a `LocalCheckContext`.

A Kubernetes mode adds its own module of categories over its own context; the framework and
the CLI's rendering stay as they are. May import gossamer's libraries, never the CLI.
"""
