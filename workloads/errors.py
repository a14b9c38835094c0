"""User-facing errors: one line saying what is wrong and how to fix it.

The CLI turns any `HwsimError` into that line on stderr and exit code 2, so
library code raises these instead of printing or exiting itself.
"""


class HwsimError(ValueError):
    """Bad input from the user (unknown preset, malformed config, impossible size). `arguments`: the Python argument
    names the line uses, as written in it, so that the CLI can say its own flags instead (sim/cli/flag_names.py)."""
    arguments: tuple = ()

    def __init__(self, *args, arguments=()):
        super().__init__(*args)
        self.arguments = tuple(arguments)


def check_switches(**given) -> None:
    """Switches must be True or False (numpy bools too): taken by truthiness, a string such as "no" was on."""
    import numpy as np
    for name, v in given.items():
        if not isinstance(v, (bool, np.bool_)):
            raise HwsimError(f"{name} must be True or False, got {v!r}")


def not_applicable(options, where: str, fix: str) -> HwsimError:
    """One line refusing `options` (names) given where they would be ignored: 'A, B do not apply <where>; <fix>'.
    `fix` may say {it} for 'it' / 'them'."""
    one = len(options) == 1
    return HwsimError(f"{', '.join(options)} {'does' if one else 'do'} not apply {where}; "
                      + fix.format(it="it" if one else "them"))


class ConfigError(HwsimError):
    """A model config.json that cannot be understood or is inconsistent."""


class UnsupportedModelError(HwsimError):
    """A model family this version cannot build."""


class HwsimWarning(UserWarning):
    """Input hwsim accepts but the user should know about (the CLI prints it as one line on stderr). `arguments`:
    as HwsimError's."""
    arguments: tuple = ()

    def __init__(self, *args, arguments=()):
        super().__init__(*args)
        self.arguments = tuple(arguments)


class UnknownModelTypeWarning(HwsimWarning):
    """A config whose model_type hwsim has no family for, built as a Llama-style decoder from its standard keys."""


class ContextLengthWarning(HwsimWarning):
    """A context beyond the model's max_position_embeddings (RoPE scaling and serving engines allow it)."""
