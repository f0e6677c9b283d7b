"""Metrics counted in a turn of the event loop and handed to prometheus-client at its end
show what counting each at once would have shown."""

import asyncio
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from usersvc.telemetry import metrics

BUCKETS = metrics.HTTP_BUCKETS

# Durations around every bucket bound too: a value equal to a bound is in that bucket.
durations = st.lists(
    st.sampled_from(BUCKETS)
    | st.floats(min_value=0, max_value=20, allow_nan=False, allow_infinity=False),
    max_size=50,
)


def _samples(histogram: Histogram) -> dict[str, float]:
    [family] = histogram.collect()
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@settings(max_examples=300, deadline=None)
@given(before=durations, batch=durations)
def test_a_batch_is_observed_as_its_values_one_by_one(before, batch):
    one_by_one = Histogram("d", "d", buckets=BUCKETS, registry=CollectorRegistry())
    batched = Histogram("d", "d", buckets=BUCKETS, registry=CollectorRegistry())
    for value in before:
        one_by_one.observe(value)
        batched.observe(value)
    for value in batch:
        one_by_one.observe(value)
    metrics.observe_all(batched, batch)
    expected, got = _samples(one_by_one), _samples(batched)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        if name.startswith("d_sum"):  # added in another order: the same to rounding
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), name
        else:
            assert got[name] == value, name


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_what_a_turn_that_ended_requests_counted_is_in_the_registry_once_it_ends():
    labels = {"method": "GET", "route": "/test/turns", "status": "200"}
    before = _value("usersvc_http_requests_total", **labels)
    in_flight = _value("usersvc_http_requests_in_flight")
    metrics.request_started()
    metrics.request_started()
    metrics.request_started()
    metrics.request_ended("GET", "/test/turns", 200, 0.003)
    metrics.request_ended("GET", "/test/turns", 200, 0.2)
    assert _value("usersvc_http_requests_total", **labels) == before  # not yet
    await asyncio.sleep(0)  # the turn ends
    assert _value("usersvc_http_requests_total", **labels) == before + 2
    assert _value("usersvc_http_requests_in_flight") == in_flight + 1
    bucket = {"method": "GET", "route": "/test/turns", "le": "0.005"}
    assert _value("usersvc_http_request_duration_seconds_bucket", **bucket) == 1
    metrics.request_ended("GET", "/test/turns", 200, 0.01)
    metrics.flush()  # as a scrape does first
    assert _value("usersvc_http_requests_in_flight") == in_flight
    assert _value("usersvc_http_requests_total", **labels) == before + 3


async def test_a_start_waits_for_its_end_and_the_pool_for_the_timer(
    monkeypatch: pytest.MonkeyPatch,
):
    labels = {"method": "GET", "route": "/test/starts", "status": "200"}
    before = _value("usersvc_http_requests_total", **labels)
    in_flight = _value("usersvc_http_requests_in_flight")
    in_use = _value("usersvc_db_pool_connections_in_use")
    checkouts = _value("usersvc_db_pool_acquire_seconds_count")
    monkeypatch.setattr(metrics, "HAND_OVER_WITHIN", 60.0)
    metrics.request_started()
    metrics.acquired(time.perf_counter())
    await asyncio.sleep(0)  # a turn with no request's end: nothing handed over
    assert _value("usersvc_http_requests_in_flight") == in_flight
    assert _value("usersvc_db_pool_connections_in_use") == in_use
    metrics.released()
    metrics.request_ended("GET", "/test/starts", 200, 0.001)
    await asyncio.sleep(0)  # its end's turn: the start and the checkout with it
    assert _value("usersvc_http_requests_total", **labels) == before + 1
    assert _value("usersvc_http_requests_in_flight") == in_flight
    # The pool's checkouts wait for the timer (or a scrape's hand-over).
    assert _value("usersvc_db_pool_acquire_seconds_count") == checkouts
    metrics.flush()
    assert _value("usersvc_db_pool_acquire_seconds_count") == checkouts + 1


async def test_a_request_in_flight_for_long_is_handed_over_within_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
):
    in_flight = _value("usersvc_http_requests_in_flight")
    monkeypatch.setattr(metrics, "HAND_OVER_WITHIN", 0.01)
    metrics.request_started()
    for _ in range(500):
        if _value("usersvc_http_requests_in_flight") == in_flight + 1:
            break
        await asyncio.sleep(0.01)
    assert _value("usersvc_http_requests_in_flight") == in_flight + 1
    metrics.request_ended("GET", "/test/long", 200, 0.001)
    metrics.flush()
    assert _value("usersvc_http_requests_in_flight") == in_flight


def test_without_a_running_loop_a_count_is_handed_over_at_once():
    labels = {"method": "GET", "route": "/test/no-loop", "status": "404"}
    before = _value("usersvc_http_requests_total", **labels)
    metrics.observe_request("GET", "/test/no-loop", 404, 0.001)
    assert _value("usersvc_http_requests_total", **labels) == before + 1


async def test_commands_counted_in_a_turn_are_in_the_registry_once_it_ends():
    ok = {"command": "test_turn_command", "outcome": "ok"}
    taken = {"command": "test_turn_command", "outcome": "user_already_exists"}
    before_ok, before_taken = (
        _value("usersvc_commands_total", **ok),
        _value("usersvc_commands_total", **taken),
    )
    metrics.count_command("test_turn_command", "ok")
    metrics.count_command("test_turn_command", "ok")
    metrics.count_command("test_turn_command", "user_already_exists")
    assert _value("usersvc_commands_total", **ok) == before_ok  # not yet
    await asyncio.sleep(0)
    assert _value("usersvc_commands_total", **ok) == before_ok + 2
    assert _value("usersvc_commands_total", **taken) == before_taken + 1
