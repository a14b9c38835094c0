"""Design-space exploration: studies as code, sweeps (local or Dask) with Parquet resume, Pareto fronts,
Optuna search and sensitivity. `hwsim sweep STUDY` is the command line over the same engine."""
from .evaluate import RESULT_COLUMNS, evaluate
from .study import Range, Study, load_study

__all__ = ["Study", "Range", "load_study", "evaluate", "RESULT_COLUMNS"]
