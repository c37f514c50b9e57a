"""The ``maskpurify`` console script. Each sub-command is a module in this package exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; they are discovered automatically.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from maskpurify.version import __version__
from maskpurify.config import running_command
from maskpurify.errors import UserError


def _commands() -> dict[str, object]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        found[info.name.replace("_", "-")] = importlib.import_module(f"{__name__}.{info.name}")
    return found


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (``maskpurify render: error: ...``) and exit code 2,
    like every other user error; argparse's default adds the usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskpurify", description="Purify real images into the synthetic style "
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad flag (one line already printed) or --help / --version: return, not exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    created = _missing_output_dirs(args)
    try:
        with running_command(["maskpurify", *argv]):
            return int(args._run(args) or 0)
    except UserError as exc:
        print(f"maskpurify {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        _remove_empty(created)
        return 2
    except OSError as exc:  # an unwritable output folder, a full disk, an input that vanished: the user's to fix
        print(f"maskpurify {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        _remove_empty(created)
        return 2
    except KeyboardInterrupt:
        print(f"maskpurify {args.command}: interrupted (partial outputs are resumable)", file=sys.stderr)
        return 130


#: Flags that name outputs: a failed command removes the folders it created for them while they are empty.
OUTPUT_FLAGS = ("out", "preview", "mask_video")


def _missing_output_dirs(args: argparse.Namespace) -> list[Path]:
    """Folders that do not exist yet on the way to each output (the output itself, which may be a folder, and
    its parents), deepest first."""
    missing: list[Path] = []
    for flag in OUTPUT_FLAGS:
        value = getattr(args, flag, None)
        if not isinstance(value, (str, Path)) or not str(value):
            continue
        path = Path(value).absolute()
        for candidate in (path, *path.parents):
            if os.path.lexists(candidate):
                break
            missing.append(candidate)
    return sorted(set(missing), key=lambda p: len(p.parts), reverse=True)


def _remove_empty(folders: list[Path]) -> None:
    """After a failure, leave no empty output folder behind (only folders this run created, only when empty)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            if folder.is_dir() and not folder.is_symlink():
                folder.rmdir()


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def describe_os_error(exc: OSError) -> str:
    """'PATH: Permission denied' for an OSError, in one line, naming the file it concerns."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if where is None:
        return _one_line(reason)
    if exc.filename2 is not None:
        return _one_line(f"{where} -> {exc.filename2}: {reason}")
    hint = " (is the output folder writable?)" if isinstance(exc, PermissionError) else ""
    return _one_line(f"{where}: {reason}{hint}")


if __name__ == "__main__":
    sys.exit(main())
