"""The store contract: what every backend must do, run against each (see conftest)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from gossamer.control.store import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    StoreError,
    WatchEvent,
)
from gossamer.control.store.changelog import ChangeLogStore
from gossamer.core.resources import (
    ObjectMeta,
    PodPhase,
    PodStatus,
    Resource,
    ServicePort,
    ServiceSpec,
)
from tests.control.conftest import StoreFactory
from tests.control.support import (
    ADDED,
    DELETED,
    RESET,
    SYNCED,
    WatchRecorder,
    pod,
    service,
    summary,
    with_labels,
    with_port,
)

Record = Callable[[AsyncIterator[WatchEvent]], WatchRecorder]


# CRUD


async def test_create_sets_identity_version_and_time(store: ChangeLogStore) -> None:
    created = await store.create(service("web"))
    assert created.metadata.uid and created.resource_version
    assert created.metadata.creation_timestamp.endswith("Z")
    assert await store.get("Service", "demo", "web") == created
    assert replace(
        created,
        metadata=replace(created.metadata, uid="", resource_version="", creation_timestamp=""),
    ) == service("web")


async def test_create_ignores_client_uid_and_timestamp(store: ChangeLogStore) -> None:
    sent = replace(
        service("web"),
        metadata=replace(
            service("web").metadata, uid="mine", creation_timestamp="2000-01-01T00:00:00Z"
        ),
    )
    created = await store.create(sent)
    assert created.metadata.uid != "mine"
    assert created.metadata.creation_timestamp != "2000-01-01T00:00:00Z"


async def test_create_twice_is_already_exists(store: ChangeLogStore) -> None:
    await store.create(service("web"))
    with pytest.raises(AlreadyExists, match=r"^Service demo/web already exists$"):
        await store.create(service("web"))


async def test_create_refuses_a_resource_version(store: ChangeLogStore) -> None:
    sent = replace(service("web"), metadata=replace(service("web").metadata, resource_version="3"))
    with pytest.raises(Invalid, match=r"metadata\.resourceVersion: must not be set when creating"):
        await store.create(sent)


async def test_every_write_is_validated(store: ChangeLogStore) -> None:
    built = Resource(
        api_version="v1",
        kind="Service",
        metadata=ObjectMeta(name="web", namespace="demo"),
        spec=ServiceSpec(ports=(ServicePort(port=70000),)),
    )
    message = re.escape(
        "Service demo/web: spec.ports[0].port: must be an integer from 1 to 65535 (got 70000)"
    )
    with pytest.raises(Invalid, match=message) as raised:
        await store.create(built)
    assert raised.value.error is not None
    with pytest.raises(Invalid, match=message):
        await store.apply(built)
    stored = await store.create(service("web"))
    with pytest.raises(Invalid, match=message):
        await store.update(replace(stored, spec=built.spec))
    with pytest.raises(Invalid, match=r"spec: required"):
        await store.update(replace(stored, spec=None))
    assert await store.get("Service", "demo", "web") == stored


async def test_unknown_kinds_are_invalid(store: ChangeLogStore) -> None:
    for call in (
        store.get("Deployment", "demo", "web"),
        store.list("Deployment"),
        store.delete("Deployment", "demo", "web"),
        store.create(replace(service("web"), kind="Deployment")),
    ):
        with pytest.raises(Invalid, match="unknown kind Deployment"):
            await call
    with pytest.raises(Invalid, match="unknown kind Deployment"):
        await anext(store.watch("Deployment"))


async def test_get_missing_is_not_found(store: ChangeLogStore) -> None:
    with pytest.raises(NotFound, match=r"^Service demo/web not found$") as raised:
        await store.get("Service", "demo", "web")
    assert (raised.value.kind, raised.value.namespace, raised.value.name) == (
        "Service",
        "demo",
        "web",
    )


async def test_update_replaces_user_fields_and_keeps_the_rest(store: ChangeLogStore) -> None:
    created = await store.create(pod("web-1"))
    with_status = await store.update_status(
        replace(created, status=PodStatus(phase=PodPhase.RUNNING))
    )
    request = replace(with_labels(with_status, app="api"), status=PodStatus(phase=PodPhase.FAILED))
    updated = await store.update(request)
    assert updated.metadata.labels == {"app": "api"}
    assert updated.status == PodStatus(phase=PodPhase.RUNNING), "update must not write status"
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert (
        int(updated.resource_version)
        > int(with_status.resource_version)
        > int(created.resource_version)
    )


async def test_update_with_a_stale_version_is_a_conflict(store: ChangeLogStore) -> None:
    first = await store.create(service("web"))
    second = await store.update(with_labels(first, tier="front"))
    with pytest.raises(
        Conflict,
        match=re.escape(
            "Service demo/web: the object has been modified (resourceVersion "
            f"{second.resource_version}, not {first.resource_version})"
        ),
    ):
        await store.update(with_labels(first, tier="back"))
    assert await store.get("Service", "demo", "web") == second


async def test_update_without_a_version_is_unconditional(store: ChangeLogStore) -> None:
    await store.create(service("web"))
    updated = await store.update(with_labels(service("web"), tier="front"))
    assert updated.metadata.labels == {"tier": "front"}


async def test_update_of_a_recreated_object_is_a_conflict(store: ChangeLogStore) -> None:
    old = await store.create(service("web"))
    await store.delete("Service", "demo", "web")
    await store.create(service("web"))
    stale = replace(
        with_labels(old, tier="x"),
        metadata=replace(with_labels(old, tier="x").metadata, resource_version=""),
    )
    with pytest.raises(Conflict, match="has since been replaced"):
        await store.update(stale)


async def test_update_missing_is_not_found(store: ChangeLogStore) -> None:
    with pytest.raises(NotFound):
        await store.update(service("web"))
    with pytest.raises(NotFound):
        await store.update_status(pod("web-1", status=PodStatus()))


async def test_apply_creates_then_replaces_spec_and_keeps_status(store: ChangeLogStore) -> None:
    created = await store.apply(pod("web-1"))
    assert created.status is None
    running = await store.update_status(replace(created, status=PodStatus(phase=PodPhase.RUNNING)))
    changed = with_labels(pod("web-1"), app="web", tier="front")
    applied = await store.apply(changed)
    assert applied.metadata.labels == {"app": "web", "tier": "front"}
    assert applied.status == running.status, "apply without a status keeps the stored one"
    assert applied.metadata.uid == created.metadata.uid
    replaced = await store.apply(replace(changed, status=PodStatus(phase=PodPhase.SUCCEEDED)))
    assert replaced.status == PodStatus(phase=PodPhase.SUCCEEDED)


async def test_apply_checks_a_given_version(store: ChangeLogStore) -> None:
    first = await store.apply(service("web"))
    await store.apply(with_port(service("web"), 81))
    with pytest.raises(Conflict):
        await store.apply(with_port(first, 82))
    with pytest.raises(NotFound):
        await store.apply(
            replace(service("api"), metadata=replace(service("api").metadata, resource_version="1"))
        )


async def test_writes_that_change_nothing_keep_the_version(
    store: ChangeLogStore, record: Record
) -> None:
    created = await store.apply(service("web"))
    watch = record(store.watch("Service"))
    await watch.take_snapshot()
    assert await store.apply(service("web")) == created
    assert await store.update(created) == created
    assert await store.update_status(created) == created
    # A spec written in another form but with the same meaning (targetPort defaulted) is no change.
    assert await store.apply(with_port(service("web"), 80)) == created
    await watch.nothing_more()


async def test_update_status_writes_only_the_status(store: ChangeLogStore) -> None:
    created = await store.create(pod("web-1"))
    status = PodStatus(phase=PodPhase.RUNNING, pod_ip="10.77.0.5", ready=True, pids={"app": 42})
    request = replace(with_labels(created, app="changed"), status=status)
    updated = await store.update_status(request)
    assert updated.status == status
    assert updated.metadata.labels == {"app": "web"}, "update_status must not write metadata"
    with pytest.raises(Conflict):
        await store.update_status(replace(created, status=PodStatus(phase=PodPhase.FAILED)))
    with pytest.raises(
        Invalid, match=r"Pod demo/web-1: status.podIP: must be an IPv4 or IPv6 address"
    ):
        await store.update_status(replace(updated, status=replace(status, pod_ip="nowhere")))


async def test_delete(store: ChangeLogStore) -> None:
    created = await store.create(service("web"))
    assert await store.delete("Service", "demo", "web") is True
    with pytest.raises(NotFound):
        await store.get("Service", "demo", "web")
    with pytest.raises(NotFound, match=r"^Service demo/web not found$"):
        await store.delete("Service", "demo", "web")
    assert await store.delete("Service", "demo", "web", missing_ok=True) is False
    again = await store.create(service("web"))
    assert again.metadata.uid != created.metadata.uid
    with pytest.raises(Conflict, match="not deleted"):
        await store.delete("Service", "demo", "web", resource_version=created.resource_version)
    assert await store.delete("Service", "demo", "web", resource_version=again.resource_version)


async def test_list_by_kind_namespace_and_selector(store: ChangeLogStore) -> None:
    await store.create(service("web", "demo", labels={"tier": "front"}))
    await store.create(service("api", "demo", labels={"tier": "back"}))
    await store.create(service("web", "other", labels={"tier": "front"}))
    await store.create(pod("web-1", "demo"))
    everything = await store.list("Service")
    assert [(r.namespace, r.name) for r in everything] == [
        ("demo", "api"),
        ("demo", "web"),
        ("other", "web"),
    ]
    assert [r.name for r in await store.list("Service", "demo")] == ["api", "web"]
    front = await store.list("Service", selector={"tier": "front"})
    assert [(r.namespace, r.name) for r in front] == [("demo", "web"), ("other", "web")]
    assert list(await store.list("Service", "demo", {"tier": "front", "app": "x"})) == []
    assert list(await store.list("Service", "nowhere")) == []
    assert [r.kind for r in await store.list("Pod")] == ["Pod"]
    assert len(everything) == 3 and everything[0].name == "api"
    assert int(everything.resource_version) == max(
        int(r.resource_version) for r in (*(await store.list("Pod")), *everything)
    )


async def test_resource_versions_increase_across_kinds(store: ChangeLogStore) -> None:
    versions = [
        int((await store.create(service("web"))).resource_version),
        int((await store.create(pod("web-1"))).resource_version),
        int((await store.update(with_labels(service("web"), a="b"))).resource_version),
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3


# Watch


async def test_watch_starts_with_a_snapshot(store: ChangeLogStore, record: Record) -> None:
    await store.create(service("web", "demo"))
    await store.create(service("api", "demo"))
    await store.create(service("web", "other"))
    await store.create(pod("web-1"))
    listed = await store.list("Service")
    snapshot = await record(store.watch("Service")).take_snapshot()
    assert summary(snapshot) == [
        ("RESET", ""),
        ("ADDED", "demo/api"),
        ("ADDED", "demo/web"),
        ("ADDED", "other/web"),
        ("SYNCED", ""),
    ]
    assert snapshot[-1].resource_version == listed.resource_version
    assert [event.resource for event in snapshot[1:-1]] == list(listed)
    assert all(
        event.resource_version == event.resource.resource_version
        for event in snapshot[1:-1]
        if event.resource
    )


async def test_watch_streams_changes_in_order(store: ChangeLogStore, record: Record) -> None:
    watch = record(store.watch("Service"))
    assert summary(await watch.take_snapshot()) == [("RESET", ""), ("SYNCED", "")]
    created = await store.create(service("web"))
    updated = await store.update(with_labels(created, tier="front"))
    await store.create(pod("web-1"))  # another kind: not in this watch
    await store.delete("Service", "demo", "web")
    events = await watch.take(3)
    assert summary(events) == [
        ("ADDED", "demo/web"),
        ("MODIFIED", "demo/web"),
        ("DELETED", "demo/web"),
    ]
    assert events[0].resource == created
    assert events[1].resource == updated
    deleted = events[2].resource
    assert deleted is not None and deleted.metadata.labels == {"tier": "front"}, "the last state"
    versions = [int(event.resource_version) for event in events]
    assert versions == sorted(versions) and int(deleted.resource_version) == versions[2]
    await watch.nothing_more()


async def test_watch_of_one_namespace(store: ChangeLogStore, record: Record) -> None:
    await store.create(service("web", "other"))
    watch = record(store.watch("Service", "demo"))
    assert summary(await watch.take_snapshot()) == [("RESET", ""), ("SYNCED", "")]
    await store.create(service("web", "other2"))
    await store.create(service("web", "demo"))
    assert summary(await watch.take(1)) == [("ADDED", "demo/web")]
    await watch.nothing_more()


async def test_watch_resumes_from_a_version(store: ChangeLogStore, record: Record) -> None:
    await store.create(service("web"))
    synced = (await record(store.watch("Service")).take_snapshot())[-1]
    await store.create(service("api"))
    await store.delete("Service", "demo", "web")
    resumed = record(store.watch("Service", since=synced.resource_version))
    assert summary(await resumed.take(2)) == [("ADDED", "demo/api"), ("DELETED", "demo/web")]
    await resumed.nothing_more()


async def test_watch_from_an_unknown_version_starts_with_a_snapshot(
    store: ChangeLogStore, record: Record
) -> None:
    await store.create(service("web"))
    ahead = record(store.watch("Service", since="999999"))
    assert summary(await ahead.take_snapshot()) == [
        ("RESET", ""),
        ("ADDED", "demo/web"),
        ("SYNCED", ""),
    ]
    with pytest.raises(Invalid, match="since must be a resourceVersion of this store"):
        await anext(store.watch("Service", since="yesterday"))


async def test_the_first_snapshot_is_the_state_when_the_watch_first_reads(
    make_store: StoreFactory, record: Record
) -> None:
    store = make_store(change_log_size=5)
    await store.create(service("old"))
    await store.create(service("kept"))
    watch = record(store.watch("Service"))
    # Store calls do not yield to the loop, so the recorder first runs after all of these.
    for index in range(8):
        await store.create(service(f"new{index}"))
    await store.delete("Service", "demo", "old")
    await store.update(with_labels(service("kept"), now="changed"))
    first = await watch.take_snapshot()
    names = [name for _, name in summary(first)[1:-1]]
    assert "demo/old" not in names and "demo/kept" in names and len(names) == 9
    await watch.nothing_more()


async def test_a_watcher_behind_by_more_than_the_log_gets_a_reset(make_store: StoreFactory) -> None:
    store = make_store(change_log_size=5)
    await store.create(service("old"))
    await store.create(service("kept"))
    events = store.watch("Service")
    snapshot = [await anext(events) for _ in range(4)]
    assert summary(snapshot) == [
        ("RESET", ""),
        ("ADDED", "demo/kept"),
        ("ADDED", "demo/old"),
        ("SYNCED", ""),
    ]
    # The watcher reads nothing while ten changes happen; the log keeps five.
    for index in range(8):
        await store.create(service(f"new{index}"))
    await store.delete("Service", "demo", "old")
    kept = await store.update(with_labels(service("kept"), now="changed"))
    reset = [await anext(events) for _ in range(1 + 9 + 1)]
    assert summary(reset) == [("RESET", "")] + [
        ("ADDED", f"demo/{name}") for name in ["kept"] + [f"new{i}" for i in range(8)]
    ] + [("SYNCED", "")]
    assert reset[1].resource == kept, "after a reset, the latest state"
    assert reset[-1].resource_version == (await store.list("Service")).resource_version
    # Then the stream goes on with single changes again.
    await store.delete("Service", "demo", "kept")
    assert summary([await anext(events)]) == [("DELETED", "demo/kept")]
    await events.aclose()


async def test_a_watcher_behind_within_the_log_misses_nothing(make_store: StoreFactory) -> None:
    store = make_store(change_log_size=50)
    events = store.watch("Service")
    assert summary([await anext(events), await anext(events)]) == [("RESET", ""), ("SYNCED", "")]
    for index in range(10):
        await store.create(service(f"s{index}"))
        await store.delete("Service", "demo", f"s{index}")
    got = [await anext(events) for _ in range(20)]
    assert [event.type for event in got] == [ADDED, DELETED] * 10
    await events.aclose()


async def test_watch_batches_long_backlogs(make_store: StoreFactory) -> None:
    store = make_store(change_log_size=2000)
    events = store.watch("Pod")
    await anext(events), await anext(events)
    for index in range(1200):
        await store.create(pod(f"p{index}"))
    got = [await anext(events) for _ in range(1200)]
    assert [event.resource.name for event in got if event.resource] == [
        f"p{i}" for i in range(1200)
    ]
    await events.aclose()


async def test_two_watchers_see_the_same_changes(store: ChangeLogStore, record: Record) -> None:
    first, second = record(store.watch("Service")), record(store.watch("Service"))
    await first.take_snapshot()
    await second.take_snapshot()
    await store.create(service("web"))
    await store.update(with_labels(service("web"), a="b"))
    assert (
        summary(await first.take(2))
        == summary(await second.take(2))
        == [("ADDED", "demo/web"), ("MODIFIED", "demo/web")]
    )


async def test_closing_the_store_ends_its_watches(store: ChangeLogStore, record: Record) -> None:
    watch = record(store.watch("Service"))
    await watch.take_snapshot()
    await store.close()
    assert await watch.end() == []
    await store.close()  # closing twice is fine


async def test_leaving_a_watch_stops_it(store: ChangeLogStore) -> None:
    async for event in store.watch("Service"):
        assert event.type is RESET
        break
    events = store.watch("Service")
    assert [(await anext(events)).type, (await anext(events)).type] == [RESET, SYNCED]
    await events.aclose()
    await store.create(service("web"))
    with pytest.raises(StopAsyncIteration):
        await anext(events)


async def test_a_defaulted_namespace_is_the_stored_identity(store: ChangeLogStore) -> None:
    """An object built in code with an empty namespace is stored in `default`, and finds
    the object already there instead of silently replacing it."""
    first = await store.create(service("web", "default"))
    unnamespaced = replace(service("web"), metadata=replace(service("web").metadata, namespace=""))
    with pytest.raises(AlreadyExists, match=r"^Service default/web already exists$"):
        await store.create(unnamespaced)
    assert await store.apply(unnamespaced) == first


async def test_a_closed_store_refuses_every_call(store: ChangeLogStore) -> None:
    await store.create(service("web"))
    await store.close()
    for call in (
        store.get("Service", "demo", "web"),
        store.list("Service"),
        store.create(service("api")),
        store.apply(service("api")),
        store.delete("Service", "demo", "web"),
    ):
        with pytest.raises(StoreError, match=r"^the store is closed$"):
            await call
    with pytest.raises(StoreError, match=r"^the store is closed$"):
        await anext(store.watch("Service"))
