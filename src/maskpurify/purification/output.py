"""The resumable output folder of a purification run: claimed when new, resumed when it holds the same run's
progress, refused otherwise, so a run never clobbers a user's files and a killed run picks up where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskpurify.errors import UserError
from maskpurify.fileio import FolderLock, atomic_write_json, clean_stale_temps, is_temp_name, read_json, sha256_file

PROGRESS_FILE = ".maskpurify-progress.json"
#: Held (``flock``) by the run writing into the folder; removed when the run completes. A killed run leaves the
#: file but not the lock (the kernel drops it), so the next run takes over.
LOCK_FILE = ".maskpurify.lock"


def is_bookkeeping(name: str) -> bool:
    """Whether a file name in an output folder is ours rather than a result: the lock file or an atomic write's
    temporary file (neither ever makes a folder "not empty")."""
    return name == LOCK_FILE or is_temp_name(name)


@dataclass
class OutputDir:
    """A results folder owned by one purification run, with its progress in ``PROGRESS_FILE``.

    A new or empty folder is claimed; a folder holding the progress file of the same run (same ``settings``)
    is resumed; anything else (a non-empty folder maskpurify did not create, or one from other settings) is
    refused unless ``overwrite``. With ``overwrite`` every output is written again.

    One run at a time: every write into the folder (:meth:`begin`, :meth:`save`) happens under an exclusive
    ``flock`` on ``LOCK_FILE``; a second run into the same folder is refused in one line naming the owner's pid
    (already here when the folder is in use, else at its first write). The lock file is removed when the run
    completes, so a finished folder holds only results and the progress file.

    Each finished output is recorded with its size, its sha256 and the fingerprint (size + sha256) of what it
    was made from, so an input that changed under the same name, or an output damaged in place (even at the
    same size), is purified again. Nothing is written here until :meth:`begin`, called just before the first
    output: a run refused before that leaves no folder, no lock and no progress file behind. A folder this run
    owns is cleared of temporary files a killed run left (the temporary files alone never make a folder "not
    empty").
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
        self.lock = FolderLock(self.root, LOCK_FILE, "maskpurify run")
        self.lock.check()  # in use right now: say so before any work is done
        self._cleaned: set[Path] = set()
        self._saved = False
        self._load()

    def _previous(self) -> dict[str, Any] | None:
        progress = self.root / PROGRESS_FILE
        if not progress.is_file():
            return None
        try:
            previous = read_json(progress)
        except UserError:  # unreadable or hostile: not a progress file we can trust
            return None
        return previous if isinstance(previous, dict) else None

    def _load(self) -> None:
        """Decide from the folder's contents whether it is new, resumed or refused (see the class docstring)."""
        previous = self._previous()
        nonempty = self.root.is_dir() and any(not is_bookkeeping(p.name) for p in self.root.iterdir())
        self.started = False
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
            # Entries without an input fingerprint or an output sha256 (older versions recorded sizes only) are
            # done again.
            self.done = {k: v for k, v in done.items() if isinstance(v, dict) and "input" in v and "sha256" in v} \
                if isinstance(done, dict) else {}
            self.started = True
        self.owned = previous is not None or not nonempty
        self.clean(self.root)

    def _own(self) -> None:
        """Take the folder's lock before writing; the folder is looked at again under the lock (another run may
        have written into it since this one looked), keeping what this run itself recorded."""
        if self.lock.held:
            return
        self.lock.acquire()
        if self._saved:
            return  # the progress file on disk is our own
        try:
            ours = dict(self.done)
            self._load()
            self.done.update(ours)
        except BaseException:
            # refused under the lock (another run finished into the folder meanwhile): leave the folder as that
            # run left it, without a lock file of ours
            self.lock.release(remove=True)
            raise

    def clean(self, folder: Path) -> None:
        """Remove the temporary files a killed run left in ``folder`` (once per folder; only in our folder)."""
        if self.owned and folder not in self._cleaned:
            self._cleaned.add(folder)
            clean_stale_temps(folder)

    def begin(self) -> None:
        """Call before writing an output: takes the folder's lock and records the run in the folder (creating
        it) the first time."""
        self._own()
        if not self.started:
            self.save(complete=False)
            self.started = True
            self.owned = True

    def is_done(self, key: str, path: Path, source: Any) -> bool:
        """True when ``key`` was recorded as finished from an input with fingerprint ``source`` and its file is
        still there with the recorded size and sha256 (an output damaged in place is done again)."""
        entry = self.done.get(key)
        if entry is None or entry.get("input") != source or not path.is_file():
            return False
        try:
            return path.stat().st_size == entry.get("size") and sha256_file(path) == entry.get("sha256")
        except OSError:
            return False

    def mark(self, key: str, path: Path, source: Any) -> None:
        self.done[key] = {"size": path.stat().st_size, "sha256": sha256_file(path), "input": source}

    def save(self, complete: bool = False) -> None:
        """Write the progress file (under the folder's lock); ``complete`` also lets go of the lock and removes
        its file, leaving the folder as a single uninterrupted run leaves it."""
        self._own()
        atomic_write_json(self.root / PROGRESS_FILE, {"settings": self.settings, "complete": complete,
                                                      "done": self.done})
        self._saved = True
        if complete:
            self.close()

    def close(self) -> None:
        """Let go of the folder (the lock file is removed); a later :meth:`begin` or :meth:`save` takes it again."""
        self.lock.release(remove=True)
