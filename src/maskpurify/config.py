"""Typed run configuration: dataclasses with defaults, loaded from YAML, overridden by ``--set key=value``.

Every run saves its resolved config, seed and command next to its outputs (:func:`save_run_record`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import platform
import re
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from maskpurify.version import __version__
from maskpurify.errors import UserError
from maskpurify.fileio import NotValidSyntax, atomic_write_json, atomic_write_text, parse_yaml, read_yaml

T = TypeVar("T")

# ----------------------------------------------------------------------------------------------------------------
# Numeric fields: one set of rules, by field name, for every config class and every CLI flag of the same name

#: Upper bounds that keep a typo (an extra zero or two) from running for days or filling the disk.
MAX_STEPS = 100_000_000
MAX_BATCH = 65_536
MAX_SAMPLES = 2_000_000  # rendered eyes per dataset (about 6 GB of shards at 36x60)
MAX_PREVIEW_ROWS = 100
MAX_SEED = 2**32 - 1
#: Widest layer of any network (``*_channels``, ``hidden``): checked before a network is built, so a typo such as
#: ``model.hidden=100000000`` is one line, not an allocation of hundreds of GB.
MAX_CHANNELS = 4096
#: Most residual blocks / ResNet depth of a network.
MAX_BLOCKS = 64
MAX_DEPTH = 6 * MAX_BLOCKS + 2
#: Largest weight of a loss term.
MAX_LOSS_WEIGHT = 1e6
#: ``device`` values: auto, cpu, cuda, cuda:N, mps.
DEVICE_PATTERN = re.compile(r"^(?:auto|cpu|mps|cuda(?::[0-9]{1,3})?)$")

#: (minimum, maximum or None) of integer fields, by name, in every config class (nested ones included) and for
#: every CLI flag of the same name. Names matched by pattern are in :func:`_int_rule`.
_INT_RULES: dict[str, tuple[int, int | None]] = {
    "steps": (1, MAX_STEPS), "max_steps": (0, MAX_STEPS), "batch_size": (1, MAX_BATCH),
    "n": (1, MAX_SAMPLES), "render_n": (1, MAX_SAMPLES), "reference_n": (1, MAX_SAMPLES),
    "shard_size": (1, MAX_BATCH), "limit": (1, None), "preview_n": (1, MAX_PREVIEW_ROWS), "workers": (1, 256),
    "seed": (0, MAX_SEED), "warmup": (0, MAX_STEPS), "num_threads": (0, 4096), "pretrain_d": (0, MAX_STEPS),
    "pretrain_r": (0, MAX_STEPS), "history_size": (1, MAX_SAMPLES), "k_d": (1, 1000), "k_g": (1, 1000),
    "hidden": (1, MAX_CHANNELS), "num_res_blocks": (0, MAX_BLOCKS), "depth": (2, MAX_DEPTH), "levels": (1, 8),
    "stem": (1, 2), "upsample": (1, 8), "num_labels": (2, 256), "num_classes": (2, 256),
    "attention_labels": (0, 255), "kid_subsets": (1, 10_000), "grid_examples": (0, MAX_PREVIEW_ROWS),
}


def _int_rule(name: str) -> tuple[int, int | None] | None:
    if name in _INT_RULES:
        return _INT_RULES[name]
    if name.endswith("_every"):
        return 1, MAX_STEPS
    if name.endswith("_seed"):
        return 0, MAX_SEED
    if name == "channels" or name.endswith("_channels"):
        return 1, MAX_CHANNELS
    return None


def _float_rule(name: str) -> tuple[float, float | None, bool] | None:
    """(minimum, maximum, minimum excluded) for float fields with a meaning fixed by their name."""
    if name == "lr" or name.startswith("lr_"):
        return 0.0, 1e3, True
    if name.endswith("_prob") or name.endswith("_fraction"):
        return 0.0, 1.0, False
    if name == "dropout":
        return 0.0, 0.999, False
    if name == "weight_decay":
        return 0.0, 1e3, False
    if name in ("augment", "no_eye", "clean", "confidence", "teacher_decay"):
        return 0.0, 1.0, False
    if name == "strength" or name == "self_training" or name.endswith("_weight"):
        return 0.0, MAX_LOSS_WEIGHT, False
    return None


def _str_rule(name: str, value: str) -> str | None:
    """What is wrong with string field ``name`` = ``value`` (None when nothing is)."""
    if name == "device" and not DEVICE_PATTERN.match(value):
        return f"must be auto, cpu, cuda, cuda:N or mps, got {value[:40]!r}"
    return None


def check_ranges(config: Any, prefix: str) -> None:
    """Refuse, in one line, a probability field (``*_prob``) outside [0, 1] or a (low, high) range field whose low
    is above its high: the sampling ranges of the renderer's presets and of the degradation model."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
            raise UserError(f"{prefix}.{f.name} must lie in [0, 1], got {value}")
        if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
            raise UserError(f"{prefix}.{f.name}: low {value[0]} is above high {value[1]}")


def check_field(where: str, name: str, value: Any) -> None:
    """Refuse a numeric value that cannot be meant, with one line naming ``where`` (a config key or a flag).

    Every float must be finite; fields named steps, batch_size, n, seed, lr, ..._every, ..._prob, ..._channels,
    hidden, device and the like follow the rules above, whichever config class or command they belong to (the
    items of a tuple or list field each follow its rule).
    """
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (tuple, list)):
        for item in value:  # conv_channels=(20, 50), attention_labels=(1, 2, 3): every item follows the rule
            check_field(where, name, item)
        return
    if isinstance(value, str):
        problem = _str_rule(name, value)
        if problem is not None:
            raise UserError(f"{where} {problem}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value}")
        rule = _float_rule(name)
        if rule is not None:
            low, high, open_low = rule
            if value < low or (open_low and value == low) or (high is not None and value > high):
                span = f"{'above' if open_low else 'at least'} {low:g}" + (f" and at most {high:g}" if high is not
                                                                            None else "")
                raise UserError(f"{where} must be {span}, got {value:g}")
    elif isinstance(value, int):
        rule = _int_rule(name)
        if rule is not None:
            low, high = rule
            if value < low:
                raise UserError(f"{where} must be at least {low}, got {value}")
            if high is not None and value > high:
                raise UserError(f"{where} must be at most {high:,} (a sane upper bound), got {value:,}")


def flag_type(name: str) -> typing.Callable[[str], int]:
    """An argparse ``type=`` for integer flag ``--name`` that applies :func:`check_field`'s rules (one line, exit 2
    through argparse)."""
    import argparse

    flag = "--" + name.replace("_", "-")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        try:
            check_field(flag, name, value)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(flag + " ")) from None
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def device_type(text: str) -> str:
    """An argparse ``type=`` for ``--device``: the values :data:`DEVICE_PATTERN` allows (one line, exit 2)."""
    import argparse

    problem = _str_rule("device", text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"config: '{where}' must be a mapping, got {value!r}")
        return from_dict(hint, value, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"config: '{where}' has an invalid value {value!r}")
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"config: '{where}' must be a mapping, got {value!r}")
        key_hint, value_hint = args if len(args) == 2 else (Any, Any)
        return {_coerce(k, key_hint, where): _coerce(v, value_hint, f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config: '{where}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"config: '{where}' must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"config: '{where}' must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config: '{where}' must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config: '{where}' must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"config: '{where}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"config: '{where}' must be a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (partial) mapping; unknown keys are an error, missing keys keep defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"config: unknown key '{prefix}{unknown[0]}' (known: {', '.join(sorted(names))})")
    kwargs = {key: _coerce(value, hints[key], prefix + key) for key, value in data.items()}
    for key, value in kwargs.items():
        check_field(f"config: '{prefix}{key}'", key, value)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-YAML form of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"config: cannot set '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``key.sub=value`` overrides."""
    tree: dict[str, Any] = to_dict(cls())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such config file")
        loaded = read_yaml(path)
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: a config file must be a YAML mapping")
        _merge(tree, loaded)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}: expected key=value")
        key, raw = item.split("=", 1)
        value = parse_set_value(key.strip(), raw)
        _set_path(tree, key.strip(), value)
    return from_dict(cls, tree)


def parse_set_value(key: str, raw: str) -> Any:
    """The value of ``--set KEY=RAW``, read as YAML 1.2 (``1e-3`` and ``030`` are numbers, ``1:30`` is a string);
    text that is not valid YAML stays a string (the typed config then says what it expected). Anchors, aliases,
    deep nesting and huge numbers are refused in one line naming ``--set KEY``."""
    if not raw:
        return ""
    try:
        return parse_yaml(raw, f"--set {key}")
    except NotValidSyntax:
        return raw


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


_COMMAND: list[str] | None = None


@contextlib.contextmanager
def running_command(argv: typing.Sequence[str]) -> typing.Iterator[None]:
    """Record the command being run for the duration of the call (the CLI uses this, so an in-process call
    reports its own arguments rather than the host process's)."""
    global _COMMAND
    previous, _COMMAND = _COMMAND, list(argv)
    try:
        yield
    finally:
        _COMMAND = previous


def command_line() -> str:
    """The command that started this run, quoted so it can be pasted back into a shell."""
    argv = list(_COMMAND) if _COMMAND is not None else list(sys.argv)
    if argv and argv[0].endswith(("maskpurify", "__main__.py")):
        argv[0] = "maskpurify"
    return shlex.join(argv)


def save_run_record(out_dir: str | Path, config: Any, seed: int | None, extra: dict[str, Any] | None = None,
                    name: str | None = None) -> None:
    """Write ``config.yaml`` (resolved) and ``run.json`` (command, seed, versions, time) into ``out_dir``.

    name: prefix both files (``NAME.config.yaml``, ``NAME.run.json``), for commands whose reports share a folder
    (``evaluate-gaze --name``), so one command's record never replaces another's."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}." if name else ""
    atomic_write_text(out / f"{prefix}config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    record = {
        "command": command_line(),
        "seed": seed,
        "maskpurify": __version__,
        "python": platform.python_version(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra or {})
    atomic_write_json(out / f"{prefix}run.json", record)


def parse_size(text: str | tuple[int, int] | list[int], min_side: int = 16, max_side: int = 1024
               ) -> tuple[int, int]:
    """'HxW' (or a pair) -> (height, width), each side within min_side..max_side; UserError otherwise."""
    if isinstance(text, str):
        parts = text.lower().replace("\u00d7", "x").split("x")
        try:
            if len(parts) != 2:
                raise ValueError
            height, width = int(parts[0]), int(parts[1])
        except ValueError:
            raise UserError(f"size '{text}': expected HEIGHTxWIDTH, e.g. 36x60") from None
    else:
        if len(text) != 2:
            raise UserError(f"size {text!r}: expected (height, width)")
        height, width = int(text[0]), int(text[1])
    if not (min_side <= height <= max_side and min_side <= width <= max_side):
        raise UserError(f"size {height}x{width}: height and width must lie between {min_side} and {max_side}")
    return height, width
