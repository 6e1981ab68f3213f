"""The command-line fuzz test with a long budget (issue 15, must-show 2).

Runs ``tests/test_fuzz_cli.py`` with ``FACTORKIT_FUZZ_EXAMPLES=--examples`` argument lists per
command (train, evaluate, edit; random, not the suite's fixed derandomised draw) and prints the
exit codes seen. Any traceback or an exit code other than 0/2 fails the run and hypothesis
prints the smallest failing argument list.

    python benchmarks/fuzz_cli.py --examples 500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=500)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "fuzz.jsonl"
        env = {**os.environ, "FACTORKIT_FUZZ_EXAMPLES": str(a.examples), "FACTORKIT_FUZZ_LOG": str(log),
               "FACTORKIT_CACHE": str(Path(tmp) / "cache")}
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                            str(ROOT / "tests" / "test_fuzz_cli.py")], env=env, cwd=ROOT)
        seen = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    print(f"\n{a.examples} examples per command, {time.perf_counter() - t:.0f} s, pytest exit {r.returncode}")
    for record in seen:
        for command, codes in record.items():
            print(f"  {command}: {sum(codes.values())} argument lists, exit codes {dict(sorted(codes.items()))}")
    raise SystemExit(r.returncode)


if __name__ == "__main__":
    main()
