"""The report as text: the Markdown table and its sections (bench/results/latest.md), and
the files `bench/run` writes. The figures come from `bench.report.build`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import destination_scale


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _busy(cores: dict[str, float]) -> str:
    return ", ".join(f"{core} {busy:.0%} busy" for core, busy in sorted(cores.items()))


def _mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def _versus_unrouted_cell(row: dict[str, Any]) -> str:
    """`0.91, +8.2 µs`: rps ratio and CPU per request added, against the unrouted path."""
    ratio, extra = row.get("rps_vs_unrouted"), row.get("extra_cpu_us_per_req")
    if ratio is None and extra is None:
        return ""
    return f"{_fmt(ratio, '.2f')}, {'-' if extra is None else f'{extra:+.1f} µs'}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} µs"


def _routing_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What routing costs: each routed row against the unrouted mesh path of its run."""
    routed = [row for row in rows if row.get("unrouted")]
    if not routed:
        return []
    lines = [
        "",
        "‡ Routed mesh paths against the unrouted `gossamer-mesh` of the same protocol and run: "
        "rps ratio, and the proxy CPU per request they add. They run the same processes "
        "(client proxy, one server pod's inbound proxy and origin; a routed path's two "
        "endpoints are two addresses of that one pod), so the difference is the client "
        "proxy's routing and balancing. `gossamer-discovered` is the default mesh path, the one "
        "every meshed service takes (a Service without annotations or routes): the discovery "
        "and policy watches, the policy's default route, P2C over two endpoints and their two "
        "upstream connection pools; the target applies to it. `gossamer-routed` adds what a "
        "Service opts into: a header-match HTTPRoute rule tried on every request and the "
        "replay buffer its retry annotation makes the proxy keep; it is reported without a "
        "target. Neither is the cost of spreading the load over more processes; the server "
        "side's share should be near zero.",
        "",
        "**Routing cost**",
        "",
    ]
    for row in routed:
        client = row["proxies"][0]
        served = row.get("counted_by_endpoint", {})
        total = sum(served.values())
        split = "/".join(f"{n / total:.0%}" for n in served.values()) if total else "-"
        target = row.get("rps_target_vs_unrouted")
        lines.append(
            f"- {row['name']}: {_fmt(row.get('rps_vs_unrouted'), '.2f')}x the rps of "
            f"{row['unrouted']} "
            + (f"(target >= {target}); " if target is not None else "(reported, no target); ")
            + f"{_us(row.get('extra_cpu_us_per_req'))} CPU per request over the path: "
            f"{_us(row.get('client_extra_cpu_us_per_req'))} in the client's proxy "
            f"({_fmt(row['cpu_us_per_req_by_proxy'].get(client), '.1f')} µs/req), "
            f"{_us(row.get('server_extra_cpu_us_per_req'))} on the server side; the client's "
            f"proxy sent {split} of the requests to its {len(served)} endpoints "
            f"({', '.join(served)})"
        )
    return lines


def _reported_line(item: dict[str, Any]) -> str:
    """`route rules + retries (...) HTTP/1.1: 0.80x unrouted, +10.0 µs/req in the client
    proxy; against the default path: 0.91x, +3.2 µs/req (reported, no target)`."""
    rps, extra = item["rps_vs_unrouted"], item["client_extra_cpu_us_per_req"]
    text = (
        f"- {item['what']}: {_fmt(rps, '.2f')}x unrouted, "
        f"{'-' if extra is None else f'{extra:+.1f}'} µs/req in the client proxy"
    )
    rps_default = item["rps_vs_default"]
    extra_default = item["client_extra_cpu_us_per_req_vs_default"]
    if rps_default is not None or extra_default is not None:
        text += (
            f"; against the default path: {_fmt(rps_default, '.2f')}x, "
            f"{'-' if extra_default is None else f'{extra_default:+.1f}'} µs/req"
        )
    text += " (reported, no target)"
    if item.get("disturbed"):
        text += " (disturbed by other processes: rerun on a quiet machine)"
    return text


def _scale_lines(scale: dict[str, Any] | None) -> list[str]:
    """The destination service at scale, as a table of its phases."""
    if scale is None:
        return []
    lines = ["", "**Destination service at scale** (`python -m bench.destination_scale`)", ""]
    result = scale.get("result")
    if result is None:
        return [*lines, f"FAILED: {scale.get('error')}"]
    config, dest = result["config"], result["destination"]
    lines += [
        f"{config['services']:,} services x {config['pods_per_service']} pods "
        f"({config['endpoints']:,} endpoints), {config['watchers']} watchers, "
        f"{config['store']} polled every {config['store_poll_interval_s']:g} s; "
        f"{config['cores']}; all {config['watchers']} watchers answered "
        f"{config['exec_to_all_answered_s']} s after exec. Times are from a write to the "
        "store until every watcher of the service saw the change.",
        "",
        "| phase | changes | p50 ms | p99 ms | max ms | late |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, stats in destination_scale.rows(result):
        lines.append(
            f"| {name} | {stats['count']} | {_fmt(stats['p50_ms'], '.1f')} "
            f"| {_fmt(stats['p99_ms'], '.1f')} | {_fmt(stats['max_ms'], '.1f')} "
            f"| {stats['timeouts']} |"
        )
    lines += [
        "",
        f"Destination RSS: {dest['rss_empty_store_mib']} MiB on an empty store, "
        f"{dest['rss_after_sync_mib']} MiB after sync, peak {dest['peak_rss_mib']} MiB; CPU s: "
        + ", ".join(f"{name} {value}" for name, value in dest["cpu_s"].items())
        + ".",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Gossamer side-by-side benchmark ({s['mode']}, {s['rounds']} round(s))",
        "",
        f"{report['date']} · {report['cpu']}, {report['cores']} cores, load average "
        f"{' '.join(report['loadavg'])} and {_busy(report['core_busy_before_start'])} "
        "before start · commit "
        f"{report['commit']} · load generators and origins on cpu{s['cpu_load_and_origin']}, "
        f"proxies on cpu{s['cpu_proxies']} · throughput: wrk {s['h1_connections']} connections "
        f"(HTTP/1.1), h2load {s['h2_connections']}x{s['h2_streams_per_connection']} streams "
        f"(HTTP/2), {s['throughput_s']} s · latency: h2load at a fixed "
        f"{s['latency_rate_rps']} req/s, {s['latency_s']} s",
        "",
        "Every proxy (Gossamer, HAProxy, nginx) runs as a sidecar behind the same `gossamer init` "
        "iptables interception: the load generator dials the origin's (or next pod's) address, "
        "REDIRECT takes it to the sidecar on 127.0.0.1:4140, the next pod's to its sidecar on "
        "4143; sidecars run as uid 2102, which the rules let through.",
    ]
    if report["scenarios"]:
        lines += [
            "",
            "| scenario | rps | vs HAProxy | vs unrouted‡ | p50 ms | p99 ms | proxy CPU µs/req "
            "| proxy core | limited by | RSS idle MiB | RSS load MiB |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|",
        ]
    for row in report["scenarios"]:
        if row["status"] != "ok":
            lines.append(f"| {row['name']} | FAILED | | | | | | | | | |")
            continue
        versus = row.get("rps_vs_haproxy")
        util = row.get("proxy_core_util")
        certify_mark = "†" if row.get("unit") == "certificates" else ""
        lines.append(
            f"| {row['name']}{certify_mark}"
            f"{'*' if row['rounds_used'] == row['rounds_disturbed'] else ''} "
            f"| {row['rps']:,.0f} | {_fmt(versus, '.2f')} | {_versus_unrouted_cell(row)} "
            f"| {_fmt(row['p50_ms'], '.3f')} "
            f"| {_fmt(row['p99_ms'], '.3f')} | {_fmt(row.get('cpu_us_per_req'), '.1f')} "
            f"| {'-' if util is None else f'{util:.0%}'} | {row['limited_by']} "
            f"| {_mib(row.get('rss_kb_idle'))} | {_mib(row.get('rss_kb_load'))} |"
        )
    lines += _routing_lines(report["scenarios"])
    if report.get("certify"):
        lines += [
            "",
            f"† Certify: certificates issued per second by the identity service over gRPC "
            f"(CSR checked, join token checked against the store, leaf signed), closed loop "
            f"with {report['certify']['in_flight']} requests in flight; p50/p99 from that run; "
            "CPU per certificate, core and RSS are the identity service's.",
        ]
    reuse = [row for row in report["scenarios"] if row.get("tls_connections_opened")]
    if reuse:
        lines += ["", "**TLS connection reuse** (new connections to the TLS hop's server)", ""]
        for row in reuse:
            opened = row["tls_connections_opened"]
            lines.append(
                f"- {row['name']}: {opened['warmup']} in the warm-up runs, "
                f"{opened['throughput']} in the throughput runs, {opened['fixed_rate']} in the "
                f"fixed-rate runs ({row['tls_handshakes_per_1k_req']} per 1000 measured requests)"
            )
    lines += _scale_lines(report.get("destination_scale"))
    lines += ["", "**Targets**", ""]
    for target in report["targets"]:
        mark = {True: "MET", False: "MISSED", None: "UNKNOWN"}[target["met"]]
        caveat = " (disturbed by other processes: rerun on a quiet machine)"
        lines.append(
            f"- [{mark}] {target['target']}: {target['value']}"
            + (caveat if target.get("disturbed") else "")
        )
    lines += [_reported_line(item) for item in report.get("reported", [])]
    failed = [row for row in report["scenarios"] if row["status"] != "ok"]
    if failed:
        lines += ["", "**Failed scenarios**", ""]
        lines += [f"- {row['name']}: {row['error']}" for row in failed]
    if report["notes"]:
        lines += ["", "**Notes**", ""]
        lines += [f"- {note}" for note in report["notes"]]
    lines += [
        "",
        "RSS is per proxy process (the largest of the path's proxies); CPU per request is "
        "summed over the path's proxies. p50/p99 come from the fixed-rate run, rps from the "
        "saturated run. See bench/README.md.",
    ]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    for path, text in (
        (json_path, json.dumps(report, indent=2) + "\n"),
        (md_path, markdown(report)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return json_path, md_path
