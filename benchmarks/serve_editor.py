"""The web editor under load, and its screenshots (issue 20, docs/results.md §13).

    python benchmarks/serve_editor.py --runs runs/serve [--screenshots docs/images]

``--runs`` is a folder of trained runs (the results used mddAE with the demo's switches and the
mixing autoencoder's fast preset, both on faces). For each run the script starts ``factorkit serve
RUNS`` (judge on, as a user gets it), then through the JSON API:

* **latency** — 200 sequential requests of the run's slider operation (mddAE: one attribute
  edit; mixing: a chunk swap), each a full round trip over HTTP with the PNG and the judge's
  reading; median and p95;
* **load** — 8 concurrent clients × 50 such requests with random values: errors, median / p95
  under load, and the server's resident memory (VmRSS) before, after the first round and after a
  second one (stable memory: the second round adds nothing).

With ``--screenshots DIR`` it also drives Chromium (Playwright) over the page for each run, moves a
control and writes ``DIR/serve_<model>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(runs: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "factorkit", "serve", runs, "--port", str(port)],
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 300:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=2)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise SystemExit(proc.stderr.read()) from None
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def operation(base: str, run: dict, spec: dict, client: httpx.Client):
    """The run's slider operation as a function of a random generator → (path, payload)."""
    a = client.post(f"{base}/api/runs/{run['id']}/examples/0").json()["id"]
    b = client.post(f"{base}/api/runs/{run['id']}/examples/1").json()["id"]
    if "edit" in spec:
        names = [c["name"] for c in spec["edit"]["controls"]]
        lo, hi = spec["edit"]["controls"][0]["lo"], spec["edit"]["controls"][0]["hi"]
        return "edit", lambda rng: {"image": a, "values": {rng.choice(names): rng.uniform(lo, hi)}}
    pieces = [p["name"] for p in spec["swap"]["pieces"]]
    return "swap", lambda rng: {"image": a, "other": b, "pieces": rng.sample(pieces, rng.randint(1, len(pieces)))}


def timed(client, url, payload) -> float:
    t0 = time.perf_counter()
    r = client.post(url, json=payload)
    dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code} {r.text[:200]}")
    return dt * 1000


def measure(base: str, run: dict, pid: int) -> dict:
    with httpx.Client(timeout=60) as client:
        spec = client.get(f"{base}/api/runs/{run['id']}").json()
        kind, payload = operation(base, run, spec, client)
        url = f"{base}/api/runs/{run['id']}/{kind}"
        rng = random.Random(0)
        for _ in range(10):
            timed(client, url, payload(rng))  # warm-up
        seq = [timed(client, url, payload(rng)) for _ in range(200)]
    out = {"model": spec["model"], "operation": kind, "judge": spec["judge"],
           "sequential_ms": {"median": round(statistics.median(seq), 1), "p95": round(percentile(seq, 95), 1)},
           "rss_mb": {"before": round(rss_mb(pid), 1)}}
    for round_ in (1, 2):
        times, errors = [], []

        def client_loop(k: int, round_: int = round_, times: list = times, errors: list = errors) -> None:
            r = random.Random(100 * round_ + k)
            with httpx.Client(timeout=60) as c:
                for _ in range(50):
                    try:
                        times.append(timed(c, url, payload(r)))
                    except Exception as exc:
                        errors.append(str(exc))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        out[f"load_round{round_}"] = {"requests": len(times) + len(errors), "errors": len(errors),
                                      "median_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 95), 1),
                                      "throughput_per_s": round(len(times) / wall, 1)}
        out["rss_mb"][f"after_round{round_}"] = round(rss_mb(pid), 1)
    return out


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (k - lo)


def screenshots(base: str, runs: list[dict], out: Path) -> list[str]:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/")
        for run in runs:
            page.select_option("#run", run["id"])
            page.wait_for_function("document.getElementById('examples').children.length >= 6")
            spec = httpx.get(f"{base}/api/runs/{run['id']}").json()
            page.click("#examples img:nth-child(1)" if "edit" in spec else "#examples img:nth-child(3)")
            page.wait_for_timeout(400)
            if "edit" in spec:
                page.locator("#edit-controls input[data-name=Smiling]").fill("1.8")
                caption = "Smiling = 1.8"
            else:
                page.click("#examples img:nth-child(5)")  # the main image; the second stays example 1
                page.wait_for_timeout(300)
                boxes = page.locator("#swap-controls input")
                for k in (0, 1, 2):
                    boxes.nth(k).check()
                caption = "swap:"
            page.wait_for_function(f"document.getElementById('edit-caption').textContent.includes({json.dumps(caption)})")
            page.wait_for_timeout(500)
            path = out / f"serve_{spec['model']}.png"
            page.screenshot(path=str(path), full_page=True)
            Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)
            written.append(str(path))
        browser.close()
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True)
    ap.add_argument("--screenshots", help="folder for the editor's screenshots")
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--no-load", action="store_true", help="skip the latency and load measurements (screenshots only)")
    args = ap.parse_args()
    port = free_port()
    proc = start(args.runs, port)
    base = f"http://127.0.0.1:{port}"
    try:
        runs = httpx.get(f"{base}/api/runs").json()
        results = []
        for run in [] if args.no_load else runs:
            r = measure(base, run, proc.pid)
            r["run"] = run["name"]
            results.append(r)
            print(json.dumps(r), flush=True)
        if args.screenshots:
            for path in screenshots(base, runs, Path(args.screenshots)):
                print("wrote", path)
        if args.json:
            Path(args.json).write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
