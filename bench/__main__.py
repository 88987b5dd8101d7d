"""`python -m bench` (`make bench`): run the benchmarks and print one table.

Every load loop is bounded in count and time and targets 127.0.0.1 only. Results also go to
`bench/results/<name>.json` for comparison between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from pathlib import Path

from bench import cache_hits

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    """Parse options, run, print, save."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per run")
    args = parser.parse_args()
    results = asyncio.run(cache_hits.run(args.concurrency, args.requests, args.seconds))
    print(f"cache hits, {args.concurrency} concurrent callers (mock provider, memory cache)")
    print(f"{'path':<10}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, s in results.items():
        print(
            f"{name:<10}{s.rps:>10.0f}{s.p50_ms:>10.2f}{s.p90_ms:>10.2f}{s.p99_ms:>10.2f}{s.errors:>8}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cache_hits-{time.strftime('%Y%m%dT%H%M%S')}.json"
    payload = {name: {**dataclasses.asdict(s), "rps": s.rps} for name, s in results.items()}
    out.write_text(json.dumps({"args": vars(args), "results": payload}, indent=2))
    print(f"saved {out}")


main()
