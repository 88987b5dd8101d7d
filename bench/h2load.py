"""h2load (Debian's `nghttp2-client`) as the load generator: one bounded run, parsed.

h2load is C on one event loop per thread: HTTP/1.1 (`--h1`) for JSON and SSE, h2c with prior
knowledge for gRPC. Every run is bounded twice: by h2load itself (`-D` seconds, or `-n`
requests) and by a subprocess timeout that kills it. `--log-file` gives one line per request
(start µs, status, µs until the end of the response), from which the percentiles are computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import percentile

#: Extra time allowed over a run's own bound before it is killed.
KILL_GRACE_SECONDS = 30.0


def ensure_installed() -> str:
    """The h2load path; installs `nghttp2-client` with apt-get when missing (needs root)."""
    found = shutil.which("h2load")
    if found:
        return found
    print("bench: h2load is missing; running: apt-get install -y nghttp2-client", flush=True)
    # Wait for the dpkg lock rather than fail when another apt-get runs on this machine.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "nghttp2-client"]
    if subprocess.run(command, check=False).returncode != 0:  # noqa: S603 - fixed command
        print("bench: apt-get install failed; running apt-get update and retrying", flush=True)
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], check=False)  # noqa: S607
        subprocess.run(command, check=True)  # noqa: S603
    found = shutil.which("h2load")
    if not found:
        sys.exit("bench: h2load still missing after installing nghttp2-client")
    return found


def version(h2load: str) -> str:
    """What `h2load --version` says, e.g. "nghttp2/1.52.0"."""
    done = subprocess.run([h2load, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return done.stdout.strip().removeprefix("h2load ")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """One h2load run against one URL."""

    url: str
    body: Path
    headers: tuple[tuple[str, str], ...]
    clients: int
    http1: bool
    #: Timed run (`-D`), or a request count (`-n`) when `requests` is set.
    seconds: float = 3.0
    requests: int = 0
    streams_per_client: int = 1


@dataclass
class LoadResult:
    """What one h2load run measured."""

    seconds: float = 0.0
    done: int = 0
    status_2xx: int = 0
    failed: int = 0
    errored: int = 0
    timeouts: int = 0
    data_bytes: int = 0
    latencies_us: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    output: str = ""

    @property
    def errors(self) -> int:
        """Failed requests: non-2xx, reset or timed out (h2load's "failed" counts them all)."""
        non_2xx = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return max(self.failed, non_2xx + self.errored)

    def p50_ms(self) -> float:
        """Median latency of the 2xx responses, milliseconds."""
        return percentile(self.latencies_us, 0.50) / 1000

    def p99_ms(self) -> float:
        """99th percentile latency of the 2xx responses, milliseconds."""
        return percentile(self.latencies_us, 0.99) / 1000


def command(h2load: str, spec: LoadSpec, log_file: Path) -> list[str]:
    """The h2load command line for `spec`."""
    args = [h2load, "-c", str(spec.clients), "-m", str(spec.streams_per_client), "-t", "1"]
    if spec.requests:
        args += ["-n", str(spec.requests)]
    else:
        args += ["-D", f"{max(1, round(spec.seconds * 1000))}ms"]
    if spec.http1:
        args.append("--h1")
    args += ["-d", str(spec.body), "--log-file", str(log_file)]
    for name, value in spec.headers:
        args += ["-H", f"{name}: {value}"]
    args.append(spec.url)
    return args


async def run(h2load: str, spec: LoadSpec) -> LoadResult:
    """Run h2load once (bounded in time), and parse its summary and per-request log."""
    if not spec.url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load only ever targets 127.0.0.1: {spec.url}")
    bound = spec.seconds if not spec.requests else 600.0
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as place:
        log_file = Path(place) / "requests.log"
        process = await asyncio.create_subprocess_exec(
            *command(h2load, spec, log_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), bound + KILL_GRACE_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            limit = bound + KILL_GRACE_SECONDS
            raise RuntimeError(f"h2load did not finish within {limit:.0f} s") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        result = parse_summary(out.decode(errors="replace"))
        read_log(log_file, result)
    return result


_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s|us)")
_REQUESTS = re.compile(
    r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx")
_TRAFFIC = re.compile(r"traffic: .* \((\d+)\) data")
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_summary(text: str) -> LoadResult:
    """Read h2load's printed summary (duration, counts, body bytes)."""
    result = LoadResult(output=text)
    if match := _FINISHED.search(text):
        result.seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if match := _REQUESTS.search(text):
        result.done, _, result.failed, result.errored, result.timeouts = (
            int(group) for group in match.groups()
        )
    if match := _STATUS.search(text):
        result.status_2xx = int(match.group(1))
    if match := _TRAFFIC.search(text):
        result.data_bytes = int(match.group(1))
    return result


def read_log(path: Path, result: LoadResult) -> None:
    """Fold h2load's per-request log into `result`: status counts and 2xx latencies."""
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            status, micros = int(parts[1]), int(parts[2])
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                result.latencies_us.append(micros)
