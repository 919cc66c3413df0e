#!/usr/bin/env python3
"""Compares two release builds of `sluice`: cold start, time per batch and
peak RSS, run alternately on the same machine so that drift hits both alike.

Usage (from the repository root, after `cargo bench -p sluice-cli --bench compare`
has written the events under target/bench/):

    python3 host/cli/benches/compare_builds.py BEFORE_BINARY AFTER_BINARY [ROUNDS]

Build each with `cargo build --release -p host --bin sluice
--no-default-features --features compiler` (the Lambda build with Cranelift)
at the two commits, and copy the binaries aside. Prints medians:

- `sluice check` on the example pipeline, plugins compiled from `.wasm` and
  precompiled (`sluice precompile`): the cold start;
- `sluice run` on the example (precompiled) and pass-through workloads'
  events (3,000 records of ~1 KB), and on one record: time per batch;
- the `peak RSS:` line `sluice run` prints, for the example event.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, SLUICE_LOG="warn", SLUICE_CACHE_DIR="")
EXAMPLE = ROOT / "examples/clickstream/pipeline.toml"
PASSTHROUGH = ROOT / "target/bench/workloads/passthrough.toml"
EXAMPLE_EVENT = ROOT / "target/bench/workload-example.json"
PASSTHROUGH_EVENT = ROOT / "target/bench/workload-passthrough.json"


def precompiled(binary, config):
    out = tempfile.mkdtemp()
    r = subprocess.run([binary, "precompile", "--config", str(config), "--out", out],
                       env=ENV, capture_output=True)
    return Path(out) / "pipeline.toml" if r.returncode == 0 else config


def timed(args):
    out = tempfile.mkdtemp()
    started = time.perf_counter()
    r = subprocess.run(args, env=ENV, capture_output=True, cwd=out)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        sys.exit(f"{args}: {r.stderr.decode()[-500:]}")
    return elapsed, r.stdout.decode()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    builds = {"before": sys.argv[1], "after": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    for f in (EXAMPLE_EVENT, PASSTHROUGH_EVENT, PASSTHROUGH):
        if not f.exists():
            sys.exit(f"{f} is missing: run `cargo bench -p sluice-cli --bench compare` first")
    one = Path(tempfile.mkdtemp()) / "one.json"
    event = json.loads(PASSTHROUGH_EVENT.read_text())
    event["Records"] = event["Records"][:1]
    one.write_text(json.dumps(event))
    pre = {name: precompiled(b, EXAMPLE) for name, b in builds.items()}
    rows = {}
    for _ in range(rounds):
        for name, b in builds.items():
            cells = {
                "check, compiled (ms)": timed([b, "check", "--config", str(EXAMPLE)])[0] * 1e3,
                "check, precompiled (ms)": timed([b, "check", "--config", str(pre[name])])[0] * 1e3,
                "run example, precompiled (ms)": None,
                "run passthrough, 3,000 records (ms)": timed(
                    [b, "run", "--config", str(PASSTHROUGH), "--event", str(PASSTHROUGH_EVENT)])[0] * 1e3,
                "run passthrough, 1 record (ms)": timed(
                    [b, "run", "--config", str(PASSTHROUGH), "--event", str(one)])[0] * 1e3,
            }
            t, out = timed([b, "run", "--config", str(pre[name]), "--event", str(EXAMPLE_EVENT)])
            cells["run example, precompiled (ms)"] = t * 1e3
            rss = re.search(r"peak RSS: (\d+)", out)
            cells["peak RSS, example, precompiled (MiB)"] = int(rss.group(1)) / 2**20
            _, out = timed([b, "run", "--config", str(EXAMPLE), "--event", str(EXAMPLE_EVENT)])
            cells["peak RSS, example, compiled (MiB)"] = int(
                re.search(r"peak RSS: (\d+)", out).group(1)) / 2**20
            for k, v in cells.items():
                rows.setdefault(k, {}).setdefault(name, []).append(v)
    print("| measure | before | after |\n|---|---:|---:|")
    for k, by in rows.items():
        print(f"| {k} | {statistics.median(by['before']):.1f} | {statistics.median(by['after']):.1f} |")


if __name__ == "__main__":
    main()
