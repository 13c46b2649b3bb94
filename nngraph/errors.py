"""The one exception type users see: its message is the whole error line."""


class NNGraphError(Exception):
    """A failure with a message that says what went wrong and what to do about it."""
