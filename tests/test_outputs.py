"""Output files: written through symlinks and FIFOs, modes and owners kept, bad paths refused before any work.

Every unsafe path here lives in a temporary folder; no real device file is touched.
"""
import io
import os
import shutil
import stat
import sys
import tempfile
import threading
from contextlib import redirect_stderr
from pathlib import Path

import pytest

import sim.engine  # noqa: F401  (imported before the unprivileged child forks: it cannot read root's packages)
from sim.cli import main
from sim.outputs import check_folder, check_writable, write_file, write_files
from workloads.errors import HwsimError

NOBODY = 65534


def test_symlink_target_is_written_and_link_kept(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_file(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_file(link, "x")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "x"


def test_fifo_is_written_through_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_file(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]          # no temp file left behind


def test_private_file_keeps_its_mode(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("old")
    path.chmod(0o600)
    write_file(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_file_follows_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_file(tmp_path / "new.csv", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o600


def test_hard_linked_file_is_written_in_place(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("old")
    os.link(a, b)
    write_file(a, "new")
    assert b.read_text() == "new" and a.stat().st_ino == b.stat().st_ino


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a file owned by another user")
def test_file_of_another_user_keeps_its_owner(tmp_path):
    path = tmp_path / "theirs.csv"
    path.write_text("old")
    os.chown(path, NOBODY, NOBODY)
    write_file(path, "new")
    assert path.read_text() == "new" and path.stat().st_uid == NOBODY


def test_bytes_and_text(tmp_path):
    write_file(tmp_path / "a.png", b"\x89PNG")
    write_file(tmp_path / "b.txt", "é")
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG" and (tmp_path / "b.txt").read_bytes() == "é".encode()


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing" / "x.json", "does not exist"),
    (lambda d: d, "it is a folder"),
    (lambda d: (d / "file").write_text("") or d / "file" / "x.json", "is not a folder"),
])
def test_bad_paths_are_one_line(tmp_path, make, words):
    path = make(tmp_path)
    for fn in (check_writable, lambda p, o: write_file(p, "x", o)):
        with pytest.raises(HwsimError) as err:
            fn(path, "--out")
        assert words in str(err.value) and "--out" in str(err.value) and "\n" not in str(err.value)


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(HwsimError, match="not a folder"):
        check_folder(tmp_path / "f" / "sub", "--out-dir")
    check_folder(tmp_path / "new" / "deeper", "--out-dir")          # made later, under a writable parent
    assert not (tmp_path / "new").exists()


def _as_unprivileged(fn) -> tuple:
    """Run fn() in a forked child that cannot override file permissions (root drops to nobody); return
    (exit code, stderr). An exception escaping fn is a traceback: exit 97."""
    err = tempfile.TemporaryFile(mode="w+")
    pid = os.fork()
    if pid == 0:                                   # child
        code = 97
        try:
            sys.stderr = err
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = fn()
        except BaseException:                      # noqa: BLE001 - reported as the exit code
            import traceback
            traceback.print_exc(file=err)
        finally:
            err.flush()
            os._exit(code if isinstance(code, int) else 96)
    _, status = os.waitpid(pid, 0)
    err.seek(0)
    return os.waitstatus_to_exitcode(status), err.read()


@pytest.fixture
def read_only_dir():
    """A folder the unprivileged child can read but not write (root-owned 0755, or our own 0555)."""
    folder = Path(tempfile.mkdtemp(prefix="hwsim-ro-"))
    folder.chmod(0o555 if os.geteuid() else 0o755)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder)


@pytest.mark.parametrize("argv", [
    ["graph", "--model", "gpt2", "--out", "{d}/g.json"],
    ["predict", "--model", "gpt2", "--hardware", "h100", "--out", "{d}/p.json"],
    ["roofline", "--model", "gpt2", "--hardware", "h100", "--out-dir", "{d}/report"],
    ["simulate", "--model", "gpt2", "--system", "h100", "--trace", "{d}/t.json"],
    ["simulate", "--model", "gpt2", "--system", "h100", "--power-csv", "{d}/p.csv"],
])
def test_read_only_folder_is_refused_before_any_work(read_only_dir, argv):
    argv = [a.format(d=read_only_dir) for a in argv]
    code, err = _as_unprivileged(lambda: main(argv))
    assert code == 2, err
    assert "does not take new files" in err and len(err.strip().splitlines()) == 1
    assert list(read_only_dir.iterdir()) == []


def test_cli_out_through_symlink(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with redirect_stderr(io.StringIO()):
        assert main(["graph", "--model", "gpt2", "--phase", "decode", "--seq-len", "8", "--out", str(link)]) == 0
    assert link.is_symlink() and '"totals"' in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _html_fails(monkeypatch):
    """write_file that fails (as a full disk would) for .html paths, after the checks passed."""
    import sim.outputs as outputs
    real = outputs.write_file

    def write(path, data, option=""):
        if str(path).endswith(".html"):
            raise HwsimError(f"cannot write {option} {path}: No space left on device")
        real(path, data, option)
    monkeypatch.setattr(outputs, "write_file", write)


def test_write_files_takes_back_what_it_wrote_when_a_later_file_fails(tmp_path, monkeypatch):
    """roofline wrote its PNG, then a failed HTML write left that fresh PNG (or a new PNG over the old report's)."""
    _html_fails(monkeypatch)
    old = tmp_path / "old.png"
    old.write_bytes(b"old chart")
    with pytest.raises(HwsimError, match="No space left"):
        write_files([(tmp_path / "new.png", b"png"), (old, b"new chart"), (tmp_path / "r.html", "page")])
    assert not (tmp_path / "new.png").exists() and old.read_bytes() == b"old chart"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]


def test_roofline_leaves_no_png_when_its_html_write_fails(tmp_path, monkeypatch):
    _html_fails(monkeypatch)
    out = tmp_path / "report"
    err = io.StringIO()
    with redirect_stderr(err):
        assert main(["roofline", "--model", "gpt2", "--hardware", "h100", "--out-dir", str(out)]) == 2
    assert "No space left" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1
    assert list(out.iterdir()) == []
