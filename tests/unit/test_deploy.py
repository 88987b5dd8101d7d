"""The deployment files do what they are for, with the gateway they deploy.

`Dockerfile`, `deploy/kubernetes/*.yaml` and `deploy/compose.yaml` repeat facts the code owns:
ports, health service names, probe paths, the shutdown grace, the variables it reads. These
tests check what the files mean, not what they say: the environment a manifest gives the
gateway is loaded by the gateway's own `load_settings`, and the ports it would then bind are
the ports the manifest opens, probes and scrapes; probes and health checks are run against a
real (in-process) gateway; references between objects resolve; every variable set is one the
gateway reads and the README documents. `kubectl kustomize` renders the manifests when kubectl
is present.

Two tests run the build itself: the Dockerfile's install step in a fresh virtualenv (always),
and the image with podman or docker (skipped with the reason when no engine can run or no base
image can be pulled; `AIGW_TEST_PYTHON_IMAGE` names a local stand-in for the base image).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk import environment_variables as otel_variables

from gateway.config.settings import DEFAULT_SHUTDOWN_GRACE_SECONDS, Settings, load_settings
from gateway.transports.grpc_server import SERVICE_NAME
from metrics.endpoint import METRICS_PATH
from providers.http.aiohttp_client import AiohttpClient
from providers.registry import ADAPTERS, ProviderRegistry
from tests.conftest import RunningGateway

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
KUBERNETES = REPO / "deploy" / "kubernetes"
COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
COMPOSE_DIR = REPO / "deploy" / "compose"

#: In deploy/kubernetes but deliberately not applied by kustomization.yaml (see its header).
NOT_APPLIED = {"secret.example.yaml", "migrate-job.yaml"}
#: Variables of the Python runtime and pip, not of the gateway, that the Dockerfile may set.
RUNTIME_VARIABLES = re.compile(r"^(PATH|PYTHON\w*|PIP_\w+)$")
PYTHON_IMAGE_OVERRIDE = "AIGW_TEST_PYTHON_IMAGE"

Doc = dict[str, Any]


# ---------------------------------------------------------------- reading the files


def _documents(path: Path) -> list[Doc]:
    """Every non-empty YAML document in `path`; each must be a mapping."""
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), f"{path.name}: a document is not a mapping"
    return docs


def _manifests() -> list[tuple[str, Doc]]:
    return [(p.name, d) for p in sorted(KUBERNETES.glob("*.yaml")) for d in _documents(p)]


def _one(kind: str, name: str | None = None) -> Doc:
    found = [
        d
        for _, d in _manifests()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _deployment() -> Doc:
    return _one("Deployment", "ai-gateway")


def _pod_spec() -> Doc:
    spec: Doc = _deployment()["spec"]["template"]["spec"]
    return spec


def _gateway_container() -> Doc:
    containers: list[Doc] = _pod_spec()["containers"]
    (container,) = [c for c in containers if c["name"] == "gateway"]
    return container


def _env_config_map() -> dict[str, str]:
    (ref,) = [e["configMapRef"]["name"] for e in _gateway_container()["envFrom"]]
    data: dict[str, str] = _one("ConfigMap", ref)["data"]
    return data


def _gateway_yaml() -> str:
    text: str = _one("ConfigMap", "ai-gateway-config")["data"]["gateway.yaml"]
    return text


def _compose() -> Doc:
    (compose,) = _documents(COMPOSE_FILE)
    return compose


def _image_services() -> dict[str, Doc]:
    """The compose services that run the gateway's image (the ones built from the Dockerfile)."""
    services: dict[str, Doc] = _compose()["services"]
    return {name: s for name, s in services.items() if "build" in s}


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"unexpected duration {duration!r}"
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


@dataclass
class Stage:
    """One `FROM` of the Dockerfile and its instructions, continuation lines joined."""

    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        """The arguments of every `instruction` in this stage, in order."""
        return [a for i, a in self.instructions if i == instruction]

    def env(self) -> dict[str, str]:
        """Every variable set by `ENV` (the `KEY=value ...` form)."""
        pairs = (p.split("=", 1) for a in self.args("ENV") for p in shlex.split(a))
        return {k: v for k, v in pairs}


def _stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append(Stage(base=args.strip()))
        elif stages:
            stages[-1].instructions.append((instruction.upper(), args.strip()))
    return stages


def _pip_install_args() -> list[str]:
    """The arguments of the builder's `pip install` (as the Dockerfile runs it)."""
    (run,) = [a for a in _stages()[0].args("RUN") if "pip install" in a]
    match = re.search(r"pip install (.+?)(?:&&|$)", run)
    assert match, run
    return shlex.split(match.group(1))


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` for the tools these tests drive (kubectl, pip, the engine, the CLI)."""
    # The commands are built here from fixed words and paths of this checkout: nothing untrusted.
    options.setdefault("check", False)
    return subprocess.run(command, **options)  # noqa: S603


# ---------------------------------------------------------------- what the gateway reads


def _variables_the_gateway_reads() -> frozenset[str]:
    """Every environment variable name the gateway's settings (or the OTel SDK) read.

    Scanned from the source of `gateway/` (only its config modules read the environment):
    `env.<fn>("NAME"`, `environ.get("NAME"`, and the per-vendor f-strings `f"{prefix}_SUFFIX"`
    expanded with each adapter's prefix and `env_options`; plus the standard `OTEL_*` names the
    SDK defines.
    """
    modules = (p for p in (REPO / "gateway").rglob("*.py") if "v1" not in p.parts)
    source = "\n".join(p.read_text(encoding="utf-8") for p in modules)
    names = set(re.findall(r'\benv\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', source))
    names |= set(re.findall(r'\benviron\.get\(\s*"([A-Z][A-Z0-9_]*)"', source))
    suffixes = set(re.findall(r'f"\{prefix\}_([A-Z][A-Z0-9_]*)"', source))
    for spec in ADAPTERS.values():
        if spec.env_prefix:
            names |= {f"{spec.env_prefix}_{s}" for s in (*suffixes, *spec.env_options.values())}
    names |= {
        v for v in vars(otel_variables).values() if isinstance(v, str) and v.startswith("OTEL_")
    }
    return frozenset(names)


def _interpolated(text: str) -> set[str]:
    """Names a config YAML reads as `${NAME}` / `${NAME:-default}`."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def _containers(doc: Doc) -> list[Doc]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _variables_set() -> dict[str, set[str]]:
    """Variable names each deployment file sets for the gateway, by where they are set."""
    found: dict[str, set[str]] = {}
    for file, doc in _manifests():
        if doc["kind"] in ("Deployment", "Job"):
            for container in _containers(doc):
                found[f"{file}:{container['name']}"] = {e["name"] for e in container["env"]}
    found["configmap.yaml:ai-gateway-env"] = set(_env_config_map())
    for name, service in _image_services().items():
        found[f"compose.yaml:{name}"] = set(service.get("environment", {}))
    dockerfile_env = _stages()[-1].env()
    found["Dockerfile"] = {n for n in dockerfile_env if not RUNTIME_VARIABLES.match(n)}
    return found


def _readme_table_names() -> set[str]:
    """Every `NAME` the README's tables mention (settings tables, the providers table)."""
    rows = (line for line in README.read_text(encoding="utf-8").splitlines() if line[:1] == "|")
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}


def _secret_example() -> dict[str, str]:
    (secret,) = [d for _, d in _manifests() if d["kind"] == "Secret"]
    data: dict[str, str] = secret["stringData"]
    return data


def _container_environment(container: Doc) -> dict[str, str]:
    """What the container's process is given: its ConfigMaps, then its own `env` (Secret
    references read from the example Secret, as `kubectl apply` of it would give them)."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment |= _one("ConfigMap", source["configMapRef"]["name"])["data"]
    for env in container.get("env", []):
        if "value" in env:
            environment[env["name"]] = env["value"]
        else:
            environment[env["name"]] = _secret_example()[env["valueFrom"]["secretKeyRef"]["key"]]
    return environment


def _compose_environment(service: Doc) -> dict[str, str]:
    """A compose service's environment as compose gives it with nothing set in the shell."""
    raw: dict[str, str] = service.get("environment", {})
    return {k: re.sub(r"\$\{[A-Za-z_]\w*:-([^}]*)\}", r"\1", str(v)) for k, v in raw.items()}


def _settings(environment: dict[str, str], tmp_path: Path) -> Settings:
    """The gateway's settings from `environment`, as the gateway loads them at start. The file
    GATEWAY_CONFIG names in the pod (mounted from a ConfigMap) is given here with its text."""
    if "GATEWAY_CONFIG" in environment:
        config = tmp_path / "gateway.yaml"
        config.write_text(_gateway_yaml(), encoding="utf-8")
        environment = {**environment, "GATEWAY_CONFIG": str(config)}
    return load_settings(environment)


def _ports_bound(settings: Settings) -> dict[str, int]:
    return {
        "grpc": settings.grpc_port,
        "http": settings.http_port,
        "metrics": settings.metrics_port,
    }


def _port_number(port: int | str, container: Doc) -> int:
    """A probe's or a Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def test_variable_scan_finds_settings_of_every_kind() -> None:
    known = _variables_the_gateway_reads()
    documented = {"GRPC_PORT", "DATABASE_URL", "REDIS_URL", "SHUTDOWN_GRACE_SECONDS", "ADMIN_TOKEN"}
    documented |= {"GATEWAY_CONFIG", "OPENAI_API_KEY", "ANTHROPIC_MAX_TOKENS", "MOCK_LATENCY_MS"}
    documented |= {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"}
    assert documented <= known


def test_deployment_files_set_only_variables_the_gateway_reads() -> None:
    known = _variables_the_gateway_reads() | _interpolated(_gateway_yaml())
    unknown = {where: sorted(names - known) for where, names in _variables_set().items()}
    assert {where: names for where, names in unknown.items() if names} == {}


def test_the_gateway_variables_deployment_files_set_are_in_the_readme_settings_tables() -> None:
    # OTEL_* are the OpenTelemetry SDK's own; a ${NAME} gateway.yaml reads is the file's choice.
    interpolated = _interpolated(_gateway_yaml())
    own = {n for n in _variables_the_gateway_reads() - interpolated if not n.startswith("OTEL_")}
    documented = _readme_table_names()
    missing = {where: sorted(names & own - documented) for where, names in _variables_set().items()}
    assert {where: names for where, names in missing.items() if names} == {}


def test_the_environment_each_deployment_gives_loads(tmp_path: Path) -> None:
    environments = {
        "deployment.yaml": _container_environment(_gateway_container()),
        "Dockerfile": _stages()[-1].env(),
        **{f"compose.yaml:{n}": _compose_environment(s) for n, s in _image_services().items()},
    }
    for where, environment in environments.items():
        settings = _settings(environment, tmp_path)  # raises ConfigError naming the setting
        assert settings.database_url, where


# ---------------------------------------------------------------- YAML, manifests, kustomize


def test_every_yaml_file_parses() -> None:
    files = [*KUBERNETES.glob("*.yaml"), COMPOSE_FILE, *COMPOSE_DIR.glob("*.y*ml")]
    assert len(files) >= 10
    for path in files:
        assert _documents(path), f"{path.name} holds no document"


def test_every_manifest_has_api_version_kind_and_name_and_no_namespace() -> None:
    for file, doc in _manifests():
        assert doc.get("apiVersion"), file
        assert doc.get("kind"), file
        if doc["kind"] != "Kustomization":
            assert doc["metadata"].get("name"), file
            assert "namespace" not in doc["metadata"], f"{file}: manifests are namespace-agnostic"


def test_kustomization_applies_every_manifest_but_the_examples() -> None:
    kustomization = _one("Kustomization")
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - NOT_APPLIED


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: kustomization.yaml not rendered")
    out = _run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    listed = set(_one("Kustomization")["resources"])
    expected = [d for f, d in _manifests() if f in listed]
    assert sorted(d["kind"] for d in rendered) == sorted(d["kind"] for d in expected)
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    (image,) = {c["image"] for c in _containers(deployment)}
    (override,) = _one("Kustomization")["images"]
    assert image == f"{override['newName']}:{override['newTag']}"


def test_references_name_objects_that_exist() -> None:
    (secret,) = [d for f, d in _manifests() if d["kind"] == "Secret"]
    secret_keys = set(secret["stringData"])
    config_maps = {d["metadata"]["name"]: d for _, d in _manifests() if d["kind"] == "ConfigMap"}
    for _, doc in _manifests():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in _containers(doc):
            for env in container["env"]:
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], env["name"]
                    assert ref["key"] in secret_keys, env["name"]
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps


# ---------------------------------------------------------------- the Deployment and friends


def test_container_ports_are_the_ports_the_gateway_binds_there(tmp_path: Path) -> None:
    container = _gateway_container()
    settings = _settings(_container_environment(container), tmp_path)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == _ports_bound(settings)
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.metrics_port
    assert annotations["prometheus.io/path"] == METRICS_PATH


def test_service_ports_lead_to_the_container_ports_grpc_as_grpc() -> None:
    container = _gateway_container()
    grpc_port = _port_number("grpc", container)
    for _, service in _manifests():
        if service["kind"] != "Service":
            continue
        for port in service["spec"]["ports"]:
            target = _port_number(port["targetPort"], container)  # a port the container opens
            if target == grpc_port:  # so that meshes and L7 balancers spread calls, not connections
                assert port["appProtocol"] == "grpc", service["metadata"]["name"]


def test_selectors_match_the_gateway_pods() -> None:
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    selectors = [
        _deployment()["spec"]["selector"]["matchLabels"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        *(s["spec"]["selector"] for _, s in _manifests() if s["kind"] == "Service"),
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_service_monitor_scrapes_the_metrics_port_of_one_service(tmp_path: Path) -> None:
    monitor = _one("ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    chosen = [s for _, s in _manifests() if s["kind"] == "Service"]
    chosen = [s for s in chosen if wanted <= s["metadata"]["labels"].items()]
    assert len(chosen) == 1  # not the headless one too: each pod would be scraped twice
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in chosen[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
    container = _gateway_container()
    settings = _settings(_container_environment(container), tmp_path)
    assert _port_number(port["targetPort"], container) == settings.metrics_port
    assert endpoint["path"] == METRICS_PATH


def test_autoscaling_keeps_a_disruption_possible_and_has_the_request_it_scales_on() -> None:
    deployment, hpa, pdb = (
        _deployment(),
        _one("HorizontalPodAutoscaler"),
        _one("PodDisruptionBudget"),
    )
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert low <= deployment["spec"]["replicas"] <= high
    # At the fewest replicas a node drain can still evict one pod, and more than one serves.
    allowed = pdb["spec"].get("maxUnavailable", low - pdb["spec"].get("minAvailable", low))
    assert 1 <= allowed < low
    requests = _gateway_container()["resources"]["requests"]
    for metric in hpa["spec"]["metrics"]:
        if metric["resource"]["target"]["type"] == "Utilization":  # a share of the request
            assert metric["resource"]["name"] in requests


def test_probes_target_the_grpc_port_the_gateway_binds_there(tmp_path: Path) -> None:
    container = _gateway_container()
    settings = _settings(_container_environment(container), tmp_path)
    for kind in ("startup", "liveness", "readiness"):
        assert _port_number(container[f"{kind}Probe"]["grpc"]["port"], container) == (
            settings.grpc_port
        ), kind


def _commented_http_probe_paths() -> set[str]:
    text = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    return set(re.findall(r"#\s.*httpGet:\s*\{path:\s*(/[\w/]*)", text))


def _compose_health_check_path() -> str:
    test = " ".join(_compose()["services"]["gateway"]["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w*)", test)
    assert match, test
    settings = load_settings(_compose_environment(_compose()["services"]["gateway"]))
    assert int(match.group(1)) == settings.http_port
    return match.group(2)


async def test_every_probe_and_health_check_succeeds_against_a_running_gateway(
    gw: RunningGateway,
) -> None:
    container = _gateway_container()
    for kind in ("startup", "liveness", "readiness"):
        service = container[f"{kind}Probe"]["grpc"]["service"]
        reply = await gw.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, kind
    paths = _commented_http_probe_paths() | {_compose_health_check_path()}
    assert len(paths) >= 2  # the commented liveness and readiness alternatives at least
    for path in paths:
        async with gw.http.get(gw.http_url + path) as response:
            assert response.status == 200, path
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]
    metrics_url = f"http://127.0.0.1:{gw.gateway.metrics_port}{annotations['prometheus.io/path']}"
    async with gw.http.get(metrics_url) as response:
        assert response.status == 200
        assert "gateway_requests_total" in await response.text()


def test_termination_grace_outlasts_pre_stop_and_the_drain() -> None:
    spec = _pod_spec()
    pre_stop = _gateway_container()["lifecycle"]["preStop"]
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep"
    grace = float(_env_config_map().get("SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS))
    assert spec["terminationGracePeriodSeconds"] > float(command[1]) + grace


def test_pod_runs_as_the_image_user_on_a_read_only_root() -> None:
    spec, container = _pod_spec(), _gateway_container()
    user = _stages()[-1].args("USER")[-1].split(":")[0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all(
        "emptyDir" in volumes[m["name"]]
        for m in container["volumeMounts"]
        if m["mountPath"] in writable
    )
    spill = Path(_env_config_map()["USAGE_SPILL_PATH"])
    assert str(spill.parent) in writable


def test_gateway_config_is_the_mounted_config_map() -> None:
    path = Path(_env_config_map()["GATEWAY_CONFIG"])
    (mount,) = [
        m for m in _gateway_container()["volumeMounts"] if m["mountPath"] == str(path.parent)
    ]
    (volume,) = [v for v in _pod_spec()["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "ai-gateway-config"
    assert path.name in _one("ConfigMap", "ai-gateway-config")["data"]


async def test_config_map_gateway_yaml_loads_and_routes(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(_gateway_yaml(), encoding="utf-8")
    environ = {"GATEWAY_CONFIG": str(config), "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
    settings = load_settings(environ)
    assert settings.aliases
    assert settings.fallbacks
    client = AiohttpClient()
    registry = ProviderRegistry.from_settings(
        settings.providers, settings.aliases, client, key_cooldown=1
    )
    try:
        for model in [*settings.aliases, *settings.fallbacks]:
            registry.resolve(model)  # raises ModelNotFoundError for a dangling route
        for chain in settings.fallbacks.values():
            for model in chain:
                registry.resolve(model)
    finally:
        await registry.aclose()
        await client.close()


def _cli_commands() -> set[str]:
    """The sub-commands `ai-gateway --help` lists."""
    helped = _run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    (listed,) = re.findall(r"\{([\w,-]+)\}", helped.stdout)[:1]
    return set(listed.split(","))


def test_migrations_run_before_the_gateway_serves_which_then_only_checks(tmp_path: Path) -> None:
    commands = _cli_commands()
    (init,) = _pod_spec()["initContainers"]
    assert init["image"] == _gateway_container()["image"]
    assert init["args"] == ["migrate"]
    assert "migrate" in commands
    assert _gateway_container()["args"][0] in commands
    settings = _settings(_container_environment(_gateway_container()), tmp_path)
    assert settings.auto_migrate is False  # replicas do not race to migrate: they check
    job = _one("Job", "ai-gateway-migrate")
    assert [c["args"] for c in job["spec"]["template"]["spec"]["containers"]] == [["migrate"]]


# ---------------------------------------------------------------- compose


def test_compose_runs_several_gateways_after_a_one_shot_migration() -> None:
    services = _compose()["services"]
    gateway, migrate = services["gateway"], services["migrate"]
    assert gateway["deploy"]["replicas"] > 1  # what the load balancer spreads calls over
    assert migrate["command"][0] in _cli_commands()
    assert gateway["image"] == migrate["image"]
    depends = gateway["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert _seconds(gateway["stop_grace_period"]) > float(
        gateway["environment"].get("SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS)
    )
    assert (COMPOSE_FILE.parent / gateway["build"]["context"]).resolve() == REPO


def test_compose_gateways_use_the_stack_services() -> None:
    services = _compose()["services"]
    env = _compose_environment(services["gateway"])
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "REDIS_URL", "DATABASE_URL"):
        host = urlsplit(env[name]).hostname
        assert host in services, f"{name} names {host}, not a service of the stack"
    otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert str(otlp.port) in services[str(otlp.hostname)]["expose"]
    assert env["DATABASE_URL"] == _compose_environment(services["migrate"])["DATABASE_URL"]


def test_compose_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: {source}"


def test_load_balancer_spreads_grpc_and_http_over_the_gateway_replicas() -> None:
    services = _compose()["services"]
    settings = load_settings(_compose_environment(services["gateway"]))
    lb = services["lb"]
    (mount,) = lb["volumes"]
    conf = (COMPOSE_FILE.parent / mount.split(":")[0]).read_text(encoding="utf-8")
    upstreams = dict(re.findall(r"upstream (\w+) \{[^}]*?server gateway:(\d+)", conf))
    assert {int(p) for p in upstreams.values()} == {settings.grpc_port, settings.http_port}
    grpc_upstream = next(u for u, p in upstreams.items() if int(p) == settings.grpc_port)
    assert f"grpc_pass grpc://{grpc_upstream};" in conf  # HTTP/2 to the gateway, per call
    assert "http2 on;" in conf  # gRPC clients speak cleartext HTTP/2
    assert "proxy_buffering off;" in conf  # SSE events go out as they come
    listening = {int(p) for p in re.findall(r"listen (\d+);", conf)}
    assert {int(p.split(":")[1]) for p in lb["ports"]} == listening
    # The balancer never cuts a call the gateway is still allowed to serve.
    timeouts = [_seconds(t) for t in re.findall(r"_read_timeout (\w+);", conf)]
    assert timeouts
    assert min(timeouts) > settings.request_timeout_seconds


def test_compose_prometheus_scrapes_each_replica_with_the_rules_job() -> None:
    prometheus = _compose()["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    config_source = next(s for s, t in mounts.items() if t == "/etc/prometheus/prometheus.yml")
    (config,) = _documents(COMPOSE_FILE.parent / config_source)
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["gateway"]
    assert discovery["type"] == "A"
    assert (
        discovery["port"]
        == load_settings(_compose_environment(_compose()["services"]["gateway"])).metrics_port
    )
    assert job.get("metrics_path", "/metrics") == METRICS_PATH
    rules = (REPO / "deploy" / "prometheus" / "rules.yml").read_text(encoding="utf-8")
    assert f'job="{job["job_name"]}"' in rules
    assert all(f"/etc/prometheus/{r}" in mounts.values() for r in config["rule_files"])


def test_compose_grafana_provisions_the_dashboards_from_deploy() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = {t: s for s, t in (v.split(":")[:2] for v in grafana["volumes"])}
    provisioning = COMPOSE_FILE.parent / mounts["/etc/grafana/provisioning"]
    (provider,) = _documents(provisioning / "dashboards" / "ai-gateway.yaml")[0]["providers"]
    dashboards = COMPOSE_FILE.parent / mounts[provider["options"]["path"]]
    assert list(dashboards.glob("*.json"))
    (datasource,) = _documents(provisioning / "datasources" / "prometheus.yaml")[0]["datasources"]
    assert urlsplit(datasource["url"]).hostname in _compose()["services"]


# ---------------------------------------------------------------- the Dockerfile


def test_the_image_python_is_one_the_project_supports_and_the_source_stays_out() -> None:
    match = re.search(r"^ARG PYTHON_IMAGE=\S*python:(\d+)\.(\d+)", DOCKERFILE.read_text(), re.M)
    assert match
    with (REPO / "pyproject.toml").open("rb") as file:
        requires = tomllib.load(file)["project"]["requires-python"]
    lowest = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires)
    assert lowest, f"requires-python {requires!r}: read here as a lower bound only"
    assert (int(match.group(1)), int(match.group(2))) >= (int(lowest[1]), int(lowest[2]))
    final = _stages()[-1]
    assert final.args("COPY")
    assert all(a.startswith("--from=") for a in final.args("COPY"))


def test_the_image_serves_as_a_non_root_user_on_the_ports_it_exposes(tmp_path: Path) -> None:
    final = _stages()[-1]
    (user,) = final.args("USER")
    assert user.split(":")[0] not in ("root", "0")
    settings = _settings(final.env(), tmp_path)
    exposed = {int(p) for a in final.args("EXPOSE") for p in a.split()}
    assert exposed == set(_ports_bound(settings).values())
    assert settings.bind_host in ("0.0.0.0", "::")  # reachable from outside the container
    with (REPO / "pyproject.toml").open("rb") as file:
        scripts = tomllib.load(file)["project"]["scripts"]
    (entrypoint,) = json.loads(final.args("ENTRYPOINT")[-1])  # exec form: the gateway is PID 1
    assert entrypoint in scripts
    assert json.loads(final.args("CMD")[-1])[0] in _cli_commands()


def _docker_ignores(path: str, patterns: list[str]) -> bool:
    """Whether `.dockerignore` `patterns` keep `path` (or a folder above it) out of the context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        regex = re.escape(pattern.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            return True
    return False


def test_the_local_state_of_a_checkout_stays_out_of_the_build_context() -> None:
    # What the gateway and the tools leave in a checkout (a venv, caches, the SQLite store and
    # its spill files: what git ignores) must not reach the image or bloat the context.
    local_state = [".venv/bin/python", "gateway/__pycache__/x.pyc", ".mypy_cache/x", "usage.db"]
    local_state += ["ai-gateway.db-wal", "usage.spill.jsonl", "usage.spill.jsonl.replaying"]
    local_state += ["node_modules/x/y.js", "bench/results/run.json", ".pytest_cache/v"]
    listed = _run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", *local_state],
        capture_output=True,
        text=True,
    )
    ignored_by_git = listed.stdout.split()
    assert len(ignored_by_git) > 5
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    assert [p for p in ignored_by_git if not _docker_ignores(p, patterns)] == []
    assert not _docker_ignores("gateway/runtime/cli.py", patterns)  # the source does go in


# ---------------------------------------------------------------- the build, for real


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no gateway settings leak in from this one."""
    keep = re.compile(r"^(PATH|HOME|TMPDIR|LANG|LC_\w+|SSL_CERT_\w+|PIP_\w+|\w+_proxy|\w+_PROXY)$")
    return {**{k: v for k, v in os.environ.items() if keep.match(k)}, **extra}


@pytest.mark.timeout(300)
def test_dockerfile_install_step_gives_a_working_ai_gateway(tmp_path: Path) -> None:
    """What the builder stage does, without a container engine (about 30 s with a warm cache).

    Copies exactly what the builder COPYs, installs it with the Dockerfile's own pip arguments
    into a fresh virtualenv (from the package index pip is configured with), and runs the
    console script: its help, and `migrate` on a new SQLite file, which needs the migration
    scripts to be inside the installed package. What got installed is the lock file's versions
    and no development tool.
    """
    source = tmp_path / "src"
    source.mkdir()
    for copy in _stages()[0].args("COPY"):
        *names, target = shlex.split(copy)
        for name in names:
            if (REPO / name).is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(REPO / name, source / target, ignore=ignore)
            else:
                shutil.copy2(REPO / name, source / target / (name if target.endswith("/") else ""))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = _run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *_pip_install_args()],
        cwd=source,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    cli = str(venv / "bin" / "ai-gateway")
    helped = _run([cli, "--help"], env=_clean_env(), capture_output=True, text=True)
    assert helped.returncode == 0
    assert "serve" in helped.stdout
    assert "migrate" in helped.stdout
    database = f"sqlite:///{tmp_path / 'usage.db'}"
    migrated = _run(
        [cli, "migrate"],
        env=_clean_env(DATABASE_URL=database),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert "revision" in migrated.stdout
    # The exact versions the tests ran with, and nothing of the dev extras.
    frozen = _run(
        [str(venv / "bin" / "pip"), "freeze", "--exclude-editable", "--exclude", "ai-gateway"],
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    installed = dict(line.split("==", 1) for line in frozen.stdout.splitlines() if "==" in line)
    pinned = dict(
        line.split("==", 1)
        for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert installed
    assert {name: pinned.get(name) for name in installed} == installed
    assert not {"pytest", "mypy", "ruff"} & installed.keys()


# ---------------------------------------------------------------- the image, when an engine runs


def _engine() -> str:
    """podman or docker, whichever can run containers here; skips the test when neither can."""
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path and _run([path, "info"], capture_output=True, timeout=60).returncode == 0:
            return path
    pytest.skip("no container engine can run here (podman/docker missing or no daemon)")


def _base_image(engine: str) -> str:
    override = os.environ.get(PYTHON_IMAGE_OVERRIDE)
    if override:
        return override
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match
    image = match.group(1)
    if _run([engine, "image", "inspect", image], capture_output=True).returncode == 0:
        return image
    pulled = _run([engine, "pull", image], capture_output=True, text=True, timeout=300)
    if pulled.returncode != 0:
        last = (pulled.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"cannot pull the base image {image} ({last}); set {PYTHON_IMAGE_OVERRIDE}")
    return image


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a loopback URL)
        return response.status, response.read()


@pytest.fixture
def image() -> Iterator[tuple[str, str]]:
    """The Dockerfile built by the engine: (engine, image tag); removed afterwards."""
    engine = _engine()
    tag = f"localhost/ai-gateway:test-{os.getpid()}"
    build = _run(
        [
            engine,
            "build",
            "--network",
            "host",
            "--build-arg",
            f"PYTHON_IMAGE={_base_image(engine)}",
            "-t",
            tag,
            "-f",
            str(DOCKERFILE),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        yield engine, tag
    finally:
        _run([engine, "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.mark.timeout(1200)
def test_image_serves_as_non_root_on_a_read_only_root_and_stops_on_sigterm(
    image: tuple[str, str],
) -> None:
    engine, tag = image
    grpc_port, http_port, metrics_port = _free_ports(3)
    writable = "/var/lib/ai-gateway:rw," + ("U" if "podman" in engine else "uid=10001,gid=10001")
    name = f"aigw-test-{os.getpid()}"
    _run(
        [
            engine,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            writable,
            "-e",
            "BIND_HOST=127.0.0.1",
            "-e",
            f"GRPC_PORT={grpc_port}",
            "-e",
            f"HTTP_PORT={http_port}",
            "-e",
            f"METRICS_PORT={metrics_port}",
            tag,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "the container never became ready"
                time.sleep(0.5)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SERVICE_NAME):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert b"gateway_requests_total" in body
        uid = _run([engine, "exec", name, "id", "-u"], capture_output=True, text=True)
        assert uid.stdout.strip() == "10001"
        started = time.monotonic()
        _run([engine, "stop", "-t", "30", name], check=True, capture_output=True)
        assert time.monotonic() - started < 20  # SIGTERM handled, not SIGKILLed at 30 s
        exit_code = _run(
            [engine, "inspect", name, "--format", "{{.State.ExitCode}}"],
            capture_output=True,
            text=True,
        )
        assert exit_code.stdout.strip() == "0"
        logs = _run([engine, "logs", name], capture_output=True, text=True)
        assert "gateway stopped" in logs.stdout + logs.stderr
    finally:
        _run([engine, "rm", "-f", name], capture_output=True, timeout=60)
