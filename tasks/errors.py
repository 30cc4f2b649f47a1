"""The one exception type that the command line turns into a one-line error."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback.

    The message names the bad value and what would be valid.
    """
