"""Failure logging for span processors: once per place, exception type only.

A processor runs inside ``Span.end()`` on the application's thread, so it must never raise into the
caller, and a broken span must not flood the log. The exception's message is never logged: provider
errors and attribute values can hold prompt text.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tailpipe_ai.processor")
_logged: set[str] = set()


def log_once(where: str, exc: BaseException, outcome: str) -> None:
    """Warn about an internal failure the first time it happens at ``where``; ``outcome`` says what was
    done with the span instead (e.g. "forwarded unchanged")."""
    if where in _logged:
        return
    _logged.add(where)
    log.warning("tailpipe: internal error in %s (%s); span %s", where, type(exc).__name__, outcome)
