"""Every snippet in the README works as printed, as far as it can be checked offline.

The snippets are found by reading README.md, so a new one is checked without touching this file:

- every fenced block says its language, and only languages checked here are used;
- each ```yaml block parses, each ```json block parses, each ```sh block passes `bash -n`, each
  ```python block compiles and each ```js block passes `node --check` as an ES module;
- the JSON body of every `curl`, `grpcurl` and `buf curl` command parses, and where the command
  names a gateway RPC (its gRPC method, or an HTTP route of the proto's `google.api.http`
  rules) it is a valid request message of that RPC, with no unknown field;
- a YAML block that is a gateway config file is loaded by the gateway's own loader
  (`load_settings`, `GATEWAY_CONFIG` naming it) with the environment of the command the README
  gives to start it, its routes resolve, and the real program starts with it;
- `kubectl` commands (the README's, and those the manifests' own comments give) name only
  objects, Secrets, keys and paths that deploy/ really defines or reads, and a Secret they create
  carries every key the pods need from it;
- repository paths named in commands and relative links exist.

The `*_problems` functions return what is wrong instead of asserting, so the last tests can show
that each check catches the mistakes it exists for.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor

from gateway.config.settings import ConfigError, load_settings
from gateway.v1 import gateway_pb2
from providers.http.aiohttp_client import AiohttpClient
from providers.registry import ProviderRegistry
from tests.processes import spawn

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
KUBERNETES = REPO / "deploy" / "kubernetes"

#: Fenced-block languages this file knows how to check (`text` is output, not checked).
LANGUAGES = frozenset({"sh", "yaml", "json", "python", "js", "text"})
#: Top-level keys of the gateway's YAML config file (README "Configuration").
CONFIG_SECTIONS = frozenset({"providers", "models", "fallbacks", "prices"})
#: Options that carry a request body in curl, grpcurl and buf curl.
DATA_OPTIONS = frozenset({"-d", "--data", "--data-raw", "--data-binary"})
#: kubectl resource names (singular, plural, short) -> the kind they stand for.
KINDS = {
    name: kind
    for kind, names in {
        "Deployment": ("deployment", "deployments", "deploy"),
        "Job": ("job", "jobs"),
        "Secret": ("secret", "secrets"),
        "ConfigMap": ("configmap", "configmaps", "cm"),
        "Service": ("service", "services", "svc"),
        "HorizontalPodAutoscaler": ("horizontalpodautoscaler", "hpa"),
        "PodDisruptionBudget": ("poddisruptionbudget", "pdb"),
        "ServiceMonitor": ("servicemonitor", "servicemonitors"),
    }.items()
    for name in names
}


# ---------------------------------------------------------------- reading the README


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (the info string's first word) and text."""

    language: str
    text: str
    line: int  #: line of the opening fence, 1-based

    def __str__(self) -> str:
        return f"README.md:{self.line} ```{self.language}"


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a CommonMark document, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            text = lines[end]
            body.append(text[min(indent, len(text) - len(text.lstrip(" "))) :])
            end += 1
        info = opening["info"].strip().split()
        blocks.append(Block(info[0] if info else "", "\n".join(body) + "\n", index + 1))
        index = end + 1
    return blocks


BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"))


def _blocks(language: str) -> list[Block]:
    return [block for block in BLOCKS if block.language == language]


# ---------------------------------------------------------------- shell commands


@dataclass(frozen=True)
class Command:
    """One simple command of a shell snippet: leading `NAME=value` assignments, then words."""

    environment: dict[str, str]
    words: list[str]
    source: str = field(compare=False)


def commands(script: str) -> list[Command]:
    """The simple commands of a shell script (continuations and quotes over several lines
    joined, comments dropped).

    Split at `&&`, `||`, `;` and `|`, as far as a snippet needs: no here-documents, no
    substitutions that contain those operators.
    """
    found: list[Command] = []
    for line in _logical_lines(script):
        words: list[str] = []
        for token in [*_lexer(line), ";"]:
            if token and set(token) <= set(";&|"):
                if words:
                    found.append(_command(words, line))
                words = []
            else:
                words.append(token)
    return found


def _lexer(line: str) -> shlex.shlex:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return lexer


def _logical_lines(script: str) -> Iterator[str]:
    """The script's lines, continuations joined, and a line whose quote runs on (a JSON body
    over several lines) joined with the lines up to the one that closes it."""
    pending = ""
    for line in script.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            list(_lexer(pending))
        except ValueError:  # "No closing quotation": the quote goes on on the next line
            continue
        yield pending
        pending = ""
    if pending:
        yield pending


def _command(words: list[str], source: str) -> Command:
    environment: dict[str, str] = {}
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    return Command(environment, words, source.strip())


def _all_commands() -> list[tuple[Block, Command]]:
    return [(block, command) for block in _blocks("sh") for command in commands(block.text)]


def _program(command: Command) -> list[str]:
    """The words from the program on: `npx` and `docker compose`'s wrapper words dropped."""
    words = list(command.words)
    if words[:1] == ["npx"]:
        words = words[1:]
        while words and words[0].startswith("-"):  # npx's own options
            words.pop(0)
        if words:
            words[0] = words[0].rsplit("/", 1)[-1]  # @bufbuild/buf -> buf
    return words


def _option(words: list[str], names: frozenset[str]) -> list[str]:
    """Values of the options `names`, written `-d VALUE`, `--data=VALUE` or `-dVALUE`."""
    values: list[str] = []
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                values.append(words[index + 1])
            elif name.startswith("--") and word.startswith(name + "="):
                values.append(word[len(name) + 1 :])
            elif len(name) == 2 and word.startswith(name) and len(word) > 2 and word[2] != "-":
                values.append(word[2:])
    return values


# ---------------------------------------------------------------- the API the commands call


def _methods() -> dict[str, MethodDescriptor]:
    """Every RPC of the gateway's proto by its full name `package.Service/Method`."""
    return {
        f"{service.full_name}/{method.name}": method
        for service in gateway_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


METHODS = _methods()


@dataclass(frozen=True)
class Route:
    """An HTTP route of an RPC, from its `google.api.http` option."""

    verb: str
    pattern: re.Pattern[str]
    body: str
    method: MethodDescriptor


def _routes() -> list[Route]:
    routes: list[Route] = []
    for method in METHODS.values():
        rules = [v for f, v in method.GetOptions().ListFields() if f.full_name == "google.api.http"]
        if not rules:
            continue
        rule = rules[0]  # a google.api.HttpRule
        verb = rule.WhichOneof("pattern")
        assert verb in ("get", "put", "post", "delete", "patch"), method.full_name
        template = getattr(rule, verb)
        regex = re.sub(r"\\\{\w+\\\}", "[^/]+?", re.escape(template))
        routes.append(Route(verb.upper(), re.compile(f"^{regex}$"), rule.body, method))
    return routes


ROUTES = _routes()


def _called_method(words: list[str]) -> tuple[MethodDescriptor | None, str]:
    """The RPC a curl, grpcurl or buf curl command calls (None when not the gateway's API)."""
    program = words[0]
    if program == "grpcurl":
        named = [w for w in words[1:] if w in METHODS]
        return (METHODS[named[0]] if named else None), "gRPC"
    urls = [w for w in words[1:] if re.match(r"^(https?://)?[\w.-]+:\d+(/|$)", w)]
    if not urls:
        return None, ""
    path = "/" + re.sub(r"^(https?://)?[\w.-]+:\d+/?", "", urls[0]).split("?")[0]
    if program == "buf":
        return METHODS.get(path.lstrip("/")), "gRPC"
    explicit = _option(words, frozenset({"-X", "--request"}))
    verb = explicit[-1] if explicit else ("POST" if _option(words, DATA_OPTIONS) else "GET")
    for route in ROUTES:
        if route.verb == verb and route.pattern.match(path):
            return route.method, route.body
    return None, ""


def body_problems(command: Command) -> list[str]:
    """What is wrong with the request bodies a command sends (empty when it sends none)."""
    words = _program(command)
    if not words or words[0] not in ("curl", "grpcurl", "buf"):
        return []
    problems: list[str] = []
    method, body_field = _called_method(words)
    for data in _option(words, DATA_OPTIONS):
        try:
            json.loads(data)
        except ValueError as exc:
            problems.append(f"{data!r} is not JSON: {exc}")
            continue
        if method is None:
            continue
        if body_field == "":
            problems.append(f"{method.full_name} takes no body over HTTP")
            continue
        message = message_factory.GetMessageClass(method.input_type)()
        if body_field not in ("*", "gRPC"):
            message = getattr(message, body_field)
        try:
            json_format.Parse(data, message)
        except json_format.ParseError as exc:
            problems.append(f"not a {method.input_type.full_name}: {exc}")
    return problems


# ---------------------------------------------------------------- what deploy/kubernetes defines


Doc = dict[str, Any]


def _manifests() -> list[Doc]:
    return [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict)
    ]


@dataclass
class Cluster:
    """What the manifests define, and what their pods read from Secrets and ConfigMaps."""

    objects: set[tuple[str, str]] = field(default_factory=set)
    #: Secret name -> key -> whether a pod needs it (False when every reader says optional).
    secret_keys: dict[str, dict[str, bool]] = field(default_factory=dict)
    whole_secrets: set[str] = field(default_factory=set)
    config_maps: set[str] = field(default_factory=set)

    def read(self, node: object) -> None:
        """Record every Secret and ConfigMap reference below `node`."""
        if isinstance(node, list):
            for item in node:
                self.read(item)
        if not isinstance(node, dict):
            return
        if "secretKeyRef" in node:
            ref = node["secretKeyRef"]
            keys = self.secret_keys.setdefault(ref["name"], {})
            keys[ref["key"]] = keys.get(ref["key"], False) or not ref.get("optional", False)
        if "secretRef" in node:
            self.whole_secrets.add(node["secretRef"]["name"])
        if "secret" in node and isinstance(node["secret"], dict):
            self.whole_secrets.add(node["secret"]["secretName"])
        for ref in ("configMapRef", "configMapKeyRef", "configMap"):
            if ref in node and isinstance(node[ref], dict):
                self.config_maps.add(node[ref]["name"])
        for value in node.values():
            self.read(value)

    @property
    def secrets(self) -> set[str]:
        """Every Secret a pod reads."""
        return set(self.secret_keys) | self.whole_secrets


def cluster() -> Cluster:
    """What deploy/kubernetes/*.yaml define and read."""
    found = Cluster()
    for doc in _manifests():
        if "metadata" not in doc:
            continue  # kustomization.yaml
        found.objects.add((doc["kind"], doc["metadata"]["name"]))
        if doc["kind"] in ("Deployment", "Job"):
            found.read(doc["spec"]["template"]["spec"])
    return found


def _reference(kind_word: str, name: str, defined: Cluster) -> list[str]:
    kind = KINDS.get(kind_word.lower())
    if kind is None:
        return [f"unknown resource type {kind_word!r} (teach KINDS in this test)"]
    if (kind, name) not in defined.objects:
        return [f"no {kind} {name!r} in deploy/kubernetes"]
    return []


def kubectl_problems(command: Command, defined: Cluster, base: Path = REPO) -> list[str]:
    """What in a `kubectl` command names something deploy/kubernetes does not define or read.

    Paths are taken from the repository root, or from `base` (where the command is written).
    """
    words = command.words
    if words[:1] != ["kubectl"]:
        return []
    args = [w for w in words[1:] if not w.startswith("-")]
    options = [w for w in words[1:] if w.startswith("-")]
    files = _option(words, frozenset({"-k", "-f", "--kustomize", "--filename"}))
    args = [w for w in args if w not in files]
    problems: list[str] = []
    if args[:2] == ["create", "secret"]:
        name = args[3]
        if name not in defined.secrets:
            return [f"Secret {name!r} is read by no pod (they read {sorted(defined.secrets)})"]
        given = {
            option.split("=", 2)[1]
            for option in options
            if option.startswith(("--from-literal=", "--from-file="))
        }
        wanted = defined.secret_keys.get(name, {})
        if name not in defined.whole_secrets:
            problems += [
                f"no pod reads key {key!r} of {name!r}" for key in sorted(given - set(wanted))
            ]
        needed = {key for key, required in wanted.items() if required}
        problems += [
            f"{name!r} lacks {key!r}, which the pods need" for key in sorted(needed - given)
        ]
    elif args[:2] == ["create", "configmap"]:
        if args[2] not in defined.config_maps:
            problems.append(f"ConfigMap {args[2]!r} is read by no pod")
    elif files or args[:1] in (["kustomize"], ["apply"]):
        for path in files or args[1:]:
            found = next((d / path for d in (REPO, base) if (d / path).exists()), None)
            if found is None:
                problems.append(f"{path} does not exist")
            elif found.is_dir() and not (found / "kustomization.yaml").is_file():
                problems.append(f"{path} has no kustomization.yaml")
    elif args[:1] in (["rollout"], ["wait"], ["get"], ["describe"], ["logs"], ["delete"]):
        for word in args[1:]:
            if "/" in word:
                kind_word, _, name = word.partition("/")
                problems += _reference(kind_word, name, defined)
        plain = [w for w in args[1:] if "/" not in w and w not in ("restart", "status", "undo")]
        if len(plain) == 2:
            problems += _reference(plain[0], plain[1], defined)
    else:
        problems.append(f"this test does not know `kubectl {' '.join(args[:2])}`: teach it")
    return problems


def commented_kubectl_commands(yaml_text: str) -> list[Command]:
    """The kubectl commands a manifest's comments give: `kubectl ...` in backticks, and comment
    lines that are a kubectl command (with their continuation lines)."""
    comments = [m.group(1) for m in re.finditer(r"^\s*#\s?(.*)$", yaml_text, flags=re.MULTILINE)]
    script: list[str] = []
    continued = False
    for text in comments:
        if continued or text.strip().startswith("kubectl "):
            script.append(text)
        script += re.findall(r"`(kubectl [^`]*)`", text) if not continued else []
        continued = text.rstrip().endswith("\\")
    return [c for c in commands("\n".join(script)) if c.words[:1] == ["kubectl"]]


# ---------------------------------------------------------------- paths and links


def path_problems(command: Command) -> list[str]:
    """Repository paths a command names that do not exist."""
    top = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    problems = []
    for word in command.words[1:]:
        candidate = word.split("=", 1)[-1]
        root = candidate.split("/", 1)[0]
        if "/" in candidate and root in top and not (REPO / candidate).exists():
            problems.append(f"{candidate} does not exist")
    return problems


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def link_problems(markdown: str) -> list[str]:
    """Relative links to files that do not exist or to headings the document does not have."""
    outside = re.sub(r"^ *(`{3,}|~{3,}).*?^ *\1", "", markdown, flags=re.MULTILINE | re.DOTALL)
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", outside, flags=re.MULTILINE)}
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", outside):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        if path and not (REPO / path).exists():
            problems.append(f"link to {path}: no such file")
        elif not path and anchor not in anchors:
            problems.append(f"link to #{anchor}: no such heading")
    return problems


# ---------------------------------------------------------------- the config example


@dataclass(frozen=True)
class ConfigExample:
    """A YAML block that is a gateway config file, and the environment the README starts it with."""

    block: Block
    environment: dict[str, str]

    def __str__(self) -> str:
        return str(self.block)


def _is_config(block: Block) -> bool:
    try:
        loaded = yaml.safe_load(block.text)
    except yaml.YAMLError:
        loaded = None
    if isinstance(loaded, dict):
        return bool(set(loaded) & CONFIG_SECTIONS) and "apiVersion" not in loaded
    # Not parseable: judge by its top-level keys, so a broken example is still found.
    keys = set(re.findall(r"^([a-z_]+):", block.text, flags=re.MULTILINE))
    return bool(keys & CONFIG_SECTIONS)


def config_examples() -> Iterator[ConfigExample | Block]:
    """Each config example with the environment of the first later command that sets
    `GATEWAY_CONFIG`; the bare block when the README gives no such command."""
    for index, block in enumerate(BLOCKS):
        if block.language != "yaml" or not _is_config(block):
            continue
        starts = [
            command
            for later in BLOCKS[index + 1 :]
            if later.language == "sh"
            for command in commands(later.text)
            if "GATEWAY_CONFIG" in command.environment
        ]
        yield ConfigExample(block, starts[0].environment) if starts else block


CONFIG_EXAMPLES = list(config_examples())


def _config_environment(example: ConfigExample, path: Path) -> dict[str, str]:
    return {**example.environment, "GATEWAY_CONFIG": str(path)}


async def route_problems(environ: Mapping[str, str]) -> list[str]:
    """Aliases and fallbacks of a config that route nowhere."""
    settings = load_settings(environ)
    client = AiohttpClient()
    registry = ProviderRegistry.from_settings(
        settings.providers, settings.aliases, client, key_cooldown=1
    )
    problems = []
    try:
        models = [*settings.aliases, *settings.fallbacks]
        models += [m for chain in settings.fallbacks.values() for m in chain]
        for model in models:
            try:
                registry.resolve(model)
            except Exception as exc:  # any failure to route is the finding
                problems.append(f"{model}: {exc}")
    finally:
        await registry.aclose()
        await client.close()
    return problems


# ---------------------------------------------------------------- the tests


def test_the_readme_has_snippets_of_every_checked_kind() -> None:
    assert {block.language for block in BLOCKS} >= {"sh", "yaml", "json", "python", "js"}
    assert len(_blocks("sh")) >= 5
    assert CONFIG_EXAMPLES, "the README shows no gateway config file"
    assert any(command.words[:1] == ["kubectl"] for _, command in _all_commands())
    assert any(
        body_problems(command) == [] and _option(command.words, DATA_OPTIONS)
        for _, command in _all_commands()
    )


def test_every_fenced_block_names_a_checked_language() -> None:
    unknown = [str(block) for block in BLOCKS if block.language not in LANGUAGES]
    assert unknown == [], f"label these blocks with one of {sorted(LANGUAGES)} (or teach this test)"


@pytest.mark.parametrize("block", _blocks("yaml"), ids=str)
def test_yaml_block_parses(block: Block) -> None:
    assert list(yaml.safe_load_all(block.text))


@pytest.mark.parametrize("block", _blocks("json"), ids=str)
def test_json_block_parses(block: Block) -> None:
    loaded = json.loads(block.text)
    services = [
        name["service"] for config in loaded.get("methodConfig", []) for name in config["name"]
    ]
    assert set(services) <= set(gateway_pb2.DESCRIPTOR.services_by_name) | {
        s.full_name for s in gateway_pb2.DESCRIPTOR.services_by_name.values()
    }


@pytest.mark.parametrize("block", _blocks("sh"), ids=str)
def test_shell_block_is_valid_bash(block: Block) -> None:
    checked = subprocess.run(
        ["bash", "-n"],  # noqa: S607  # bash from PATH, as a reader runs it
        input=block.text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("block", _blocks("python"), ids=str)
def test_python_block_compiles(block: Block) -> None:
    compile(block.text, str(block), "exec")


@pytest.mark.parametrize("block", _blocks("js"), ids=str)
def test_js_block_is_a_valid_module(block: Block, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is needed to check the README's js blocks")
        pytest.skip("node is needed to check the README's js blocks")
    script = tmp_path / "snippet.mjs"
    script.write_text(block.text)
    checked = subprocess.run(  # noqa: S603  # node from PATH on a file of our own
        [node, "--check", str(script)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("block", _blocks("sh"), ids=str)
def test_request_bodies_in_commands_are_valid_requests(block: Block) -> None:
    problems = {c.source: p for c in commands(block.text) if (p := body_problems(c))}
    assert problems == {}


@pytest.mark.parametrize("block", _blocks("sh"), ids=str)
def test_kubectl_commands_name_what_the_manifests_define(block: Block) -> None:
    defined = cluster()
    problems = {c.source: p for c in commands(block.text) if (p := kubectl_problems(c, defined))}
    assert problems == {}


@pytest.mark.parametrize("block", _blocks("sh"), ids=str)
def test_paths_in_commands_exist(block: Block) -> None:
    problems = {c.source: p for c in commands(block.text) if (p := path_problems(c))}
    assert problems == {}


@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
def test_kubectl_commands_in_the_manifests_comments_name_what_they_define(path: Path) -> None:
    defined = cluster()
    found = commented_kubectl_commands(path.read_text(encoding="utf-8"))
    problems = {c.source: p for c in found if (p := kubectl_problems(c, defined, path.parent))}
    assert problems == {}


def test_relative_links_lead_somewhere() -> None:
    assert link_problems(README.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("example", CONFIG_EXAMPLES, ids=str)
async def test_config_example_loads_and_routes_with_the_environment_given(
    example: ConfigExample | Block, tmp_path: Path
) -> None:
    assert isinstance(example, ConfigExample), (
        f"{example}: follow it with the command that starts the gateway with it "
        "(`... GATEWAY_CONFIG=<file> make run`), naming every variable it needs"
    )
    path = tmp_path / "gateway.yaml"
    path.write_text(example.block.text, encoding="utf-8")
    environ = _config_environment(example, path)
    settings = load_settings(environ)
    deployments = {provider.name for provider in settings.providers}
    assert set(yaml.safe_load(example.block.text).get("providers", {})) <= deployments
    assert await route_problems(environ) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("example", CONFIG_EXAMPLES, ids=str)
async def test_config_example_starts_the_gateway(
    example: ConfigExample | Block, tmp_path: Path
) -> None:
    assert isinstance(example, ConfigExample), f"{example}: no command starts it"
    path = tmp_path / "gateway.yaml"
    path.write_text(example.block.text, encoding="utf-8")
    gateway = await spawn(**_config_environment(example, path))
    try:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/providers/status"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            status = await response.json()
        names = {provider["name"] for provider in status["providers"]}
        assert set(yaml.safe_load(example.block.text).get("providers", {})) <= names
    finally:
        assert await gateway.stop() == 0


# ---------------------------------------------------------------- the checks catch mistakes


def test_the_block_reader_follows_commonmark_fences() -> None:
    markdown = "a\n````sh\necho ```\n````\n  ~~~yaml\n  a: 1\n  ~~~\n```\nplain\n```\n"
    assert fenced_blocks(markdown) == [
        Block("sh", "echo ```\n", 2),
        Block("yaml", "a: 1\n", 5),
        Block("", "plain\n", 8),
    ]


def test_commands_are_split_with_their_environment() -> None:
    script = (
        "A=1 B='x y' make run  # start\nkubectl delete job j && kubectl apply \\\n  -f x.yaml\n"
    )
    found = [(c.environment, c.words) for c in commands(script)]
    assert found == [
        ({"A": "1", "B": "x y"}, ["make", "run"]),
        ({}, ["kubectl", "delete", "job", "j"]),
        ({}, ["kubectl", "apply", "-f", "x.yaml"]),
    ]


def test_a_body_quoted_over_several_lines_is_one_command_and_is_checked() -> None:
    script = (
        "curl -s localhost:8080/v1/complete -d '{\n"
        '  "model": "m",\n'
        '  "messages": [{"role": "user", "content": "a # not a comment"}],\n'
        '  "toolz": []\n'
        "}'\n"
        '# {…"content": "it\'s"…}\n'
        "curl -s localhost:8080/v1/providers/status\n"
    )

    found = commands(script)

    assert [c.words[:2] for c in found] == [["curl", "-s"], ["curl", "-s"]]
    assert body_problems(found[0])[0].startswith("not a gateway.v1.CompleteRequest")


def test_a_flow_list_of_unquoted_interpolations_is_not_yaml() -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("api_keys: [${CLAUDE_KEY_1}, ${CLAUDE_KEY_2}]\n")


def test_bad_request_bodies_are_caught() -> None:
    (good,) = commands("""curl -s localhost:8080/v1/complete -d '{"model": "m", "messages": []}'""")
    assert body_problems(good) == []
    (unknown_field,) = commands("""curl localhost:8080/v1/complete -d '{"modell": "m"}'""")
    assert body_problems(unknown_field)[0].startswith("not a gateway.v1.CompleteRequest")
    (grpc_call,) = commands(
        "grpcurl -plaintext -d '{\"model\": 1}' localhost:50051 gateway.v1.GatewayService/Complete"
    )
    assert body_problems(grpc_call)[0].startswith("not a gateway.v1.CompleteRequest")
    (buf_call,) = commands(
        "npx @bufbuild/buf curl --protocol grpc -d '{...}' "
        "http://localhost:50051/gateway.v1.GatewayService/Complete"
    )
    assert body_problems(buf_call)[0].startswith("'{...}' is not JSON")
    (admin,) = commands(
        """curl localhost:8080/v1/admin/tenants/t/limits -d '{"tokens_per_minute": 5}'"""
    )
    assert body_problems(admin) == []


def test_kubectl_mistakes_are_caught() -> None:
    defined = cluster()
    wrong_secret = commands(
        "kubectl create secret generic ai-gateway --from-literal=OPENAI_API_KEY=..."
    )[0]
    assert kubectl_problems(wrong_secret, defined)[0].startswith("Secret 'ai-gateway' is read by")
    (missing_key,) = commands(
        "kubectl create secret generic ai-gateway-secrets --from-literal=ADMIN_TOKEN=x "
        "--from-literal=DATABASE_URL=y --from-literal=OPENAI_KEY=z"
    )
    assert kubectl_problems(missing_key, defined) == [
        "no pod reads key 'OPENAI_KEY' of 'ai-gateway-secrets'",
        "'ai-gateway-secrets' lacks 'REDIS_URL', which the pods need",
    ]
    (restart,) = commands("kubectl rollout restart deployment/ai-gateway-server")
    assert kubectl_problems(restart, defined) == [
        "no Deployment 'ai-gateway-server' in deploy/kubernetes"
    ]
    (apply,) = commands("kubectl apply -k deploy/kube/")
    assert kubectl_problems(apply, defined) == ["deploy/kube/ does not exist"]


def test_commented_kubectl_commands_are_found() -> None:
    text = (
        "# Run `kubectl rollout restart deployment/x` after changes; don't forget.\n"
        "# Or:\n"
        "#   kubectl create secret generic s \\\n"
        "#     --from-literal=A='it''s'\n"
        "kind: ConfigMap  # kubectl is not here\n"
    )
    found = [c.words for c in commented_kubectl_commands(text)]
    assert found == [
        ["kubectl", "rollout", "restart", "deployment/x"],
        ["kubectl", "create", "secret", "generic", "s", "--from-literal=A=its"],
    ]


def test_broken_paths_and_links_are_caught() -> None:
    (compose,) = commands("docker compose -f deploy/compose.yml up -d")
    assert path_problems(compose) == ["deploy/compose.yml does not exist"]
    assert link_problems("# Title\n[a](#title) [b](#nothing) [c](proto/none.proto)\n") == [
        "link to #nothing: no such heading",
        "link to proto/none.proto: no such file",
    ]


def test_a_config_whose_fallback_routes_nowhere_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("fallbacks:\n  mock: [no-such-model]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_CONFIG": str(path)})
    assert caught.value.setting == "fallbacks.mock[0]"
