"""The resumable output folder of a purification run: claimed when new, resumed when it holds the same run's
progress, refused otherwise, so a run never clobbers a user's files and a killed run picks up where it stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_json, clean_stale_temps, is_temp_name

PROGRESS_FILE = ".maskpurify-progress.json"

@dataclass
class OutputDir:
    """A results folder owned by one purification run, with its progress in ``PROGRESS_FILE``.

    A new or empty folder is claimed; a folder holding the progress file of the same run (same ``settings``)
    is resumed; anything else (a non-empty folder maskpurify did not create, or one from other settings) is
    refused unless ``overwrite``. With ``overwrite`` every output is written again.

    Each finished output is recorded with its size and the fingerprint (size + sha256) of what it was made from,
    so an input that changed under the same name is purified again. Nothing is written here until
    :meth:`begin`, called just before the first output: a run refused before that leaves no folder and no
    progress file behind. A folder this run owns is cleared of temporary files a killed run left (the temporary
    files alone never make a folder "not empty").
    """

    root: Path
    settings: dict[str, Any]
    overwrite: bool = False
    resume: bool = True
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Whether the progress file is on disk (a resumed run's, or written by :meth:`begin`).
    started: bool = False
    #: Whether this run may remove temporary files in the folder (it is ours, or holds only temporary files).
    owned: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root}: exists and is not a folder")
        progress = self.root / PROGRESS_FILE
        previous: dict[str, Any] | None = None
        if progress.is_file():
            try:
                previous = json.loads(progress.read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
            if not isinstance(previous, dict):
                previous = None
        nonempty = self.root.is_dir() and any(not is_temp_name(p.name) for p in self.root.iterdir())
        if self.overwrite:
            self.done = {}
        elif previous is None:
            if nonempty:
                raise UserError(f"{self.root}: folder is not empty and was not written by maskpurify purify; "
                                "choose an empty --out or pass --overwrite")
        elif previous.get("settings") != self.settings:
            raise UserError(f"{self.root}: holds results of a different purify run (other input or settings); "
                            "choose another --out or pass --overwrite")
        elif not self.resume:
            raise UserError(f"{self.root}: already holds results of this run; resume it (drop --no-resume) or "
                            "pass --overwrite to redo everything")
        else:
            done = previous.get("done", {})
            # Entries without an input fingerprint (older versions recorded sizes only) are done again.
            self.done = {k: v for k, v in done.items() if isinstance(v, dict) and "input" in v} \
                if isinstance(done, dict) else {}
            self.started = True
        self.owned = previous is not None or not nonempty
        self._cleaned: set[Path] = set()
        self.clean(self.root)

    def clean(self, folder: Path) -> None:
        """Remove the temporary files a killed run left in ``folder`` (once per folder; only in our folder)."""
        if self.owned and folder not in self._cleaned:
            self._cleaned.add(folder)
            clean_stale_temps(folder)

    def begin(self) -> None:
        """Call before writing an output: records the run in the folder (creating it) the first time."""
        if not self.started:
            self.save(complete=False)
            self.started = True
            self.owned = True

    def is_done(self, key: str, path: Path, source: Any) -> bool:
        """True when ``key`` was recorded as finished from an input with fingerprint ``source`` and its file is
        still there with the recorded size."""
        entry = self.done.get(key)
        return (entry is not None and entry.get("input") == source and path.is_file()
                and path.stat().st_size == entry.get("size"))

    def mark(self, key: str, path: Path, source: Any) -> None:
        self.done[key] = {"size": path.stat().st_size, "input": source}

    def save(self, complete: bool = False) -> None:
        atomic_write_json(self.root / PROGRESS_FILE, {"settings": self.settings, "complete": complete,
                                                      "done": self.done})


