"""The Grafana dashboards and Prometheus examples in deploy/ only use metrics the gateway exports.

Every `gateway_*` name in a PromQL expression (panel targets, template variables, alert rules)
must be defined in `metrics`, and every label it is selected or grouped by must be one of that
metric's labels (`le` too for a histogram's `_bucket` series).

The alert rules are also run: `promtool check rules` and `promtool test rules` with the unit
tests in deploy/prometheus/rules.test.yml (series in, alerts out). `make test` installs promtool
into the venv (scripts/install-promtool.sh, from Debian's `prometheus` package); without it these
tests skip, and under CI they fail.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from gateway.store.writer import UsageWriter
from gateway.transports.http_app import HTTP_ONLY_STATUS, HTTP_STATUS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS = DEPLOY / "prometheus"
PROVISIONING = DEPLOY / "grafana" / "provisioning"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'" + r"|`[^`]*`")
_METRIC = re.compile(r"(?<![\w:$.])(gateway_[A-Za-z0-9_:]*)\s*(\{[^{}]*\})?")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_LABEL_VALUES = re.compile(
    r"label_values\(\s*(?:([A-Za-z_:][\w:]*)\s*(\{[^{}]*\})?\s*,)?\s*(\w+)\s*\)"
)
_RANGE = re.compile(r"\[([^\]]*)\]")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: Labels Prometheus attaches to every scraped series, whatever the metric.
TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class Defined:
    """A metric the gateway exports: its label names and whether it is a histogram."""

    labels: frozenset[str]
    histogram: bool


def _defined_metrics() -> dict[str, Defined]:
    """Every `gateway_*` metric registered once `metrics` is imported, by every name it answers to.

    A Counter's family is named without `_total`, so both forms are listed.
    """
    importlib.import_module("metrics")
    labels_of: dict[str, frozenset[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            names = frozenset(str(label) for label in collector._labelnames)
            for family in collector.describe():
                labels_of[family.name] = names
    defined: dict[str, Defined] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("gateway_"):
            continue
        seen = frozenset(label for sample in family.samples for label in sample.labels)
        metric = Defined(labels_of.get(family.name, seen - {"le"}), family.type == "histogram")
        defined[family.name] = metric
        if family.type == "counter":
            defined[f"{family.name}_total"] = metric
    return defined


DEFINED = _defined_metrics()


def _lookup(identifier: str) -> tuple[Defined | None, bool]:
    """The metric an identifier refers to, and whether it is a histogram's `_bucket` series."""
    if identifier in DEFINED:
        return DEFINED[identifier], False
    for suffix in _HISTOGRAM_SUFFIXES:
        base = identifier.removesuffix(suffix)
        if base != identifier and base in DEFINED and DEFINED[base].histogram:
            return DEFINED[base], suffix == "_bucket"
    return None, False


def _allowed_labels(identifier: str) -> frozenset[str]:
    metric, bucket = _lookup(identifier)
    assert metric is not None
    return metric.labels | TARGET_LABELS | ({"le"} if bucket else set())


def _matching_close(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def _matching_open(text: str, end: int) -> int:
    depth = 0
    for index in range(end, -1, -1):
        if text[index] == ")":
            depth += 1
        elif text[index] == "(":
            depth -= 1
            if depth == 0:
                return index
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def _aggregated(text: str, clause: re.Match[str]) -> str:
    """The expression a `by`/`without` clause groups: `sum by (x) (expr)` or `sum (expr) by (x)`."""
    after = clause.end()
    while after < len(text) and text[after].isspace():
        after += 1
    if after < len(text) and text[after] == "(":
        return text[after : _matching_close(text, after) + 1]
    before = clause.start() - 1
    while before >= 0 and text[before].isspace():
        before -= 1
    assert before >= 0, f"no expression for {clause.group(0)!r} in {text!r}"
    assert text[before] == ")", f"no expression for {clause.group(0)!r} in {text!r}"
    return text[_matching_open(text, before) : before + 1]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def promql_problems(expr: str) -> list[str]:
    """What in a PromQL expression is not a metric or label the gateway really exports."""
    text = _STRING.sub('""', expr)  # label values are free; names inside them are not metrics
    problems: list[str] = []
    found = [(match.group(1), match.group(2) or "") for match in _METRIC.finditer(text)]
    for identifier, selector in found:
        if _lookup(identifier)[0] is None:
            problems.append(f"unknown metric {identifier}")
            continue
        allowed = _allowed_labels(identifier)
        problems += [
            f"{identifier} has no label {label!r}"
            for label in _MATCHER.findall(selector)
            if label not in allowed and label != "__name__"
        ]
    for clause in _CLAUSE.finditer(text):
        labels = _names(clause.group(2))
        if clause.group(1) in ("by", "without"):
            scope = [m.group(1) for m in _METRIC.finditer(_aggregated(text, clause))]
            scope = [name for name in scope if _lookup(name)[0] is not None]
            problems += [
                f"{name} has no label {label!r} ({clause.group(1)})"
                for name in scope
                for label in labels
                if label not in _allowed_labels(name)
            ]
        else:
            scope = [name for name, _ in found if _lookup(name)[0] is not None]
            known = frozenset().union(*(_allowed_labels(name) for name in scope))
            problems += [
                f"no metric in the expression has label {label!r} ({clause.group(1)})"
                for label in labels
                if scope and label not in known
            ]
    for call in _LABEL_VALUES.finditer(text):
        identifier, label = call.group(1), call.group(3)
        defined = identifier is not None and _lookup(identifier)[0] is not None
        if defined and label not in _allowed_labels(identifier):
            problems.append(f"label_values: {identifier} has no label {label!r}")
    return problems


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def _variable_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        yield str(query.get("query", "")) if isinstance(query, dict) else str(query)


def _expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield str(target["expr"])
    yield from _variable_queries(dashboard)


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def test_the_gateway_metrics_are_found() -> None:
    for name in ("gateway_requests_total", "gateway_request_duration_seconds"):
        assert name in DEFINED
    assert DEFINED["gateway_requests_total"].labels == {"rpc", "transport", "code"}
    assert DEFINED["gateway_request_duration_seconds"].histogram


def test_there_are_the_four_dashboards() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"overview", "providers", "cost", "limits"}
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(dashboard))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    for panel in panels:
        assert panel.get("title"), f"panel {panel['id']} has no title"
        assert panel.get("description"), f"panel {panel['title']!r} has no description"
        assert set(panel["gridPos"]) >= {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no target"
        for target in targets:
            assert target.get("expr", "").strip(), f"empty query in {panel['title']!r}"
            assert target.get("refId"), panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_queries_use_only_gateway_metrics_and_labels(path: Path) -> None:
    expressions = list(_expressions(_load(path)))
    for expr in expressions:
        assert _METRIC.search(_STRING.sub('""', expr)), f"no gateway metric in {expr!r}"
    problems = {expr: found for expr in expressions if (found := promql_problems(expr))}
    assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_ranges_follow_the_time_picker(path: Path) -> None:
    for expr in _expressions(_load(path)):
        for window in _RANGE.findall(expr):
            assert window in ("$__rate_interval", "$__range"), f"fixed window [{window}]: {expr}"


def test_a_misspelled_metric_or_label_is_caught() -> None:
    assert promql_problems("sum by (provider) (rate(gateway_upstream_attempts_total[5m]))") == []
    assert promql_problems("rate(gateway_request_total[5m])") == [
        "unknown metric gateway_request_total"
    ]
    assert promql_problems('rate(gateway_requests_total{status="OK"}[5m])') == [
        "gateway_requests_total has no label 'status'"
    ]
    assert promql_problems("sum by (provider) (rate(gateway_requests_total[5m]))") == [
        "gateway_requests_total has no label 'provider' (by)"
    ]
    assert promql_problems("sum(rate(gateway_retries_total[5m])) by (le)") == [
        "gateway_retries_total has no label 'le' (by)"
    ]
    assert (
        promql_problems(
            "histogram_quantile(0.9, sum by (le, provider) "
            "(rate(gateway_upstream_latency_seconds_bucket[5m])))"
        )
        == []
    )
    assert promql_problems("max by (instance) (gateway_usage_pending_rows)") == []
    assert promql_problems("label_values(gateway_circuit_state, model)") == [
        "label_values: gateway_circuit_state has no label 'model'"
    ]
    # Names inside label values are not metrics.
    assert promql_problems('gateway_cache_errors_total{backend="gateway_nothing"}') == []


def test_grafana_provisioning() -> None:
    datasources = _yaml(PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    prometheus = next(ds for ds in datasources if ds["name"] == "Prometheus")
    assert prometheus["type"] == "prometheus"
    assert prometheus["uid"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = _yaml(PROVISIONING / "dashboards" / "ai-gateway.yaml")["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/ai-gateway"


def test_prometheus_scrapes_the_gateway_metrics_port() -> None:
    config = _yaml(PROMETHEUS / "prometheus.yml")
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert targets
    assert all(target.rsplit(":", 1)[1] == "9090" for target in targets), targets
    for rule_file in config.get("rule_files", []):
        assert (PROMETHEUS / rule_file).is_file(), rule_file
    text = (PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8")
    assert "kubernetes_sd_configs" in text
    assert "prometheus_io_scrape" in text
    assert "prometheus_io_port" in text


def test_alert_rules_use_only_gateway_metrics() -> None:
    groups = _yaml(PROMETHEUS / "rules.yml")["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 4
    names = [alert["alert"] for alert in alerts]
    assert len(names) == len(set(names))
    for alert in alerts:
        expr = str(alert["expr"])
        assert "gateway_" in expr or alert["alert"].endswith("TargetDown"), alert["alert"]
        assert promql_problems(expr) == [], (alert["alert"], promql_problems(expr))
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"]


# ---------------------------------------------------------------- the alert rules, run


def _alerts() -> dict[str, dict[str, Any]]:
    groups = _yaml(PROMETHEUS / "rules.yml")["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _promtool() -> str:
    """promtool: the one `make test` put beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "promtool"
    found = str(beside) if beside.exists() else shutil.which("promtool")
    if found is None:
        message = "promtool is not installed: run `make test` (or scripts/install-promtool.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # promtool with this checkout's files
        [_promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_alert_rules() -> None:
    checked = _run_promtool("check", "rules", str(PROMETHEUS / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    tested = _run_promtool("test", "rules", str(PROMETHEUS / "rules.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = _yaml(PROMETHEUS / "rules.test.yml")["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(_alerts()) - fired == set()


def _codes_by_outcome() -> tuple[set[str], set[str]]:
    """gRPC codes the gateway answers with, split into server failures (HTTP 5xx) and the
    caller's own outcomes (4xx, 499), from the JSON transport's mapping of its error codes. A
    code some 5xx error answers with is a server failure (DEADLINE_EXCEEDED: 504, though a body
    sent too slowly is 408)."""
    statuses = {(code.name, status) for code, status in HTTP_STATUS.items()}
    statuses |= {(kind.code.name, status) for kind, status in HTTP_ONLY_STATUS.items()}
    server = {code for code, status in statuses if status >= 500}
    caller = {code for code, status in statuses if status < 500} - server
    return server, caller


def _matches(operator: str, pattern: str, value: str) -> bool:
    if operator in ("=~", "!~"):
        return bool(re.fullmatch(pattern, value)) == (operator == "=~")
    return (value == pattern) == (operator == "=")


def test_error_ratio_counts_gateway_failures_and_never_the_callers_own() -> None:
    expr = str(_alerts()["AIGatewayHighErrorRatio"]["expr"])
    selectors = [
        selector
        for name, selector in re.findall(r"(gateway_requests_total)\s*(\{[^{}]*\})?", expr)
        if "code" in selector
    ]
    assert len(selectors) == 1, f"expected one selector by code in {expr}"
    matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selectors[0])
    code_matchers = [(op, pattern) for label, op, pattern in matchers if label == "code"]
    every = {code.name for code in grpc.StatusCode}
    counted = {c for c in every if all(_matches(op, p, c) for op, p in code_matchers)}
    server, caller = _codes_by_outcome()
    assert server <= counted
    assert counted & (caller | {"OK"}) == set()
    assert {"RESOURCE_EXHAUSTED", "NOT_FOUND", "INVALID_ARGUMENT", "UNAUTHENTICATED"} <= caller


def test_usage_spill_alert_fires_before_a_worker_spills() -> None:
    expr = str(_alerts()["AIGatewayUsageSpilling"]["expr"])
    (threshold,) = re.findall(r"gateway_usage_pending_rows\)?\s*>\s*(\d+)", expr)
    held = inspect.signature(UsageWriter).parameters["max_pending"].default
    assert 0 < int(threshold) < held
