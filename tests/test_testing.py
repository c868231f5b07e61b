"""The test helpers users import: ``asgi_mcp_metrics.testing`` and the pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from asgi_mcp_metrics import instrument_tool
from asgi_mcp_metrics.testing import UnknownMetricError, metric_delta, sample, total

from .docs import doc_block

DOC = Path(__file__).parent.parent / "docs" / "testing.md"


def _calls(registry: CollectorRegistry) -> Counter:
    counter = Counter("calls", "Calls.", ("tool", "outcome"), registry=registry)
    counter.labels("add", "ok").inc(2)
    counter.labels("add", "error").inc(3)
    counter.labels("sub", "ok").inc(5)
    return counter


def test_sample_reads_the_series_with_exactly_these_labels(registry: CollectorRegistry) -> None:
    _calls(registry)
    assert sample(registry, "calls_total", tool="add", outcome="error") == 3
    # A subset of the labels names no series: exact means exact.
    assert sample(registry, "calls_total", tool="add") == 0


def test_total_sums_over_the_labels_not_given(registry: CollectorRegistry) -> None:
    _calls(registry)
    assert total(registry, "calls_total", tool="add") == 5
    assert total(registry, "calls_total", outcome="ok") == 7
    assert total(registry, "calls_total") == 10


def test_metric_delta_counts_what_happened_inside_the_block(registry: CollectorRegistry) -> None:
    counter = _calls(registry)
    with metric_delta("calls_total", registry=registry, tool="add") as delta:
        counter.labels("add", "ok").inc()
        counter.labels("sub", "ok").inc(100)  # another tool: not counted
        assert delta.value == 1  # the rise so far
        counter.labels("add", "cancelled").inc(2)  # a new series of the same tool counts
    counter.labels("add", "ok").inc(7)  # after the block: not counted
    assert (delta.before, delta.after, delta.value) == (5, 8, 3)


def test_metric_delta_reads_the_global_registry_by_default() -> None:
    # The default registry is process-wide: a metric of a name no other test uses.
    counter = Counter("testing_default_registry_probe", "Probe.")
    try:
        with metric_delta("testing_default_registry_probe_total") as delta:
            counter.inc(4)
        assert delta.value == 4
    finally:
        from prometheus_client import REGISTRY

        REGISTRY.unregister(counter)


def test_a_catalog_metric_not_written_yet_reads_zero(registry: CollectorRegistry) -> None:
    assert sample(registry, "mcp_tool_calls_total", gen_ai_tool_name="add") == 0
    assert total(registry, "mcp_server_operation_duration_seconds_bucket") == 0
    with metric_delta("myapp_mcp_tool_calls_total", registry=registry) as delta:  # namespaced
        pass
    assert delta.value == 0


@pytest.mark.parametrize("read", [
    lambda r: sample(r, "mcp_tool_call_total"),
    lambda r: total(r, "mcp_tool_call_total"),
    lambda r: metric_delta("mcp_tool_call_total", registry=r).__enter__(),
])
def test_an_unknown_name_is_an_error_naming_the_closest(registry: CollectorRegistry,
                                                       read: object) -> None:
    with pytest.raises(UnknownMetricError, match=r"'mcp_tool_call_total'.*mcp_tool_calls_total"):
        read(registry)  # type: ignore[operator]


def test_a_user_metric_of_the_registry_is_known(registry: CollectorRegistry) -> None:
    _calls(registry)
    assert total(registry, "calls_created") > 0
    with pytest.raises(UnknownMetricError, match="calls_total"):
        total(registry, "call_total")


def test_the_helpers_see_the_library_record(registry: CollectorRegistry) -> None:
    @instrument_tool(registry=registry)
    def add(a: int, b: int) -> int:
        return a + b

    with metric_delta("mcp_tool_calls_total", registry=registry, gen_ai_tool_name="add") as d:
        add(1, 2)
    assert d.value == 1


def test_the_plugin_is_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins["asgi_mcp_metrics"] == "asgi_mcp_metrics.pytest_plugin"


@pytest.mark.parametrize("block", ["tool", "http"])
def test_the_docs_examples_pass_in_a_fresh_project(pytester: pytest.Pytester, block: str) -> None:
    # No "-p": the fixture comes from the installed entry point, as in a user's project.
    pytester.makepyfile(test_example=doc_block(DOC, block))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_docs_examples_can_fail(pytester: pytest.Pytester) -> None:
    # The control: the same example expecting one call too many fails.
    pytester.makepyfile(test_example=doc_block(DOC, "tool").replace(
        "assert calls.value == 2", "assert calls.value == 3"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
