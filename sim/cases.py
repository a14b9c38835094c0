"""Cases tables (`hwsim predict --cases`): read many rows and check each on its own; write the results.

Why not `pandas.read_csv` directly: it silently pads short rows, drops or shifts extra fields, renames
duplicate headers (`batch.1`) and guesses types (`1e3` becomes 1000.0). Users run thousands of rows, so each
row must be judged alone and a bad one must name its file line. The text is read with the csv module (BOM,
CRLF, spaces after commas and quoted newlines handled; lines are counted as text editors count them, a lone
CR included), then the table is a pandas DataFrame. Parquet input is read with pandas; rows are then
numbered instead of lines.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workloads.errors import HwsimError

REQUIRED = ("model", "hardware", "phase", "batch", "seq_len")
OPTIONAL = ("dtype", "quant", "kv_dtype", "group_size", "context", "impl", "first_pass", "profile")
RESULTS = ("latency_s", "tokens_per_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "bound", "fits",
           "memory_gb", "status")
FLOAT_FORMAT = {"latency_s": "{:.6g}", "tokens_per_s": "{:.6g}", "energy_j": "{:.6g}", "avg_power_w": "{:.1f}",
                "peak_power_w": "{:.1f}", "clock_mhz": "{:.0f}", "memory_gb": "{:.4g}"}
PARQUET = (".parquet", ".pq")
WHERE, ERROR = "_where", "_error"       # added to the table read: each row's file line and what is wrong with it
HELP = (f"needs columns {','.join(REQUIRED)}; optional {','.join(OPTIONAL)}; any other column is carried through "
        f"to the output")


@dataclass(frozen=True)
class Case:
    """One row's workload, parsed and typed (domain checks, e.g. phase names, happen when it is built)."""
    where: str                  # "line 7" (CSV) or "row 7" (Parquet)
    model: str
    hardware: str
    phase: str
    batch: int
    seq_len: int
    context: int = 0
    dtype: str = "bf16"
    quant: str = "none"
    kv_dtype: str = None
    group_size: int = None
    impl: str = "hwsim"         # whose implementation is traced: hwsim's modules or Hugging Face's (--impl)
    first_pass: bool = False    # host-issued profiles: a fresh process's step at shapes it has not run (--first-pass)
    profile: str = "eager"      # the software stack the row is priced with (--profile; hw_models/stacks.py)


def _column_key(name: str) -> str:
    """Known columns match case-insensitively, with '-' or ' ' for '_' (seq-len, Seq Len)."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return key if key in REQUIRED + OPTIONAL else name.strip()


def _decode(data: bytes, path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise HwsimError(f"cases file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                         f"save it as CSV UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text       # Excel's byte-order mark


def _records(text: str, path):
    """(first line, cells) per non-blank record; first line counts from 1."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield start, [c.strip() for c in cells]
            start = reader.line_num + 1
    except csv.Error as exc:
        raise HwsimError(f"cases file {path} line {reader.line_num}: not valid CSV ({exc}); fix the quoting") from None


def _header(cells: list, path, line: int) -> list:
    names = [_column_key(c) for c in cells]
    seen = {}
    for i, name in enumerate(names):
        if name and name in seen:
            raise HwsimError(f"cases file {path} line {line}: column '{name}' appears twice (columns {seen[name] + 1} "
                             f"and {i + 1}); rename or remove one")
        seen[name] = i
    reserved = [c for c in (WHERE, ERROR) if c in seen]
    if reserved:
        raise HwsimError(f"cases file {path}: column name '{reserved[0]}' is reserved for hwsim; rename it")
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise HwsimError(f"cases file {path} lacks column(s) {', '.join(missing)}; it {HELP}")
    return names


def read_cases(path) -> pd.DataFrame:
    """The cases table: one row per case, every cell as text, plus WHERE (its file line, "line 7") and ERROR
    (why the row cannot run, or ""). Problems with the file as a whole raise HwsimError."""
    path = str(path)
    if path.lower().endswith(PARQUET):
        return _read_parquet(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HwsimError(f"cannot read cases file {path}: {exc.strerror}") from None
    records = _records(_decode(data, path), path)
    first = next(records, None)
    if first is None:
        raise HwsimError(f"cases file {path} is empty; it {HELP}")
    names = _header(first[1], path, first[0])
    rows = []
    for line, cells in records:
        where = f"line {line}"
        error = ""
        if len(cells) != len(names):
            error = (f"{len(cells)} fields but the header has {len(names)}"
                     + ("; a comma too many? (quote values that hold commas)" if len(cells) > len(names) else ""))
            cells = (cells + [""] * len(names))[:len(names)]
        row = dict(zip(names, cells))
        unnamed = [i + 1 for i, n in enumerate(names) if not n and cells[i]]
        if unnamed and not error:
            error = f"a value in column {unnamed[0]}, which has no name in the header; name the column"
        rows.append({**row, WHERE: where, ERROR: error})
    if not rows:
        raise HwsimError(f"cases file {path} has a header but no rows")
    frame = pd.DataFrame(rows, columns=names + [WHERE, ERROR], dtype=object)
    return frame.drop(columns=[n for n in names if not n])


def _read_parquet(path: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise HwsimError(f"cannot read cases file {path}: No such file or directory") from None
    except (OSError, ValueError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HwsimError(f"cannot read cases file {path} as Parquet ({reason})") from None
    renamed = [_column_key(str(c)) for c in frame.columns]
    _header(renamed, path, 0)
    frame.columns = renamed
    if frame.empty:
        raise HwsimError(f"cases file {path} has no rows")
    text = frame.astype(object).where(frame.notna(), "").map(_cell)
    text[WHERE] = [f"row {i}" for i in range(1, len(text) + 1)]
    text[ERROR] = ""
    return text


def _cell(value) -> str:
    """A Parquet cell as the text a CSV would hold (2.0 -> '2', so typed columns pass the integer checks)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _integer(text: str, name: str, minimum: int) -> int:
    t = text.strip()
    digits = t[1:] if t[:1] == "+" else t
    if digits.isascii() and digits.isdigit():
        value = int(digits)
    else:
        hint = ""
        try:
            f = float(t)
            if math.isfinite(f) and f.is_integer() and f >= minimum:   # -5 is out of range, not misspelt
                hint = f" (write {int(f)})"
        except ValueError:
            pass
        kind = "positive" if minimum > 0 else "non-negative"
        raise HwsimError(f"{name} must be a {kind} whole number, got {text!r}{hint}")
    if value < minimum:
        raise HwsimError(f"{name} must be {'positive' if minimum > 0 else 'non-negative'}, got {value}")
    return value


def parse_case(row, impl: str = "hwsim", first_pass: bool = False, profile: str = "eager") -> Case:
    """A row's cells as a typed Case; HwsimError (without the line) for a bad cell. `impl`, `first_pass`,
    `profile`: the defaults of rows with no impl / first_pass / profile cell."""
    for name in ("model", "hardware", "phase"):
        if not str(row.get(name, "")).strip():
            raise HwsimError(f"{name} is empty")
    opt = {k: (row.get(k) or "").strip() for k in OPTIONAL}
    return Case(
        where=row[WHERE], model=row["model"].strip(), hardware=row["hardware"].strip(),
        phase=row["phase"].strip().lower(), batch=_integer(row["batch"], "batch", 1),
        seq_len=_integer(row["seq_len"], "seq_len", 1),
        context=_integer(opt["context"], "context", 0) if opt["context"] else 0,
        dtype=opt["dtype"].lower() or "bf16", quant=opt["quant"].lower() or "none",
        kv_dtype=opt["kv_dtype"].lower() or None,
        group_size=_integer(opt["group_size"], "group_size", 1) if opt["group_size"] else None,
        impl=_impl(opt["impl"].lower() or impl),
        first_pass=_flag(opt["first_pass"], "first_pass") if opt["first_pass"] else first_pass,
        profile=_profile(opt["profile"].lower() or profile))


FLAGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _flag(text: str, name: str) -> bool:
    value = FLAGS.get(text.lower())
    if value is None:
        raise HwsimError(f"{name} must be true or false (or yes/no, 1/0), got {text!r}")
    return value


def _impl(text: str) -> str:
    if text not in ("hwsim", "hf"):
        raise HwsimError(f"impl must be hwsim or hf, got {text!r}")
    return text


def _profile(text: str) -> str:
    from hw_models.stacks import stack
    return stack(text).name         # one line naming the known profiles for an unknown one


def _blank(v) -> bool:
    return v is None or v != v          # None or NaN


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col, fmt in FLOAT_FORMAT.items():       # inline blank test, bound format: 7,000 cells per 1,000 rows
        f = fmt.format
        out[col] = ["" if v is None or v != v else f(v) for v in frame[col].tolist()]
    out["fits"] = ["" if _blank(v) else str(bool(v)) for v in frame["fits"].tolist()]
    return out


def to_csv(results: pd.DataFrame) -> str:
    return _formatted(results).to_csv(index=False, lineterminator="\n", na_rep="")


def _numeric(column: pd.Series) -> pd.Series:
    """An input column read as text, as numbers where every value that is not blank is one (integers as Int64,
    blanks missing); else as it is (text, or a mix of numbers and text)."""
    values = [None if _blank(v) or (isinstance(v, str) and not v.strip()) else v for v in column.tolist()]
    present = [v for v in values if v is not None]
    if not present or any(isinstance(v, bool) for v in present):
        return column
    try:
        numbers = pd.to_numeric(pd.Series(present, dtype=object))
    except (ValueError, TypeError):
        return column
    full = pd.to_numeric(pd.Series(values, dtype=object, index=column.index))
    if pd.api.types.is_integer_dtype(numbers):
        return full.astype("Int64")
    return full.astype("float64")


def to_parquet(results: pd.DataFrame) -> bytes:
    """The results as Parquet: results typed (floats, a nullable boolean `fits`, text), and the input columns carried
    through (read as text) numeric where every value is a number."""
    typed = results.copy()
    for col in typed.columns:
        if col not in RESULTS:
            typed[col] = _numeric(typed[col])
    for col in FLOAT_FORMAT:
        typed[col] = pd.to_numeric(typed[col], errors="coerce").astype("float64")
    typed["fits"] = typed["fits"].astype("boolean")
    buf = io.BytesIO()
    typed.to_parquet(buf, index=False)
    return buf.getvalue()


def encode(results: pd.DataFrame, path: str = None):
    """The results as what `path` asks for: Parquet bytes for .parquet/.pq, else CSV text."""
    if path and str(path).lower().endswith(PARQUET):
        return to_parquet(results)
    return to_csv(results)
