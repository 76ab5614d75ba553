"""`viz stat`: golden metrics per workload, pod or service.

Three steps, the first and last pure:

1. `plan_stat(request, inventory)`: the rows (from the store) and the queries that feed them.
   Inbound (the default) reads each row's own proxies, grouped by the `deployment` or `pod`
   label. Outbound (`--from deploy/X`, and every `svc` stat, since a Service has no proxy of
   its own) reads the clients' proxies and derives a `dst_resource` label (`ns/name`) from
   `authority` and `target_ip` to group by (see `inventory.target_patterns`).
2. `run_queries`: the instant queries, concurrently, through a `PrometheusClient`.
3. `join_results(plan, results)`: one `StatRow` per row. A row without requests in the window
   has no success rate, RPS or latency (shown as "-", as Linkerd does). `--from X` without a
   row name leaves out the rows X sent nothing to.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gossamer.control.store import NotFound, Store
from gossamer.viz.errors import InvalidRequest, ResourceNotFound
from gossamer.viz.inventory import (
    Inventory,
    ResourceRef,
    RowIdentity,
    StatKind,
    load_inventory,
    row_identities,
    target_patterns,
)
from gossamer.viz.prometheus import PrometheusClient, Sample
from gossamer.viz.promql import (
    DEFAULT_WINDOW_S,
    LabelRule,
    Matcher,
    StatQueries,
    StatScope,
    stat_queries,
)

DST_LABEL = "dst_resource"
RowKey = tuple[str, str]

# The label naming a row in inbound metrics (Prometheus' target labels of the proxies).
_INBOUND_LABEL = {StatKind.DEPLOY: "deployment", StatKind.POD: "pod"}
_STORE_KIND = {StatKind.DEPLOY: "Workload", StatKind.POD: "Pod", StatKind.SVC: "Service"}


@dataclass(frozen=True, slots=True)
class StatRequest:
    """What `viz stat` was asked: `kind [name]` in a namespace (None: all of them), read
    from the rows' own proxies, or from `source`'s outbound side."""

    kind: StatKind
    namespace: str | None
    name: str | None = None
    source: ResourceRef | None = None
    window_s: float = DEFAULT_WINDOW_S


@dataclass(frozen=True, slots=True)
class StatRow:
    kind: StatKind
    namespace: str
    name: str
    meshed: int
    pods: int
    success_rate: float | None = None  # 0..1
    rps: float | None = None
    latency_ms: Mapping[float, float | None] = field(default_factory=dict)  # quantile -> ms
    tcp_connections: float | None = None

    @property
    def has_traffic(self) -> bool:
        return self.rps is not None


@dataclass(frozen=True, slots=True)
class StatPlan:
    kind: StatKind
    rows: tuple[RowIdentity, ...]
    queries: StatQueries
    key_labels: tuple[str, ...]  # the labels of a result naming its row
    # `--from X` without a name asks what X talks to: rows X sends nothing to are left out.
    only_with_traffic: bool = False

    def key_of(self, labels: Mapping[str, str]) -> RowKey | None:
        if self.key_labels == (DST_LABEL,):
            namespace, slash, name = labels.get(DST_LABEL, "").partition("/")
            return (namespace, name) if slash else None
        namespace, name = (labels.get(label, "") for label in self.key_labels)
        return (namespace, name) if name else None


@dataclass(frozen=True, slots=True)
class StatResults:
    """The result vectors of a plan's queries."""

    responses: Sequence[Sample] = ()
    requests: Sequence[Sample] = ()
    latency: Mapping[float, Sequence[Sample]] = field(default_factory=dict)
    tcp_connections: Sequence[Sample] = ()


def plan_stat(request: StatRequest, inventory: Inventory) -> StatPlan:
    rows = tuple(row_identities(inventory, request.kind, request.name))
    if request.source is None and request.kind is not StatKind.SVC:
        label = _INBOUND_LABEL[request.kind]
        matchers = [Matcher("direction", "inbound")]
        if request.namespace is not None:
            matchers.append(Matcher("namespace", request.namespace))
        if request.name is not None:
            matchers.append(Matcher(label, request.name))
        key_labels = ("namespace", label)
        scope = StatScope(
            matchers=tuple(matchers),
            group_by=key_labels,
            tcp_peer="src",
            window_s=request.window_s,
        )
        return StatPlan(request.kind, rows, stat_queries(scope), key_labels)

    matchers = [Matcher("direction", "outbound")]
    if request.source is not None:
        matchers.append(Matcher("namespace", request.source.namespace))
        matchers.append(Matcher(_INBOUND_LABEL[request.source.kind], request.source.name))
    http_rules: list[LabelRule] = []
    tcp_rules: list[LabelRule] = []
    for target in target_patterns(inventory, request.kind, rows):
        value = f"{target.namespace}/{target.name}"
        if target.authority is not None:
            http_rules.append(LabelRule(DST_LABEL, value, "authority", target.authority))
        if target.target_ip is not None:
            tcp_rules.append(LabelRule(DST_LABEL, value, "target_ip", target.target_ip))
    scope = StatScope(
        matchers=tuple(matchers),
        group_by=(DST_LABEL,),
        tcp_peer="dst",
        window_s=request.window_s,
        http_rules=tuple(http_rules),
        tcp_rules=tuple(tcp_rules),
    )
    return StatPlan(
        request.kind,
        rows,
        stat_queries(scope),
        (DST_LABEL,),
        only_with_traffic=request.source is not None and request.name is None,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def join_results(plan: StatPlan, results: StatResults) -> list[StatRow]:
    """One row per planned row, in the plan's order, with what the results say of it."""
    success: dict[RowKey, float] = {}
    responses: dict[RowKey, float] = {}
    for sample in results.responses:
        key = plan.key_of(sample.labels)
        if key is None or not math.isfinite(sample.value):
            continue
        responses[key] = responses.get(key, 0.0) + sample.value
        if sample.labels.get("classification") == "success":
            success[key] = success.get(key, 0.0) + sample.value
    requests = _by_key(plan, results.requests)
    tcp = _by_key(plan, results.tcp_connections)
    latency = {q: _by_key(plan, samples) for q, samples in results.latency.items()}

    out: list[StatRow] = []
    for row in plan.rows:
        key = row.key
        total = responses.get(key, 0.0)
        rps = requests.get(key)
        traffic = total > 0 or (rps is not None and rps > 0)
        out.append(
            StatRow(
                kind=plan.kind,
                namespace=row.namespace,
                name=row.name,
                meshed=row.meshed,
                pods=row.pods,
                success_rate=success.get(key, 0.0) / total if total > 0 else None,
                rps=(rps or 0.0) if traffic else None,
                latency_ms=(
                    {q: _finite(by_key.get(key, math.nan)) for q, by_key in latency.items()}
                    if traffic
                    else {}
                ),
                tcp_connections=tcp.get(key),
            )
        )
    return [row for row in out if row.has_traffic] if plan.only_with_traffic else out


def _by_key(plan: StatPlan, samples: Sequence[Sample]) -> dict[RowKey, float]:
    out: dict[RowKey, float] = {}
    for sample in samples:
        key = plan.key_of(sample.labels)
        if key is not None and math.isfinite(sample.value):
            out[key] = out.get(key, 0.0) + sample.value
    return out


async def run_queries(client: PrometheusClient, queries: StatQueries) -> StatResults:
    """Every query of a stat, concurrently (each in a thread: the client is synchronous)."""
    quantiles = [q for q, _ in queries.latency]
    texts = [
        queries.responses,
        queries.requests,
        queries.tcp_connections,
        *(text for _, text in queries.latency),
    ]
    vectors = await asyncio.gather(*(asyncio.to_thread(client.query, text) for text in texts))
    responses, requests, tcp, *latencies = vectors
    return StatResults(
        responses=responses,
        requests=requests,
        latency=dict(zip(quantiles, latencies, strict=True)),
        tcp_connections=tcp,
    )


async def _require(store: Store, ref: ResourceRef) -> None:
    try:
        await store.get(_STORE_KIND[ref.kind], ref.namespace, ref.name)
    except NotFound:
        raise ResourceNotFound(ref.kind, ref.namespace, ref.name) from None


async def run_stat(store: Store, client: PrometheusClient, request: StatRequest) -> list[StatRow]:
    """The rows of a stat, read from the store and Prometheus now."""
    if request.source is not None:
        if request.source.kind is StatKind.SVC:
            raise InvalidRequest("--from takes a workload or a pod (deploy/NAME, pod/NAME)")
        await _require(store, request.source)
    if request.name is not None and request.namespace is not None:
        await _require(store, ResourceRef(request.kind, request.namespace, request.name))
    inventory = await load_inventory(store, request.namespace)
    plan = plan_stat(request, inventory)
    return join_results(plan, await run_queries(client, plan.queries))
