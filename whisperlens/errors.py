"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class WhisperLensError(Exception):
    """A problem the user can fix (bad input, missing package, ...).

    The message must be one line that says what is wrong and, where possible, what to do.
    """
