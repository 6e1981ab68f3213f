"""``factorkit`` command line. Each sub-command parses its flags and calls the Python API.

Exit codes: 0 success, 2 usage/input error (one line on stderr), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from .errors import FactorkitError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line through UsageError (exit 2)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")

    def parse_args(self, args=None, namespace=None):  # extra arguments named one by one, quoted ('' is visible)
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            raise UsageError(f"{self.prog}: unrecognized argument{'s' if len(extra) > 1 else ''}: "
                             f"{', '.join(repr(a) for a in extra)} (see {self.prog} --help)")
        return parsed


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _say(text: str) -> None:
    if _rank() == 0:
        print(text, file=sys.stderr)


# --- paths the user gives: checked before any work -----------------------------------------------


def _readable(path: Path, label: str) -> None:
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise UsageError(f"{label}: permission denied (cannot read it); check its permissions")


def check_run_dir(text: str, label: str = "DIR") -> Path:
    """A run directory: exists, is a folder, readable, holds a config.yaml."""
    path = Path(text)
    if text == "-":
        raise UsageError(f"{label} -: give the path of a run directory (standard input is not read)")
    if not path.exists():
        raise UsageError(f"{path}: no such run directory")
    if not path.is_dir():
        raise UsageError(f"{path}: is a file, not a run directory (give the folder `factorkit train --out` wrote)")
    _readable(path, str(path))
    if not (path / "config.yaml").exists():
        raise UsageError(f"{path}: holds no factorkit run (no config.yaml); give the folder `factorkit train --out` wrote")
    return path


def check_image_file(text: str, flag: str) -> Path:
    """An input image: a readable file (PIL checks it is an image)."""
    if text == "-":
        raise UsageError(f"{flag} -: reading an image from standard input is not supported; give a PNG or JPEG file")
    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not an image; give a PNG or JPEG file")
    if not path.exists():
        raise UsageError(f"{flag} {path}: no such file")
    _readable(path, f"{flag} {path}")
    return path


def check_out_file(text: str, flag: str = "--out", suffix: str = ".png") -> Path:
    """An output file: not a folder, of the format written, in a folder that can be made and written."""
    path = Path(text)
    if text == "-" or path.is_dir():
        raise UsageError(f"{flag} {text}: is {'standard output' if text == '-' else 'a folder'}; give a file name "
                         f"ending in {suffix}, e.g. {Path(text if text != '-' else '.') / ('edit' + suffix)}")
    if path.suffix.lower() != suffix:
        raise UsageError(f"{flag} {path}: the file is written as {suffix[1:].upper()}; name it …{suffix}")
    _writable_parent(path, flag)
    return path


def check_out_dir(text: str, flag: str = "--out") -> Path:
    """An output folder: not an existing file, and writable (or creatable)."""
    path = Path(text)
    if text == "-" or (path.exists() and not path.is_dir()):
        raise UsageError(f"{flag} {text}: is {'standard output' if text == '-' else 'an existing file'}; "
                         "give a folder for the run directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: permission denied (cannot write into it)")
    else:
        _writable_parent(path, flag)
    return path


def _writable_parent(path: Path, flag: str) -> None:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, so the folder cannot be made")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: permission denied (cannot write into {parent})")


def check_data_root(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise UsageError(f"--data-root {path}: no such directory")
    if not path.is_dir():
        raise UsageError(f"--data-root {path}: is a file; give the folder that holds the dataset's files")
    _readable(path, f"--data-root {path}")
    return path


# --- datasets / models ---------------------------------------------------------------------------


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import registry

    rows = []
    for name in registry.names():
        e = registry.entry(name)
        info = e.info.to_dict()
        info["options"] = registry.option_names(name)
        if e.factor_note:
            info["note"] = e.factor_note
        rows.append(info)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="factorkit datasets")
    for col in ("name", "image", "factors (values)", "attributes", "--data-root"):
        table.add_column(col)
    for r in rows:
        factors = ", ".join(f"{f['name']} ({f['size']})" for f in r["factors"]) or r.get("note", "-")
        attrs = ", ".join(r["attributes"]) or r.get("note", "-")
        table.add_row(r["name"], "x".join(map(str, r["image_shape"])), factors, attrs, "yes" if r["needs_data_root"] else "no")
    Console().print(table)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import registry

    rows = []
    for name in registry.names():
        cls = registry.model_class(name)
        rows.append({
            "name": name,
            "paper": cls.paper,
            "supervision": cls.supervision,
            "layout": cls.layout,
            "operations": sorted(cls.operations),
        })
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="factorkit models")
    for col in ("name", "paper", "supervision", "representation", "operations"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["paper"], r["supervision"], r["layout"], ", ".join(r["operations"]))
    Console().print(table)
    return 0


# --- train ---------------------------------------------------------------------------------------


def build_run_config(args: argparse.Namespace):
    """RunConfig from defaults → preset → explicit flags → --set (later wins)."""
    from .api import build_run_config as build
    from .data import registry as data_registry
    from .models import registry as model_registry

    model_registry.model_class(args.model)  # an unknown model, then dataset, is named before the root is looked at
    data_registry.entry(args.data)
    if args.data_root:
        check_data_root(args.data_root)
    return build(args.model, args.data, preset=args.preset, data_root=args.data_root,
                 overrides=_train_flags(args), assignments=args.set)


def _apply_resume_flags(cfg, args: argparse.Namespace) -> None:
    """Flags given with --resume: a key that is safe to change (steps, intervals, workers, device)
    is applied and echoed; one that would change the model, the data or the finished steps is
    refused, naming its saved value. A flag equal to the saved value is accepted silently."""
    from .config import RESUME_SAFE

    asked = {k: v for k, v in _train_flags(args).items() if v is not None}
    asked.update(cfg.parse_strings(args.set or []))
    if args.data_root is not None and args.data_root != cfg.data_root:
        raise UsageError(f"--resume: --data-root {args.data_root} differs from the run's saved {cfg.data_root!r}; "
                         "a resumed run keeps its data (train a new run to change it)")
    if args.preset is not None and args.preset != cfg.preset:
        raise UsageError(f"--resume: --preset {args.preset} differs from the run's saved {cfg.preset!r}; "
                         "a resumed run keeps its preset (train a new run to change it)")
    changed = {k: v for k, v in asked.items() if cfg.get(k) != v}
    for key, value in changed.items():
        if key not in RESUME_SAFE:
            raise UsageError(f"--resume: {key}={value!r} differs from the run's saved {key}={cfg.get(key)!r}; it would "
                             f"change the model, the data or the finished steps. Keys a resume may change: "
                             f"{', '.join(RESUME_SAFE)}")
    if changed:
        _say("resuming with " + ", ".join(f"{k}={v} (was {cfg.get(k)})" for k, v in changed.items()))
        cfg.apply(changed)


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "train.steps": args.steps,
        "train.batch_size": args.batch_size,
        "train.seed": args.seed,
        "train.device": args.device,
        "train.checkpoint_every": args.checkpoint_every,
        "train.num_workers": args.num_workers,
    }


def cmd_train(args: argparse.Namespace) -> int:
    from .api import default_out, train
    from .data.registry import load as load_data
    from .models.registry import build
    from .train.rundir import load_config

    if args.resume:
        if not args.out:
            raise UsageError("--resume needs --out DIR (the run directory to continue)")
        out = check_out_dir(args.out)
        if not (out / "config.yaml").is_file():
            raise UsageError(f"--resume: {out} holds no run (no config.yaml); train without --resume first")
        cfg = load_config(out / "config.yaml")
        if cfg.model_name != args.model or cfg.data_name != args.data:
            raise UsageError(
                f"--resume: {out} trains {cfg.model_name} on {cfg.data_name}, not {args.model} on {args.data}"
            )
        _apply_resume_flags(cfg, args)
    else:
        out = check_out_dir(args.out) if args.out else default_out(args.model, args.data)
        cfg = build_run_config(args)

    dataset = load_data(cfg.data_name, "train", root=cfg.data_root, options=cfg.data)
    model = build(cfg.model_name, dataset, preset=cfg.preset, seed=cfg.train.seed, config=cfg.model)
    result = train(model, dataset, out=out, resume=args.resume, progress=False if args.quiet else None, config=cfg)
    losses = " ".join(f"{k}={v:.4g}" for k, v in result.losses.items())
    _say(
        f"trained {cfg.model_name} on {cfg.data_name}: {result.steps} steps, "
        f"{result.steps_per_second:.2f} steps/s; {losses}\nrun directory: {result.out}"
    )
    return 0


# --- evaluate --------------------------------------------------------------------------------------


def _parse_params(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--param higgins.num_train=1000`` → {"higgins": {"num_train": "1000"}}; the metric registry
    checks each metric and key and parses the value as the declared default's type."""
    from .metrics.registry import resolve_params

    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        metric, _, name = key.partition(".")
        if not sep or not name:
            raise UsageError(f"--param {item!r}: expected METRIC.KEY=VALUE, e.g. --param higgins.num_train=1000")
        out.setdefault(metric.strip(), {})[name.strip()] = text
    resolve_params(out)  # unknown metric / key / wrong type → UsageError now, before any work
    return out


def cmd_metrics(args: argparse.Namespace) -> int:
    from .metrics.registry import FLOORS, table

    rows = table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="factorkit metrics (--param NAME.KEY=VALUE sets a parameter)")
    for col in ("name", "group", "needs", "parameters (defaults)", "floor", "default", "arrays (score)", "--fast"):
        t.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        kinds = "/".join(r["factor_kinds"]) if r["arrays"] else "-"
        t.add_row(r["name"], r["group"], ", ".join(r["needs"]) or "-", params, r["floor"],
                  "yes" if r["default"] else "by name", kinds, r["fast"] or "-")
    Console().print(t)
    for k, v in FLOORS.items():
        print(f"floor {k}: {v}")
    return 0


def floor_text(record: dict, key: str) -> str:
    """``0.6550 random codes`` — the floor metrics.json files beside ``key``, and how it was found."""
    value = record.get("floors", {}).get(key)
    if value is None:
        return ""
    return f"{value:.4f} {record.get('floor_kind', {}).get(key, '').replace('-', ' ')}".rstrip()


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import load
    from .data import registry as data_registry
    from .metrics.evaluate import Settings, edit_attributes, evaluate
    from .metrics.registry import check as check_metrics

    for flag, value in (("--num-train", args.num_train), ("--num-test", args.num_test)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be ≥ 1 (rows of the split to score)")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be ≥ 0")
    params = _parse_params(args.param)
    run_dir = check_run_dir(args.dir)
    model = load(run_dir)
    cfg = model.run_config
    test = data_registry.load(cfg.data_name, "test", root=cfg.data_root, options=cfg.data)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    settings = Settings(
        fast=args.fast,
        seed=args.seed,
        attributes=tuple(a.strip() for a in args.attributes.split(",")) if args.attributes else None,
        params=params,
        **({"num_train": args.num_train} if args.num_train is not None else {}),
        **({"num_test": args.num_test} if args.num_test is not None else {}),
    )
    check_metrics(model, test.info, metrics)  # unknown / inapplicable → one clear line, before any work
    edit_attributes(model, test.info, settings.attributes)  # unknown / not edited by the model → exit 2 now
    _say(f"evaluating {cfg.model_name} ({run_dir}) on {cfg.data_name}/test")
    record = evaluate(model, test, metrics=metrics, settings=settings, progress=not args.json, out=run_dir / "metrics.json")
    if args.json:
        print(json.dumps({k: record[k] for k in ("model", "data", "step", "metrics", "seconds")}, indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{cfg.model_name} on {cfg.data_name} (test split)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("floor (measured, same rows)", justify="right")
        for k, v in record["metrics"].items():
            table.add_row(k, f"{v:.4f}", floor_text(record, k))
        Console(stderr=False).print(table)
        _say(f"wrote {run_dir / 'metrics.json'}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .metrics import arrays

    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be ≥ 0")
    params = _parse_params(args.param)
    codes, factors, names = arrays.load_table(args.codes, args.factors)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.out:
        check_out_file(args.out, "--out", ".json")
    record = arrays.score(codes, factors, metrics=metrics, seed=args.seed, fast=args.fast, params=params,
                          floors=not args.no_floors, kind=args.factor_kind, test_fraction=args.test_fraction,
                          progress=not args.json, names=names)
    record = {"codes": args.codes, "factors": args.factors, "rows": record.pop("rows"), **record}
    if args.out:
        from .files import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(record, indent=1, default=str))
    if args.json:
        print(json.dumps({k: record[k] for k in ("metrics", "floors", "factor_kind", "seconds")}, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    shape = f"{len(codes)} × {codes.shape[1] if codes.ndim == 2 else '?'} codes"
    table = Table(title=f"{args.codes}: {shape}, {record['factor_kind']} factors")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("floor (random codes, same rows)", justify="right")
    for k, v in record["metrics"].items():
        floor = record["floors"].get(k)
        table.add_row(k, f"{v:.4f}", "" if floor is None else f"{floor:.4f}")
    Console().print(table)
    if args.out:
        _say(f"wrote {args.out}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .study import aggregate, runner
    from .study import load as load_study

    study = load_study(args.spec)  # every name, key, type and metric checked: nothing has run yet
    out = check_out_dir(args.out)
    if args.cpus_per_run is not None and args.cpus_per_run < 1:
        raise UsageError(f"--cpus-per-run {args.cpus_per_run}: must be ≥ 1")
    _say(f"study {study.name}: {len(study.runs)} runs ({len(study.entries)} entries × {len(study.data)} datasets × "
         f"{len(study.seeds)} seeds) into {out}")
    results = runner.run_study(study, out, address=args.address, cpus_per_run=args.cpus_per_run,
                               use_ray=False if args.no_ray else None, progress=not args.quiet)
    summary = aggregate.write(study, out)
    failed = [r for r in results if r["state"] == "failed"]
    for c in summary["claims"]:
        _say(f"claim {c['claim']} on {c['data']}: {c.get('text', c['verdict'])}")
    for r in failed:
        _say(f"failed: {r['name']}: {r['error']} (traceback in {out / 'runs' / r['name'] / 'error.txt'})")
    _say(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'results.json'}")
    return 1 if failed else 0


# --- edit / report / demo ------------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from .api import load
    from .viz.grids import save_png, traversal_grid
    from .viz.io import read_image

    swapping = args.swap_with is not None
    ops = [not swapping and (args.attribute is not None or args.value is not None), swapping, args.traverse is not None]
    if sum(ops) != 1:
        raise UsageError("give exactly one edit: --attribute NAME --value V, --swap-with OTHER.png --chunks I,J "
                         "(or --attribute NAME for attribute pieces), or --traverse K")
    if ops[0] and (args.attribute is None or args.value is None):
        raise UsageError("--attribute and --value go together, e.g. --attribute Smiling --value 1.5")
    if swapping and args.value is not None:
        raise UsageError("--value does not go with --swap-with: a swap takes whole pieces (--chunks I,J or --attribute NAME)")
    if swapping and (args.chunks is None) == (args.attribute is None):
        raise UsageError("--swap-with needs one of --chunks I,J (chunk numbers) or --attribute NAME[,NAME] "
                         "(attribute pieces), taken from --image")
    if args.chunks is not None and args.swap_with is None:
        raise UsageError("--chunks needs --swap-with OTHER.png")
    if args.steps < 2:
        raise UsageError(f"--steps {args.steps}: a --traverse strip needs at least 2 images")
    image_path = check_image_file(args.image, "--image")
    other_path = check_image_file(args.swap_with, "--swap-with") if args.swap_with is not None else None
    out_path = check_out_file(args.out)
    model = load(check_run_dir(args.dir), edit_output=args.edit_output)
    info = model.info
    image, notice = read_image(image_path, info.channels, info.size)
    if notice:
        _say(f"factorkit: note: {notice}")
    if ops[0]:
        model.require("edit")
        info.attribute_index(args.attribute)
        out = model.edit(image, attribute=args.attribute, value=args.value)[0]
    elif ops[1]:
        model.require("swap")
        other, notice = read_image(other_path, info.channels, info.size)
        if notice:
            _say(f"factorkit: note: {notice}")
        if args.attribute is not None:
            pieces = model.chunk_names()
            by_case = {p.lower(): p for p in pieces}
            names = [by_case.get(a.strip().lower(), a.strip()) for a in args.attribute.split(",") if a.strip()]
            unknown = [a for a in names if a not in pieces]
            if unknown or not names:
                raise UsageError(f"--attribute {args.attribute!r}: {model.name} swaps the pieces {', '.join(pieces)}"
                                 + ("" if any(p in info.attributes for p in pieces) else " (chunks: use --chunks I,J)"))
            out = model.swap(image, other, chunks=names)[0]
        else:
            if not args.chunks.strip():
                raise UsageError("--swap-with needs --chunks I,J (the chunks taken from --image)")
            try:
                chunks = [int(c) for c in args.chunks.split(",") if c.strip()]
            except ValueError:
                raise UsageError(f"--chunks {args.chunks!r}: expected comma-separated chunk numbers, e.g. 0,3") from None
            out = model.swap(image, other, chunks=chunks)[0]
    else:
        model.require("traverse")
        code = model.encode(image)
        if not 0 <= args.traverse < code.dim:
            raise UsageError(f"--traverse {args.traverse}: the code has dimensions 0..{code.dim - 1}")
        lo, hi = model.traversal_range(args.traverse)
        values = torch.linspace(lo, hi, args.steps)
        out = traversal_grid(model, image, args.traverse, values)
    path = save_png(out.cpu(), out_path)
    _say(f"wrote {path}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .api import load
    from .viz.grids import grid, save_png

    if args.n < 1:
        raise UsageError(f"--n {args.n}: draw at least 1 sample")
    if args.traverse is not None and args.steps < 2:
        raise UsageError(f"--steps {args.steps}: a --traverse strip needs at least 2 images")
    out_path = check_out_file(args.out)
    model = load(check_run_dir(args.dir))
    model.require("sample")
    generator = torch.Generator().manual_seed(args.seed)
    if args.traverse is None:
        images = model.sample(args.n, generator).cpu()
        cols = math.ceil(math.sqrt(args.n))
        pad = torch.ones(cols * math.ceil(args.n / cols) - args.n, *images.shape[1:])
        out = grid(torch.cat([images, pad]).view(-1, cols, *images.shape[1:]))
    else:
        width = model.sample_code(1, torch.Generator().manual_seed(0)).dim
        if not 0 <= args.traverse < width:
            raise UsageError(f"--traverse {args.traverse}: the code has dimensions 0..{width - 1}")
        lo, hi = model.traversal_range(args.traverse)
        out = grid(model.traverse_samples(args.n, args.traverse, torch.linspace(lo, hi, args.steps), generator).cpu())
    path = save_png(out, out_path)
    _say(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .study.report import build_study_report, is_study_dir
    from .viz.report import build_report

    path = build_study_report(args.dir) if is_study_dir(Path(args.dir)) else build_report(check_run_dir(args.dir))
    _say(f"wrote {path}")
    print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve.app import serve
    except ImportError as exc:
        raise UsageError(f"factorkit serve needs the serve extra ({exc.name} is missing): pip install 'factorkit[serve]'") from None
    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (give a run directory or a folder of runs)")
    _readable(root, str(root))
    serve(root, host=args.host, port=args.port, judge=args.judge, edit_output=args.edit_output)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps {args.steps}: must be ≥ 1")
    return run_demo(str(check_out_dir(args.out)) if args.out else None, steps=args.steps)


# --- parser --------------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="factorkit", description="Learn disentangled image representations and edit images with them.")
    p.add_argument("--version", action="version", version="factorkit 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("datasets", help="list datasets, their factors and attributes")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_datasets)

    s = sub.add_parser("models", help="list models with paper, supervision and representation")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("train", help="train a model; writes a run directory")
    s.add_argument("model", help="model name (see `factorkit models`)")
    s.add_argument("--data", required=True, help="dataset name (see `factorkit datasets`)")
    s.add_argument("--data-root", help="folder with the dataset's files (digits, celeba, folder)")
    s.add_argument("--out", help="run directory (default runs/MODEL-DATA-YYYYmmdd-HHMMSS)")
    s.add_argument("--steps", type=int, help="optimisation steps (default: the preset's)")
    s.add_argument("--batch-size", type=int, help="images per process per step")
    s.add_argument("--seed", type=int)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"])
    s.add_argument("--preset", choices=["fast", "paper"], default=None,
                   help="fast (default) = CPU-friendly defaults; paper = the paper's hyper-parameters")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.beta=4 (repeatable)")
    s.add_argument("--checkpoint-every", type=int, metavar="N", help="steps between checkpoints")
    s.add_argument("--num-workers", type=int, help="data loader worker processes")
    s.add_argument("--resume", action="store_true", help="continue --out DIR from its newest valid checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("metrics", help="list metrics: what each needs, its parameters, how its floor is obtained")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("evaluate", help="run metrics on the held-out split; writes DIR/metrics.json")
    s.add_argument("dir", help="run directory")
    s.add_argument("--metrics", help="comma-separated metric names (default: all that apply, "
                   "except higgins, factorvae, edit-intensity)")
    s.add_argument("--json", action="store_true", help="print the scores as JSON")
    s.add_argument("--fast", action="store_true", help="each metric's documented fast mode (the --fast column of "
                   "`factorkit metrics`: DCI and downstream's boosted trees on 256 quantile bins per code, InfoM/InfoC "
                   "with the histogram MI estimator)")
    s.add_argument("--attributes", help="edit metrics: comma-separated attributes (default: all)")
    s.add_argument("--num-train", type=int, help="train-split rows for the array metrics (default 10000)")
    s.add_argument("--num-test", type=int, help="test-split rows (default 5000)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", metavar="METRIC.KEY=VALUE",
                   help="override a metric hyper-parameter, e.g. --param higgins.num_train=1000")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("score", help="every applicable metric on plain arrays of codes and factors, with floors",
                       description="Score codes against factors: a .npz holding arrays `codes` (N, D) and `factors` "
                       "(N, K), or two files (.npy, .npz or .csv; a CSV may start with a header of factor names). "
                       "Metrics that read held-out rows get a seeded 80/20 split; the others score every row. "
                       "Beside each score: the same metric on seeded Gaussian codes of the same shape (its floor).")
    s.add_argument("codes", help="CODES.npy / .csv, or one .npz holding codes and factors")
    s.add_argument("factors", nargs="?", help="FACTORS.npy / .npz / .csv (1-D: one factor)")
    s.add_argument("--metrics", help="comma-separated metric names (default: every array metric that applies; "
                   "see `factorkit metrics`)")
    s.add_argument("--factor-kind", choices=("auto", "discrete", "continuous"), default="auto",
                   help="auto (default): continuous if any factor value is not an integer")
    s.add_argument("--fast", action="store_true", help="documented fast mode of each metric (`factorkit metrics`)")
    s.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of the rows (default 0.2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", metavar="METRIC.KEY=VALUE",
                   help="override a metric hyper-parameter, e.g. --param mig.num_bins=10")
    s.add_argument("--no-floors", action="store_true", help="skip the random-code floors")
    s.add_argument("--json", action="store_true", help="print scores and floors as JSON")
    s.add_argument("--out", help="also write everything (scores, floors, details, seconds) to this .json file")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("study", help="run a study spec (YAML): entries × datasets × seeds, resumable, on Ray")
    s.add_argument("spec", help="study spec (YAML; see studies/)")
    s.add_argument("--out", required=True, help="study directory (runs/, results.csv, summary.md); rerun to resume")
    s.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray in-process)")
    s.add_argument("--cpus-per-run", type=int, help="CPUs (and torch threads) per run (default: the spec's, else 1)")
    s.add_argument("--no-ray", action="store_true", help="run one after another in this process")
    s.add_argument("--quiet", action="store_true", help="no progress table")
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("edit", help="edit one image with a trained model (or draw a traversal strip)")
    s.add_argument("dir", help="run directory")
    s.add_argument("--image", required=True, help="input PNG/JPEG (converted to the model's size and mode)")
    s.add_argument("--attribute", help="attribute to set, e.g. Smiling; with --swap-with, the attribute pieces taken "
                   "from --image (dna-gan)")
    s.add_argument("--value", type=_number, help="value for --attribute: any real number, e.g. 1.5")
    s.add_argument("--swap-with", help="second image for a chunk swap")
    s.add_argument("--chunks", help="chunks taken from --image, e.g. 0,3 (the rest from --swap-with); with "
                   "--swap-with, --attribute NAME[,NAME] names attribute pieces instead (dna-gan)")
    s.add_argument("--traverse", type=int, metavar="K", help="draw a strip varying code dimension K")
    s.add_argument("--steps", type=int, default=7, help="images in a --traverse strip")
    s.add_argument("--edit-output", metavar="MODE", help="how the edit is returned, for models with the switch "
                   "(model.edit_output): decoded (the papers: the decoder's image), residual (the input plus the "
                   "decoder's change), masked (that change weighed by a mask: the decoder's under dna-gan's children=masked, "
                   "else the change's own blurred magnitude); default: the run's")
    s.add_argument("--out", required=True, help="output PNG (written atomically)")
    s.set_defaults(func=cmd_edit)

    s = sub.add_parser("sample", help="draw samples from a generative model (or sweep one code dimension of each)")
    s.add_argument("dir", help="run directory")
    s.add_argument("--n", type=int, default=16, help="samples (rows of a --traverse grid); default 16")
    s.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default 0)")
    s.add_argument("--traverse", type=int, metavar="K", help="rows = samples, columns = code dimension K swept over "
                   "its range (a GAN's knob)")
    s.add_argument("--steps", type=int, default=7, help="columns of a --traverse grid")
    s.add_argument("--out", required=True, help="output PNG (written atomically)")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("report", help="write DIR/report.html (self-contained), for a run or a study directory")
    s.add_argument("dir", help="run directory, or a study directory (`factorkit study --out`)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("serve", help="web editor for a run (or a picker over the runs in a folder), with a JSON API")
    s.add_argument("dir", help="a run directory, or a folder holding run directories")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    s.add_argument("--judge", choices=("auto", "off"), default="auto",
                   help="auto: show the judge's readings on procedural datasets (trained in the background on first "
                        "use); off: none")
    s.add_argument("--edit-output", metavar="MODE", help="how every served run returns its edits (model.edit_output): "
                   "decoded, residual or masked; each run must have the switch; default: each run's own")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("demo", help="train mddAE on procedural faces in minutes, evaluate, write the report")
    s.add_argument("--out", help="run directory (default runs/demo-YYYYmmdd-HHMMSS)")
    s.add_argument("--steps", type=int, help="training steps (default: the demo preset's)")
    s.set_defaults(func=cmd_demo)
    return p


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    if _rank() == 0:
        print(f"factorkit: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    warnings.showwarning = _warning_line
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"factorkit: error: {exc}", file=sys.stderr)
        return 2
    except FactorkitError as exc:
        print(f"factorkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("factorkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
