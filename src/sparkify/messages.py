"""What the project's commands say when something fails: one line, no traceback."""


def one_line(exc: BaseException) -> str:
    """An error in one line: the first line of its message, or its type's name.
    (The project's one formatter of this kind: the loader, the report, the ops
    commands and the benchmarks use it.)"""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
