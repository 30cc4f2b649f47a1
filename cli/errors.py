"""The one exception type that the command line turns into a one-line error, and
the checks that raise it."""

import math


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback.

    The message names the bad value and what would be valid.
    """


def check_losses_finite(history: dict, hint: str) -> None:
    """UserError when a loss in ``history`` (Keras ``History.history``) is NaN or
    infinite: TerminateOnNaN stopped that run, and its weights are worthless."""
    for key, values in history.items():
        bad = [i for i, v in enumerate(values) if "loss" in key and not math.isfinite(v)]
        if bad:
            raise UserError(f"training diverged: {key} became {values[bad[0]]} in epoch "
                            f"{bad[0] + 1}, so it was stopped and no model was saved; {hint}")
