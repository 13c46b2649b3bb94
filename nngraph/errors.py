"""The one exception type users see: its message is the whole error line."""


class NNGraphError(Exception):
    """A failure with a message that says what went wrong and what to do about it."""


class Unreachable(NNGraphError):
    """The database did not answer (down, restarting, or a wrong address)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's messages can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def closest(name: str, names) -> str:
    """' (did you mean ...?)' with the names nearest to `name` (a mistyped model or version), or ''."""
    import difflib

    near = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    if not near:
        return ""
    *first, last = map(repr, near)
    return f" (did you mean {', '.join(first) + ' or ' if first else ''}{last}?)"
