"""Running a study: chunks of the grid evaluated locally (all cores) or on a Dask cluster, each finished chunk
appended to the results folder as a Parquet part, so an interrupted sweep resumes where it stopped.

Layout of a results folder:
  study.json                  the study (axes, constraints, objectives), its digest, chunking, hwsim version
  parts/part-NNNNNN.parquet   one per finished chunk, written atomically (temporary file + rename)
  results.parquet             every point in point order, with `feasible` and `pareto` (written at the end)
A chunk is the unit of work and of commit: a killed run loses only the chunks in flight, and a resumed run
(`resume=True`) skips every chunk whose part exists, so no finished point is lost or computed twice.
Chunks are fixed by the study (not by the number of workers), and every point's numbers depend only on that
point, so local, single-process and Dask runs give identical tables.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.errors import HwsimError

from .study import Study, study_from_source

PART = "part-{:06d}.parquet"


# --- the unit of work (runs in a worker process; must be importable by name for Dask/pickle) -------------
_IN_PROCESS: dict = {}          # studies built in Python (no file): handed to forked workers by key


def evaluate_chunk(source, path: str, chunk: int, size: int):
    """Evaluate points chunk x size .. (chunk + 1) x size - 1 of a study: its file text (`source`, loaded once per
    worker), a Study object (Dask ships it with cloudpickle), or the key of one built in this process (forked local
    workers inherit it). Returns (chunk, pandas DataFrame)."""
    import pandas as pd

    from .evaluate import evaluate
    if isinstance(source, Study):
        study = source
    elif path == "<in-process>":
        study = _IN_PROCESS[source]
    else:
        study = study_from_source(source, path)
    points = study.points(chunk * size, (chunk + 1) * size)
    keep = where_mask(study, points)
    results = evaluate(points[keep]) if keep.any() else evaluate(points.iloc[:0])
    out = pd.concat([points, results.reindex(points.index)], axis=1)
    out.loc[~keep, "status"] = "skipped"
    out["fits"] = out["fits"].fillna(False).astype(bool)
    out["extrapolated"] = out["extrapolated"].fillna(False).astype(bool)
    for col in ("hardware", "bound", "price_basis"):
        out[col] = out[col].fillna("").astype(str)
    out.index.name = "point"
    return chunk, out.reset_index()


def where_mask(study: Study, points) -> np.ndarray:
    """The points a study's `where` keeps; its failure is the study's bug, reported in one line. `where(point)`
    takes one point (a dict), so it runs once per point in Python (about a microsecond each plus the function's
    own work): for large grids prefer `zip` or constraints, which are evaluated on columns."""
    if study.where is None:
        return np.ones(len(points), dtype=bool)
    try:
        return np.array([bool(study.where(row)) for row in points.to_dict("records")], dtype=bool)
    except Exception as exc:                  # noqa: BLE001
        raise HwsimError(f"study {study.name}: its where() failed: {type(exc).__name__}: {exc}") from None


# --- results folder --------------------------------------------------------------------------------------
def _write_parquet(df, target: Path):
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(text: str, target: Path):
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _manifest(study: Study) -> dict:
    from .. import __version__
    return {"hwsim_version": __version__, "study": study.describe(), "digest": study.digest(),
            "chunk_size": study.chunk(), "chunks": n_chunks(study), "points": study.size,
            "source_path": study.path}


def n_chunks(study: Study) -> int:
    return -(-study.size // study.chunk())


def prepare(study: Study, out: Path, resume: bool, force: bool, write: bool = True, parents: bool = False) -> list:
    """Check (and with `write`, create) the results folder; return the chunks still to compute. `parents`: the
    folder's parents may be created (the default hwsim-sweep/NAME), else they must exist."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HwsimError(f"results folder {out} is a file; pick another --out")
    if parents and write:
        out.parent.mkdir(parents=True, exist_ok=True)
    if not out.parent.exists() and not parents:
        raise HwsimError(f"cannot write {out}: folder {out.parent} does not exist; create it or pick another --out")
    manifest = out / "study.json"
    parts = out / "parts"
    if manifest.exists() and not resume and not force:
        raise HwsimError(f"{out} already holds a sweep; pass --resume to continue it or --force to start over")
    if manifest.exists() and resume:
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            raise HwsimError(f"{manifest} is unreadable; start over with --force") from None
        if old.get("digest") != study.digest():
            raise HwsimError(f"{out} holds a sweep of a different grid (study axes, chunking or hwsim version "
                             f"changed); use another --out or --force to start over")
    if not write:
        if force or not parts.is_dir():
            return list(range(n_chunks(study)))
        return [c for c in range(n_chunks(study)) if not (parts / PART.format(c)).exists()]
    if manifest.exists() and force:
        for p in parts.glob("*.parquet"):
            p.unlink()
        (out / "results.parquet").unlink(missing_ok=True)
    out.mkdir(exist_ok=True)
    parts.mkdir(exist_ok=True)
    for stale in parts.glob(".*.tmp"):               # a temporary file of a killed writer is never a result
        stale.unlink(missing_ok=True)
    if not manifest.exists() or force:
        _write_text(json.dumps(_manifest(study), indent=2) + "\n", manifest)
    return [c for c in range(n_chunks(study)) if not (parts / PART.format(c)).exists()]


# --- executors ---------------------------------------------------------------------------------------------
class _Serial:
    def map(self, fn, args):
        for a in args:
            yield fn(*a)

    def close(self):
        pass


class _Pool:
    """Local processes (fork): results come back as they finish."""
    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        self.ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def map(self, fn, args):
        from concurrent.futures import as_completed
        futures = [self.ex.submit(fn, *a) for a in args]
        for f in as_completed(futures):
            yield f.result()

    def close(self):
        self.ex.shutdown(cancel_futures=True)


class _Dask:
    """A Dask cluster: an existing scheduler (tcp://host:8786) or a local cluster of `workers` processes."""
    def __init__(self, scheduler: str = None, workers: int = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise HwsimError("Dask is not installed; pip install 'dask[distributed]'") from None
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
            else:
                self.cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                                            processes=True, dashboard_address=None)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise HwsimError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None

    def map(self, fn, args):
        from distributed import as_completed
        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        for f in as_completed(futures):
            yield f.result()

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def executor(workers: int = None, scheduler: str = None, dask: bool = False):
    if scheduler or dask:
        return _Dask(scheduler, workers)
    workers = workers or os.cpu_count() or 1
    return _Serial() if workers == 1 else _Pool(workers)


# --- the run ---------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    out: Path
    points: int
    computed_chunks: int
    skipped_chunks: int
    seconds: float
    computed_points: int = 0
    table: object = None          # the final pandas DataFrame (results.parquet)

    @property
    def rate(self) -> float:
        """Points evaluated per second in this run (resumed chunks not counted)."""
        return self.computed_points / self.seconds if self.seconds else 0.0


def run(study: Study, out, resume: bool = False, force: bool = False, workers: int = None, scheduler: str = None,
        dask: bool = False, progress: bool = True, finalize: bool = True, on_chunk=None,
        parents: bool = False) -> RunResult:
    """Evaluate every point of `study` into the results folder `out` (see the module docstring)."""
    out = Path(out)
    if study.size == 0:
        raise HwsimError(f"study {study.name} has no points")
    study.check_inputs()
    todo = prepare(study, out, resume, force, write=False, parents=parents)   # nothing written before workers are up
    total_chunks = n_chunks(study)
    size = study.chunk()
    done_points = sum(min(size, study.size - c * size) for c in range(total_chunks)) - \
        sum(min(size, study.size - c * size) for c in todo)
    start = time.perf_counter()
    computed = 0
    source, path = study.source, study.path
    if not source:                    # built in Python: Dask ships the object, local workers fork with it
        if scheduler or dask:
            source, path = study, ""
        else:
            key = f"{study.name}-{id(study)}"
            _IN_PROCESS[key] = study
            source, path = key, "<in-process>"
    if not (scheduler or dask):                        # no more local processes than chunks to run
        workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    ex = executor(1 if len(todo) <= 1 and not (scheduler or dask) else workers, scheduler, dask) if todo else _Serial()
    try:
        todo = prepare(study, out, resume, force, parents=parents)
    except BaseException:
        ex.close()
        raise
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=study.size, initial=done_points, unit="pt", unit_scale=True, desc=study.name,
                   file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        for chunk, df in ex.map(evaluate_chunk, [(source, path, c, size) for c in todo]):
            _write_parquet(df, out / "parts" / PART.format(chunk))
            computed += len(df)
            if bar is not None:
                bar.update(len(df))
            if on_chunk is not None:
                on_chunk(chunk)
    finally:
        ex.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    result = RunResult(out, study.size, len(todo), total_chunks - len(todo), seconds, computed_points=computed)
    if finalize:
        result.table = finish(study, out)
    return result


def read_parts(out) -> "pandas.DataFrame":
    import pandas as pd
    parts = sorted((Path(out) / "parts").glob("part-*.parquet"))
    if not parts:
        raise HwsimError(f"{out} holds no finished chunks")
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return df.sort_values("point", kind="stable").reset_index(drop=True)


def finish(study: Study, out) -> "pandas.DataFrame":
    """Join the parts in point order, mark feasible points and the Pareto front, write results.parquet."""
    from .pareto import front
    out = Path(out)
    df = read_parts(out)
    if len(df) != study.size or not np.array_equal(df["point"].to_numpy(), np.arange(study.size)):
        raise HwsimError(f"{out} is incomplete ({len(df)} of {study.size} points); run again with --resume")
    df["feasible"] = study.feasible(df)
    df["pareto"] = front(df, study.objectives, df["feasible"])
    _write_parquet(df, out / "results.parquet")
    return df
