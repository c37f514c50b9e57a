"""Helpers shared by the fuzz and fault suites: run the CLI in-process, snapshot folders, craft hostile files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, settings

#: ``MASKPURIFY_FUZZ=long`` runs many more examples (minutes); ``make test`` runs a few, deterministically.
LONG = os.environ.get("MASKPURIFY_FUZZ", "").lower() == "long"


def fuzz_settings(fast: int = 6, long: int = 200) -> settings:
    """Few derandomized examples in ``make test``; many random ones with MASKPURIFY_FUZZ=long."""
    return settings(max_examples=long if LONG else fast, deadline=None, derandomize=not LONG, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """``maskpurify ARGV`` in this process: (exit code, stdout, stderr)."""
    from maskpurify.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` with a hash of its content (folders: 'dir'), to prove nothing was written."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                found[str(path)] = "dir"
            else:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def assert_one_line_refusal(argv: Sequence[str], *watch: Path, match: str | None = None) -> str:
    """Run the CLI and assert: exit 2, exactly one line on stderr (``maskpurify CMD: error: ...``), nothing
    created or changed under the ``watch`` folders. Returns the line."""
    before = snapshot(*watch)
    code, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code} for {list(argv)}:\n{err}"
    assert len(lines) == 1, f"expected one line on stderr for {list(argv)}, got:\n{err}"
    assert lines[0].startswith(f"maskpurify {argv[0]}: error: "), lines[0]
    if match is not None:
        import re

        assert re.search(match, lines[0]), f"{match!r} not in {lines[0]!r}"
    after = snapshot(*watch)
    assert after == before, f"{list(argv)} left files behind: {sorted(set(after) ^ set(before))}"
    return lines[0]


def ok_or_refused_cleanly(argv: Sequence[str], work: Path, prefix: str = "") -> int:
    """For fuzzed input: the command either succeeds, or refuses with one line on stderr (starting with
    ``prefix``), exit 2, and leaves ``work`` exactly as it was. Returns the exit code."""
    before = snapshot(work)
    code, _, err = run_cli(argv)
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith(prefix), err
        assert snapshot(work) == before
    return code


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, colour_type: int = 2, bit_depth: int = 8) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` and a tiny IDAT: a decompression bomb's shape."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def readonly_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write into: chmod 0555 for a normal user; as root (who ignores modes) a
    sysfs folder, where creating anything is refused."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys/kernel")
