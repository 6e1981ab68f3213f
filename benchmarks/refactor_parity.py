"""Behaviour kept across a refactor: fixed-seed mddae and mixing runs, 50 steps each, through the
command line (the one interface every version of factorkit has). Prints the last log.jsonl
record's losses and a hash of the final weights, so two checkouts can be compared line by line.

    python benchmarks/refactor_parity.py --out runs/parity            # prints a JSON line per run
    python benchmarks/refactor_parity.py --out runs/parity --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

RUNS = {
    "mddae": ["mddae", "--data", "faces"],
    "mixing": ["mixing", "--data", "faces"],
}


def weights_hash(path: Path) -> str:
    from safetensors.torch import load_file

    state = load_file(str(path))
    h = hashlib.sha256()
    for k in sorted(state):  # values only, in key order: key renames do not change the hash
        h.update(state[k].float().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/parity")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--compare", help="a JSON file written by an earlier run of this script")
    a = ap.parse_args()
    results = {}
    for name, argv in RUNS.items():
        out = Path(a.out) / name
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "factorkit", "train", *argv, "--steps", str(a.steps), "--seed", "0",
               "--num-workers", "0", "--out", str(out), "--quiet", "--set", f"train.log_every={a.steps}"]
        subprocess.run(cmd, check=True)
        last = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]
        results[name] = {"step": last["step"], "losses": last["losses"], "weights": weights_hash(out / "model.safetensors")}
        print(json.dumps({name: results[name]}))
    (Path(a.out) / "parity.json").write_text(json.dumps(results, indent=1))
    if a.compare:
        before = json.loads(Path(a.compare).read_text())
        for name, now in results.items():
            old = before[name]
            diffs = {k: now["losses"].get(k, float("nan")) - v for k, v in old["losses"].items()}
            same = old["weights"] == now["weights"]
            print(f"{name}: weights {'identical' if same else 'DIFFER'}; loss differences "
                  + ", ".join(f"{k} {d:+.3g}" for k, d in diffs.items()))


if __name__ == "__main__":
    main()
