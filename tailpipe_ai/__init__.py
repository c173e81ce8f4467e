"""tailpipe-ai: energy and carbon of AI usage, captured with OpenTelemetry, never capturing content.

The public face: the carbon engine (``tailpipe_ai.carbon``), the record schema
(``tailpipe_ai.semconv``) and the ``tailpipe`` command line.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tailpipe-ai")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

from .client import TailpipeAI, flush, tags

__all__ = ["TailpipeAI", "__version__", "flush", "tags"]
