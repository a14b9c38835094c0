"""The library's errors and warnings name the Python arguments a caller passed (max_seqs); a command's user typed
flags (--max-seqs). Each command that builds library objects from its flags maps the names to its flags here, so
the library never names a flag and the CLI never names a Python field."""
from __future__ import annotations

import functools
import re
import warnings

from workloads.errors import HwsimError, HwsimWarning


def as_flags(text: str, arguments, flags: dict) -> str:
    """`text` with each of `arguments` that `flags` maps (a whole name, not part of another) said as its flag."""
    for name in arguments:
        flag = flags.get(name)
        if flag:
            end = r"(?!\w)" if re.match(r"\w", name[-1]) else ""
            text = re.sub(r"(?<![\w-])" + re.escape(name) + end, lambda _: flag, text)
    return text


def speaks_flags(flags: dict):
    """Decorate a command's run(args): errors and warnings that name arguments in `flags` say the flags."""
    def wrap(run):
        @functools.wraps(run)
        def inner(args):
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if isinstance(message, HwsimWarning) and message.arguments:
                    message = category(as_flags(str(message), message.arguments, flags))
                shown(message, category, filename, lineno, file, line)
            warnings.showwarning = show
            try:
                return run(args)
            except HwsimError as exc:
                if not exc.arguments:
                    raise
                raise type(exc)(as_flags(str(exc), exc.arguments, flags)) from None
            finally:
                warnings.showwarning = shown
        return inner
    return wrap
