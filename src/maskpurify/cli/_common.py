"""Arguments shared by sub-commands that take a typed config."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from maskpurify.config import check_field, device_type, flag_type, load_config

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="config file (defaults apply to every key not given)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set train.steps=2000 (repeatable)")


def add_training_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The flags every trainer shares: output folder, resume, an early stop, device and progress bar."""
    parser.add_argument("--out", metavar="DIR", default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start afresh even when OUT holds a checkpoint (OUT/last.json): the earlier run's "
                        "checkpoint, log, previews and weights there are removed (the rendered OUT/data is kept). "
                        "Without it, a checkpoint is resumed only with the settings of its run (threads, device "
                        "and the log/eval/preview/checkpoint intervals may change)")
    parser.add_argument("--max-steps", type=flag_type("max_steps"), metavar="N", help="stop after N steps (resumable), e.g. to test")
    parser.add_argument("--device", type=device_type, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_config(cls: type[T], args: argparse.Namespace, flags: Iterable[str] = ()) -> T:
    """Defaults of ``cls``, then ``--config``, then ``--set``; then each of ``flags`` (config field names whose
    command-line flag has default None) that was given on the command line, which wins."""
    config = load_config(cls, args.config, args.overrides)
    given: dict[str, Any] = {name: getattr(args, name) for name in flags if getattr(args, name, None) is not None}
    for name, value in given.items():  # a flag follows the same rules as the config key it replaces
        check_field("--" + name.replace("_", "-"), name, value)
    return dataclasses.replace(config, **given) if given else config  # type: ignore[type-var]
