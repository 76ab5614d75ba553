"""Metrics after real HTTP/1 traffic through the proxy: Linkerd's names, labels and counts."""

from __future__ import annotations

import asyncio
import socket

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gossamer.proxy.runtime import INBOUND, OUTBOUND, ProxyRuntime
from tests.proxy.support import Client, Request, origin, proxy, response, simple_origin
from tests.proxy.test_http1_failures import unused_port


def samples(runtime: ProxyRuntime, name: str) -> list[Sample]:
    text = runtime.metrics.render().decode()
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def value(found: list[Sample], **labels: str) -> float:
    matching = [s for s in found if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (labels, [s.labels for s in found])
    return matching[0].value


def by_status(request: Request) -> bytes:
    status = int(request.target.rsplit(b"/", 1)[1] or b"200")
    return response(status, b"x" * 10)


async def wait_idle(runtime: ProxyRuntime) -> None:
    for _ in range(300):
        if not runtime.connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("connections left open")


async def test_outbound_request_and_response_counts_with_labels() -> None:
    async with origin(simple_origin(by_status)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        plan = {"/s/200": 5, "/s/404": 2, "/s/500": 1, "/s/503": 3}
        for path, times in plan.items():
            for _ in range(times):
                await client.request(path=path, headers="")
        await client.close()
        await wait_idle(px.runtime)

    target = f"127.0.0.1:{up.port}"
    base = {
        "direction": "outbound",
        "authority": "test.example",
        "target_addr": target,
        "target_ip": "127.0.0.1",
        "target_port": str(up.port),
        "tls": "no_identity",
        "no_tls_reason": "not_provided_by_service_discovery",
    }
    requests = samples(px.runtime, "request_total")
    assert len(requests) == 1
    assert requests[0].labels == base
    assert requests[0].value == 11

    responses = samples(px.runtime, "response_total")
    assert value(responses, status_code="200") == 5
    assert value(responses, status_code="404") == 2
    assert value(responses, status_code="500") == 1
    assert value(responses, status_code="503") == 3
    for sample in responses:
        expected = "failure" if sample.labels["status_code"].startswith("5") else "success"
        assert sample.labels["classification"] == expected
        assert {k: v for k, v in sample.labels.items()
                if k not in ("status_code", "classification")} == base  # fmt: skip

    counts = samples(px.runtime, "response_latency_ms_count")
    assert value(counts, status_code="200") == 5
    buckets = samples(px.runtime, "response_latency_ms_bucket")
    assert value(buckets, status_code="200", le="+Inf") == 5
    assert value(buckets, status_code="200", le="10000") == 5  # loopback is not that slow

    # The connection-level metrics for the same traffic.
    opened = samples(px.runtime, "tcp_open_total")
    assert value(opened, peer="src") == 1
    assert value(opened, peer="dst") == 1
    assert value(samples(px.runtime, "tcp_open_connections"), peer="src") == 0
    assert value(samples(px.runtime, "tcp_read_bytes_total"), peer="dst") > 11 * 10


async def test_authority_comes_from_the_host_header() -> None:
    async with origin(simple_origin()) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for host in (
            "web.emojivoto.svc.cluster.local:80",
            "api.example",
            "web.emojivoto.svc.cluster.local:80",
        ):
            client.send(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert (await client.response()).status == 200
        await client.close()
    requests = samples(px.runtime, "request_total")
    assert value(requests, authority="web.emojivoto.svc.cluster.local:80") == 2
    assert value(requests, authority="api.example") == 1


async def test_authority_without_host_header() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET http://abs.example:8080/p HTTP/1.1\r\n\r\n")
        assert (await client.response()).status == 200
        client.send(b"GET http://[fd00::1]:81/p HTTP/1.1\r\n\r\n")
        assert (await client.response()).status == 200
        client.send(b"GET http://plain.example/p HTTP/1.1\r\n\r\n")
        assert (await client.response()).status == 200
        client.send(b"GET /p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert (await client.response()).status == 200
        await client.close()
    requests = samples(px.runtime, "request_total")
    # The absolute form's authority, port included, and the Host sent upstream agrees.
    assert value(requests, authority="abs.example:8080") == 1
    assert seen[0].header(b"host") == b"abs.example:8080"
    assert value(requests, authority="[fd00::1]:81") == 1
    assert seen[1].header(b"host") == b"[fd00::1]:81"
    assert value(requests, authority="plain.example") == 1
    # With neither, the target address stands in.
    assert value(requests, authority=f"127.0.0.1:{up.port}") == 1


async def test_inbound_direction_and_tls_labels() -> None:
    async with origin(simple_origin()) as up, proxy(up.addr, direction=INBOUND) as px:
        client = await Client.connect(px.port)
        assert (await client.request()).status == 200
        await client.close()
    (request,) = samples(px.runtime, "request_total")
    assert request.labels["direction"] == "inbound"
    assert request.labels["tls"] == "no_identity"
    assert request.labels["no_tls_reason"] == "no_tls_from_remote"


async def test_proxy_errors_are_counted_as_failures() -> None:
    async with proxy(("127.0.0.1", unused_port()), direction=OUTBOUND) as px:
        client = await Client.connect(px.port)
        for _ in range(2):
            assert (await client.request()).status == 502
        await client.close()
    assert value(samples(px.runtime, "request_total")) == 2
    responses = samples(px.runtime, "response_total")
    assert value(responses, status_code="502", classification="failure") == 2


async def test_pipelined_and_keep_alive_requests_are_each_counted_once() -> None:
    async with origin(simple_origin()) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n" * 7)
        for _ in range(7):
            assert (await client.response()).status == 200
        client.send(b"HEAD / HTTP/1.1\r\nHost: p\r\n\r\n")
        await client.response(head_request=True)
        await client.close()
    assert value(samples(px.runtime, "request_total")) == 8
    assert value(samples(px.runtime, "response_total"), status_code="200") == 8


async def test_a_reset_by_the_client_is_labelled_with_its_errno() -> None:
    async with origin(simple_origin()) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        assert (await client.request()).status == 200
        sock = client.writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + bytes(4))
        client.writer.transport.abort()
        await wait_idle(px.runtime)
    closes = samples(px.runtime, "tcp_close_total")
    assert value(closes, peer="src", errno="ECONNRESET") == 1
