"""Output files: checked before any work, written through to whatever the user's path names.

Why not a plain temp-file-and-rename: renaming over the path replaces what is there. On a symlink that
replaces the link (not the file it points to), on a FIFO or device file it swaps the special file for a
regular one, and on a 0600 file or one owned by someone else it changes the mode or owner. So a rename is
used only for a regular file this process creates or owns outright (one name, our uid), where it makes the
write all-or-nothing; everything else is opened and written in place, as a shell's `>` would.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from workloads.errors import HwsimError


def _what(option: str, path) -> str:
    return f"{option} {path}" if option else str(path)


def _probe(folder: Path) -> None:
    """Create and remove a temporary file: the only sure test that a folder takes new files (root passes
    every permission check, yet cannot create files in /proc or on a read-only mount)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".hwsim-probe-")
    os.close(fd)
    os.unlink(tmp)


def _stat(real: Path, what: str):
    """os.stat, or None when nothing is there; a path through a file is a one-line error."""
    try:
        return os.stat(real)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise HwsimError(f"cannot write {what}: {real.parent} is not a folder; pick another path") from None
    except OSError as exc:
        raise HwsimError(f"cannot write {what}: {exc.strerror}") from None


def check_writable(path, option: str = "") -> None:
    """Raise a one-line HwsimError unless `path` can be written; call it before any slow work."""
    what = _what(option, path)
    real = Path(os.path.realpath(path))
    st = _stat(real, what)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise HwsimError(f"cannot write {what}: it is a folder; give a file name")
        if not os.access(real, os.W_OK):
            raise HwsimError(f"cannot write {what}: permission denied; pick another path")
        return
    folder = real.parent
    if not folder.exists():
        raise HwsimError(f"cannot write {what}: folder {Path(path).parent} does not exist; create it or pick "
                         f"another path")
    if not folder.is_dir():
        raise HwsimError(f"cannot write {what}: {folder} is not a folder; pick another path")
    _takes_files(folder, what, "path")


def _takes_files(folder, what: str, other: str) -> None:
    """One line if `folder` does not take new files (a probe file is made and removed)."""
    try:
        _probe(folder)
    except OSError as exc:
        raise HwsimError(f"cannot write {what}: folder {folder} does not take new files ({exc.strerror}); "
                         f"pick another {other}") from None


def check_folder(path, option: str = "") -> None:
    """Like check_writable for an output folder, which may not exist yet (its nearest existing parent
    must then take new folders)."""
    what = _what(option, path)
    real = Path(os.path.realpath(path))
    existing = real
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            raise HwsimError(f"cannot write {what}: {existing} is a broken link; pick another folder")
        existing = existing.parent
    if not existing.is_dir():
        raise HwsimError(f"cannot write {what}: {existing} exists and is not a folder; pick another folder")
    _takes_files(existing, what, "folder")


def make_folder(path, option: str = "") -> Path:
    """Create an output folder (and its parents), as one-line errors."""
    check_folder(path, option)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwsimError(f"cannot create {_what(option, path)}: {exc.strerror}") from None
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(real: Path, data: bytes, mode: int, gid: int = None) -> bool:
    """Write a temporary file beside `real` and rename it over `real`; False if the folder takes no new
    files (the caller then writes in place)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if gid is not None and gid != os.getegid():
                try:
                    os.fchown(f.fileno(), -1, gid)
                except OSError:
                    pass
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_file(path, data, option: str = "") -> None:
    """Write `data` (str as UTF-8, or bytes) to what `path` names; one-line HwsimError on failure.

    A symlink's target is written. A new file, or a regular file this process owns with a single name, is
    replaced atomically (same permission bits, so a 0600 file stays 0600); FIFOs, device files, files of
    other users and hard-linked files are written in place, so they keep their kind, owner, mode and links.
    """
    what = _what(option, path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    real = Path(os.path.realpath(path))
    st = _stat(real, what)
    try:
        if st is None:
            if not real.parent.is_dir():
                raise HwsimError(f"cannot write {what}: folder {Path(path).parent} does not exist; create it or "
                                 f"pick another path")
            if _replace(real, payload, 0o666 & ~_umask()):
                return
        elif stat.S_ISDIR(st.st_mode):
            raise HwsimError(f"cannot write {what}: it is a folder; give a file name")
        elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid():
            if _replace(real, payload, stat.S_IMODE(st.st_mode), st.st_gid):
                return
        flags = os.O_WRONLY | (os.O_CREAT if st is None else 0)
        if st is None or stat.S_ISREG(st.st_mode):
            flags |= os.O_TRUNC
        fd = os.open(real, flags, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
    except OSError as exc:
        raise HwsimError(f"cannot write {what}: {exc.strerror or exc}") from None


def write_files(files, option: str = "") -> None:
    """Write several outputs of one run, all or nothing as far as the files allow: if one write fails, the files
    written before it are put back (a new one removed, a regular file given its old bytes) before the error goes
    on, so a failed HTML does not leave a fresh PNG beside an old report. `files`: (path, data) pairs."""
    done = []
    try:
        for path, data in files:
            real = Path(os.path.realpath(path))
            existed = os.path.lexists(real)
            before = real.read_bytes() if existed and real.is_file() else None
            write_file(path, data, option)
            done.append((path, existed, before))
    except BaseException:
        for path, existed, before in reversed(done):
            try:
                if not existed:
                    Path(os.path.realpath(path)).unlink(missing_ok=True)
                elif before is not None:
                    write_file(path, before, option)
            except (OSError, HwsimError):
                pass                # the first error is the one to report
        raise


def check_distinct(outputs, inputs=()) -> None:
    """One line if an output path names one of the command's input files, or two outputs name one file: writing
    it would destroy the input (or one output would replace the other). `outputs`, `inputs`: (path, option)
    pairs; empty paths are ignored. Paths are compared as the files they name (links and spellings resolved)."""
    outs = [(p, o) for p, o in outputs if p]
    for i, (path, option) in enumerate(outs):
        real = os.path.realpath(path)
        for other, other_option in outs[:i]:
            if os.path.realpath(other) == real:
                raise HwsimError(f"{other_option} and {option} name one file ({path}); give each its own path")
        for source, source_option in inputs:
            if not source:
                continue
            same = os.path.realpath(source) == real
            if not same:
                try:
                    same = os.path.samefile(source, path)
                except OSError:         # either is missing: not one file
                    same = False
            if same:
                raise HwsimError(f"{option} {path} is the {source_option} file itself: writing it would replace "
                                 f"that input; pick another path")
