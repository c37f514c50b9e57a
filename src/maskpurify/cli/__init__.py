"""The ``maskpurify`` console script. Each sub-command is a module in this package exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; they are discovered automatically.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from maskpurify import __version__
from maskpurify.config import running_command
from maskpurify.errors import UserError


def _commands() -> dict[str, object]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        found[info.name.replace("_", "-")] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskpurify", description="Purify real images into the synthetic style "
                                     "with a mask-guided style transfer network.")
    parser.add_argument("--version", action="version", version=f"maskpurify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _commands().items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)  # type: ignore[attr-defined]
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with running_command(["maskpurify", *argv]):
            return int(args._run(args) or 0)
    except UserError as exc:
        print(f"maskpurify {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"maskpurify {args.command}: interrupted (partial outputs are resumable)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
