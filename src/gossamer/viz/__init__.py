"""viz: the mesh's golden metrics, computed from Prometheus, for the CLI and the dashboard.

- `promql`: pure PromQL builders (selectors, label maps, the stat queries). No I/O.
- `prometheus`: a thin client of Prometheus' HTTP API (instant queries, scrape targets).
- `inventory`: what the store says exists (workloads, pods, services, meshed counts) and how
  outbound traffic maps to it, as pure functions over resources.
- `stat`: `StatRequest` in, `StatRow`s out: the store's rows joined with query results.
- `render`: rows as Linkerd's table or as JSON.
- `proxyadmin`: a proxy's admin server (`/metrics`) over a socket the caller makes.
- `errors`: `VizError` and its kinds; the CLI turns them into messages at one boundary.

May import `gossamer.core` and the store interface; never the CLI, the proxy or the local
runtime, so the dashboard and a Kubernetes mode can reuse all of it.
"""
