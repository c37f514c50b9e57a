"""Arguments shared by sub-commands that take a typed config."""

from __future__ import annotations

import argparse
from typing import TypeVar

from maskpurify.config import load_config

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="config file (defaults apply to every key not given)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set train.steps=2000 (repeatable)")


def resolve_config(cls: type[T], args: argparse.Namespace) -> T:
    return load_config(cls, args.config, args.overrides)
