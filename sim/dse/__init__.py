"""Design-space exploration: studies as code, sweeps (local or Dask) with Parquet resume, Pareto fronts,
Optuna search and sensitivity. `hwsim sweep STUDY` is the command line over the same engine."""
from .evaluate import RESULT_COLUMNS, evaluate
from .pareto import front as pareto_front
from .study import Range, Study, load_study


def sweep(study, out, **kw):
    """Run a study's grid into the results folder `out` (sim.dse.run.run); returns RunResult (.table)."""
    from .run import run
    return run(study, out, **kw)


def search(study, out, **kw):
    """Optuna search of a study's space with a budget (sim.dse.search.search); returns the results table."""
    from .search import search as _search
    return _search(study, out, **kw)


__all__ = ["Study", "Range", "load_study", "evaluate", "sweep", "search", "pareto_front", "RESULT_COLUMNS"]
