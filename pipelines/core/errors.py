"""User-facing errors.

A `PipelineError` is a mistake in what the user gave us (a spec, a parameter, a file): the
command line prints its message on one line and exits with status 2, without a traceback
(`--debug` shows it). Anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """An error in the user's input; the message names the file, column or key at fault."""
