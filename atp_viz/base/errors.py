"""The one exception type whose message is meant for a person.

The CLI prints it as a single line and exits non-zero; the app shows it as a
``gr.Error``. Anything else escaping the engine is a bug.
"""


class AtpError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class Cancelled(AtpError):
    """The user stopped the run."""


class HubUnreachable(AtpError):
    """The Hugging Face hub could not be reached for a model that is not cached locally."""
