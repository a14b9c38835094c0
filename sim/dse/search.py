"""Multi-objective search (Optuna NSGA-II, TPE or random) over a study's axes with a budget of points, for
spaces too large to grid. Trials are asked in batches (a population), evaluated together through
evaluate.evaluate (so the array path applies) and told back; constraints go to the sampler as violations.
Results land in the same folder layout as a sweep (results.parquet with feasible and pareto; its `trial` column is
the order in which points were proposed)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from workloads.errors import HwsimError

from .study import Range, Study


def _sampler(name: str, seed: int, population: int):
    import optuna
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(population, 20))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise HwsimError(f"unknown search sampler '{name}'; use nsga2, tpe or random")


def _suggest(trial, study: Study) -> dict:
    point = {}
    for name, values in study.axes.items():
        if isinstance(values, Range):
            if values.integer:
                point[name] = trial.suggest_int(name, int(values.low), int(values.high), log=values.log)
            else:
                point[name] = trial.suggest_float(name, values.low, values.high, log=values.log)
        else:
            plain = all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in values)
            if plain and len(set(values)) == len(values):
                point[name] = trial.suggest_categorical(name, list(values))
            else:                           # other values (or repeats) are chosen by position
                point[name] = list(values)[trial.suggest_categorical(name, list(range(len(values))))]
    for group in study.zip:                 # zipped axes follow the first one
        lead = study.axes[group[0]]
        at = list(lead).index(point[group[0]]) if not isinstance(lead, Range) else 0
        for other in group[1:]:
            point[other] = list(study.axes[other])[at]
    return point


def search(study: Study, out, budget: int = 200, sampler: str = "nsga2", seed: int = 0, population: int = None,
           progress: bool = True, force: bool = False, resume: bool = False, parents: bool = False):
    """Search the study's space with `budget` evaluations; returns the results table (also written to out)."""
    import optuna
    import pandas as pd

    from .evaluate import evaluate
    from .pareto import front
    from .run import _write_parquet, _write_text, where_mask
    if budget < 1:
        raise HwsimError(f"search budget must be at least 1, got {budget}")
    study.check_inputs()
    out = Path(out)
    if (out / "results.parquet").exists() and not force:
        raise HwsimError(f"{out} already holds results; pass --force to replace them or pick another --out")
    if resume:
        raise HwsimError("--resume applies to grid sweeps; a search is re-run with the same --seed instead")
    if not out.parent.exists() and not parents:
        raise HwsimError(f"cannot write {out}: folder {out.parent} does not exist")
    optuna.logging.set_verbosity(logging.WARNING)
    names = list(study.objectives)
    directions = ["minimize" if study.objectives[n] == "min" else "maximize" for n in names]
    population = population or max(8, min(64, budget // 8))
    ost = optuna.create_study(directions=directions, sampler=_sampler(sampler, seed, population))
    tables, done = [], 0
    bar = None
    if progress:
        import sys

        from tqdm import tqdm
        bar = tqdm(total=budget, unit="pt", desc=f"{study.name} ({sampler})", file=sys.stderr)
    while done < budget:
        batch = min(population, budget - done)
        trials = [ost.ask() for _ in range(batch)]
        points = pd.DataFrame([_suggest(t, study) for t in trials])
        keep = where_mask(study, points)
        res = evaluate(points[keep]).reindex(points.index)
        res.loc[~keep, "status"] = "skipped"
        table = pd.concat([points, res], axis=1)
        table["fits"] = table["fits"].fillna(False).astype(bool)
        feas = study.feasible(table)
        for i, t in enumerate(trials):
            r = table.iloc[i]
            if r["status"] != "ok":
                ost.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            vals = [float(r[n]) for n in names]
            if not all(np.isfinite(vals)):
                ost.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            t.set_constraint("hwsim", 0.0 if feas[i] else 1.0)       # > 0: infeasible
            ost.tell(t, vals)
        table.insert(0, "trial", np.arange(done, done + batch))
        tables.append(table)
        done += batch
        if bar is not None:
            bar.update(batch)
    if bar is not None:
        bar.close()
    df = pd.concat(tables, ignore_index=True)
    df["point"] = np.arange(len(df))
    df["feasible"] = study.feasible(df)
    df["pareto"] = front(df, study.objectives, df["feasible"])
    for col in ("hardware", "bound", "price_basis"):
        df[col] = df[col].fillna("").astype(str)
    for col in study.axes:
        if df[col].dtype == object:
            df[col] = df[col].astype(str)
    out.mkdir(parents=True, exist_ok=True)           # written only now: a failed search leaves nothing behind
    if force:       # --force discards what --out held: a grid sweep's parts would otherwise stay beside the search's
        for part in (out / "parts").glob("part-*.parquet"):
            part.unlink()
    _write_parquet(df, out / "results.parquet")
    import json
    _write_text(json.dumps({"study": study.describe(), "search": sampler, "budget": budget, "seed": seed,
                            "population": population}, indent=2) + "\n", out / "study.json")
    return df
