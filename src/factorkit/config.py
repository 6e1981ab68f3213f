"""Typed configuration: dataclasses with defaults, ``--set key=value`` overrides, YAML round trip.

A run's configuration has three sections, each a dataclass:

* ``model`` – the model's own ``Config`` (defaults = the paper's, comments cite it),
* ``data``  – the dataset's ``Options`` (seed, crop, …),
* ``train`` – :class:`TrainConfig` (steps, batch size, device, checkpoints, …).

``--set model.beta=4`` is parsed against the field's annotated type; an unknown key lists the
valid ones and a value of the wrong type names the expected type. Nothing here is global state.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml

from .errors import UsageError
from .files import atomic_write_text

CONFIG_VERSION = 1


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric config field, declared with it:
    ``steps: Annotated[int, Range(min=1)] = 2000``. ``--set``, ``fk.models.build(...)`` and
    config.yaml loading all check it, with one message naming the bound."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min itself not allowed (a learning rate > 0)
    max_open: bool = False

    def check(self, value: Any, key: str) -> Any:
        if value is None:
            return value
        low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        high = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if low or high:
            raise UsageError(f"{key}={value!r}: must be {self.describe()}")
        return value

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '≥'} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '≤'} {self.max:g}")
        return " and ".join(parts)


def positive(tp: Any = int) -> Any:
    """``Annotated[tp, Range(min=1)]`` for ints, ``> 0`` for floats."""
    return Annotated[tp, Range(min=1)] if tp is int else Annotated[tp, Range(min=0, min_open=True)]


def nonnegative(tp: Any = int) -> Any:
    return Annotated[tp, Range(min=0)]


def fraction(tp: Any = float, closed_top: bool = False) -> Any:
    """A value in [0, 1) (or [0, 1])."""
    return Annotated[tp, Range(min=0, max=1, max_open=not closed_top)]


@dataclass
class TrainConfig:
    """Everything about a training run that is not the model's maths."""

    steps: positive() = 2000  # optimisation steps (one call of model.train_step each)
    batch_size: positive() = 64  # images per process per step
    seed: nonnegative() = 0  # seeds weights, data order and every RNG (numpy takes no negative seed)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto = bf16 autocast on CUDA, off on CPU
    compile: bool = False  # torch.compile the model's modules (CUDA only benefits)
    checkpoint_every: nonnegative() = 500  # steps between checkpoints (0 = only at the end)
    keep_checkpoints: positive() = 3  # last K checkpoints kept
    log_every: positive() = 10  # steps between log.jsonl / TensorBoard scalar records
    image_every: nonnegative() = 500  # steps between TensorBoard image grids (0 = never)
    num_workers: nonnegative() = 2  # DataLoader worker processes (0 = load in the main process)
    # read a procedural dataset that supports it (faces) from a uint8 cache of its renders, built
    # before step 0 when the run draws ≥ the split's size in images; a batch is then a lookup, not a
    # render (docs/results.md §10). Images differ from live renders by uint8 rounding only
    prerender: bool = True


# --------------------------------------------------------------------------------------------
# type handling


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extras = get_args(tp)
        ranges = [e.describe() for e in extras if isinstance(e, Range)]
        return _type_name(inner) + (f" {', '.join(ranges)}" if ranges else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        inner = get_args(tp)[0] if get_args(tp) else Any
        return f"comma-separated list of {_type_name(inner)}"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parse the string ``text`` as a value of type ``tp`` (used by ``--set``)."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extras = get_args(tp)
        value = parse_value(text, inner, key)
        for e in extras:
            if isinstance(e, Range):
                e.check(value, f"--set {key}")
        return value
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if str(choice).lower() == text.strip().lower():
                return choice
        raise UsageError(f"--set {key}={text}: expected {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", "~", ""):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(text, arg, key)
            except UsageError:
                continue
        raise UsageError(f"--set {key}={text}: expected {_type_name(tp)}")
    if origin in (tuple, list):
        inner = get_args(tp)[0] if get_args(tp) else str
        parts = [p for p in text.replace("[", "").replace("]", "").split(",") if p.strip()]
        values = [parse_value(p.strip(), inner, key) for p in parts]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"--set {key}={text}: expected a boolean (true/false)")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"--set {key}={text}: expected an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"--set {key}={text}: expected a number") from None
    if tp is str:
        return text
    raise UsageError(f"--set {key}: unsupported field type {tp}")


def check_value(value: Any, tp: Any, key: str) -> Any:
    """Validate (and lightly coerce) an already-typed value, e.g. one read from YAML."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extras = get_args(tp)
        value = check_value(value, inner, key)
        for e in extras:
            if isinstance(e, Range):
                e.check(value, key)
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise UsageError(f"{key}={value!r}: expected {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for arg in get_args(tp):
            if arg is type(None):
                continue
            try:
                return check_value(value, arg, key)
            except UsageError:
                continue
        raise UsageError(f"{key}={value!r}: expected {_type_name(tp)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            return parse_value(value, tp, key)
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{key}={value!r}: expected {_type_name(tp)}")
        inner = get_args(tp)[0] if get_args(tp) else Any
        items = [v if inner is Any else check_value(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{key}={value!r}: expected a boolean (true/false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UsageError(f"{key}={value!r}: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UsageError(f"{key}={value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"{key}={value!r}: expected a string")
    return value


def field_types(cls_or_obj: Any) -> dict[str, Any]:
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in fields(cls) if f.init}


def replace_checked(obj: Any, section: str, values: dict[str, Any]) -> Any:
    """``dataclasses.replace`` that rejects unknown keys and checks types."""
    types_ = field_types(obj)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise UsageError(
            f"unknown key {section}.{unknown[0]}; valid {section} keys: "
            + ", ".join(f"{section}.{k}" for k in types_)
        )
    checked = {k: check_value(v, types_[k], f"{section}.{k}") for k, v in values.items()}
    return dataclasses.replace(obj, **checked)


# --------------------------------------------------------------------------------------------
# the run configuration

SECTIONS = ("model", "data", "train")

# train.* keys that a resumed run may change: they change neither the model, the data, nor the
# result of the steps already taken (only how long it runs, how often it writes, how it loads)
RESUME_SAFE = ("train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
               "train.image_every", "train.num_workers", "train.device")


@dataclass
class RunConfig:
    """Everything needed to rebuild and continue a run; written to ``DIR/config.yaml``."""

    model_name: str
    data_name: str
    model: Any  # the model's Config dataclass
    data: Any  # the dataset's Options dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    data_root: str | None = None
    preset: str = "fast"

    def valid_keys(self) -> list[str]:
        return [f"{s}.{k}" for s in SECTIONS for k in field_types(getattr(self, s))]

    def apply(self, overrides: dict[str, Any]) -> None:
        """Apply ``{"model.beta": 4, ...}`` (already-typed values), checking every key."""
        by_section: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section not in SECTIONS or not name:
                raise UsageError(
                    f"unknown key {key!r}: keys look like model.NAME, data.NAME or train.NAME; "
                    f"valid keys: {', '.join(self.valid_keys())}"
                )
            by_section.setdefault(section, {})[name] = value
        for section, values in by_section.items():
            setattr(self, section, replace_checked(getattr(self, section), section, values))

    def apply_strings(self, assignments: list[str]) -> None:
        """Apply ``["model.beta=4", ...]`` as typed on the command line."""
        self.apply(self.parse_strings(assignments))

    def parse_strings(self, assignments: list[str]) -> dict[str, Any]:
        """``["model.beta=4", ...]`` → ``{"model.beta": 4.0}``, each key and value checked."""
        parsed: dict[str, Any] = {}
        for item in assignments:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep:
                raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.beta=4")
            section, _, name = key.partition(".")
            if section not in SECTIONS or not name:
                raise UsageError(
                    f"--set {key}: unknown key; valid keys: {', '.join(self.valid_keys())}"
                )
            types_ = field_types(getattr(self, section))
            if name not in types_:
                raise UsageError(
                    f"--set {key}: unknown key; valid {section} keys: "
                    + ", ".join(f"{section}.{k}" for k in types_)
                )
            parsed[key] = parse_value(text, types_[name], key)
        return parsed

    def get(self, key: str) -> Any:
        """The value of ``section.name``."""
        section, _, name = key.partition(".")
        return getattr(getattr(self, section), name)

    # --- YAML ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> dict[str, Any]:
            out = {}
            for k, v in dataclasses.asdict(obj).items():
                out[k] = list(v) if isinstance(v, tuple) else v
            return out

        return {
            "version": CONFIG_VERSION,
            "preset": self.preset,
            "model": {"name": self.model_name, **plain(self.model)},
            "data": {"name": self.data_name, "root": self.data_root, **plain(self.data)},
            "train": plain(self.train),
        }

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def read_run_config(path: str | Path, model_config: Callable[[str], type],
                    data_options: Callable[[str], type]) -> RunConfig:
    """Read ``config.yaml`` and rebuild the typed configuration. ``model_config(name)`` and
    ``data_options(name)`` give the Config / Options dataclass of a model or dataset name (the
    registries live above this module: ``train.rundir.load_config`` passes them in)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no config.yaml here; is this a factorkit run directory?")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: damaged, not valid YAML ({problem}{at}); restore it or retrain the run") from None
    if not isinstance(raw, dict) or not {"model", "data", "train"} <= set(raw) or \
            not all(isinstance(raw[k], dict) for k in SECTIONS) or "name" not in raw["model"] or "name" not in raw["data"]:
        raise UsageError(f"{path}: damaged: expected sections model (with name), data (with name) and train; "
                         "restore it or retrain the run")
    model_raw = dict(raw["model"])
    data_raw = dict(raw["data"])
    model_name = model_raw.pop("name")
    data_name = data_raw.pop("name")
    data_root = data_raw.pop("root", None)
    return RunConfig(
        model_name=model_name,
        data_name=data_name,
        model=replace_checked(model_config(model_name)(), "model", model_raw),
        data=replace_checked(data_options(data_name)(), "data", data_raw),
        train=replace_checked(TrainConfig(), "train", dict(raw["train"])),
        data_root=data_root,
        preset=raw.get("preset", "fast"),
    )
