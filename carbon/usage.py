"""What one model call (or one billing line) consumed: the input of the carbon engine."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError

_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
)


def plain_counts(i: object, o: object, t: object, cr: object, cw: object, rt: object, im: object) -> bool:
    """True when the input, output, total, cache read, cache write, reasoning and image counts are each
    None or an int >= 0: what a `Usage` takes as given. False leaves it to `Usage` to normalise or refuse."""
    return (
        (i is None or (type(i) is int and i >= 0))
        and (o is None or (type(o) is int and o >= 0))
        and (t is None or (type(t) is int and t >= 0))
        and (cr is None or (type(cr) is int and cr >= 0))
        and (cw is None or (type(cw) is int and cw >= 0))
        and (rt is None or (type(rt) is int and rt >= 0))
        and (im is None or (type(im) is int and im >= 0))
    )


@dataclass(slots=True)
class Usage:
    """Token, image and video counts of one call (or an aggregate such as a billing line).

    ``input_tokens`` includes cached tokens (GenAI semconv); ``output_tokens`` includes reasoning
    tokens. ``total_tokens`` is for sources that only know the sum (e.g. the seed's worked example);
    when input and output are both given it is ignored. ``requests`` is the number of calls behind the
    figures (None when unknown, e.g. some billing lines): the shape method's per-request term uses it.
    """

    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    requests: int | None = 1
    images: int | None = None
    image_size: str | None = None
    image_quality: str | None = None
    video_seconds: float | None = None
    video_resolution: str | None = None

    def __post_init__(self) -> None:
        # The common case, whole counts and one request, in one test; anything else is checked (and
        # normalised, or refused with the field named) field by field below.
        if (
            plain_counts(
                self.input_tokens,
                self.output_tokens,
                self.total_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                self.reasoning_tokens,
                self.images,
            )
            and type(self.requests) is int
            and self.requests == 1
            and self.video_seconds is None
        ):
            return
        for name in _INT_FIELDS:
            v = getattr(self, name)
            if v is None:
                continue
            if type(v) is not int:
                if isinstance(v, float) and v.is_integer() and v >= 0:
                    setattr(self, name, int(v))
                    continue
                raise UsageError(f"{name} must be a whole number of tokens/images >= 0, got {v!r}")
            if v < 0:
                raise UsageError(f"{name} must be >= 0, got {v}")
        r = self.requests
        if r is not None and (type(r) is not int or r < 0):
            raise UsageError(f"requests must be a whole number >= 0 or None, got {r!r}")
        s = self.video_seconds
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0):
            raise UsageError(f"video_seconds must be a number of seconds >= 0, got {s!r}")

    @property
    def text_tokens(self) -> int:
        """Tokens the flat method multiplies: input + output, or the total when only that is known."""
        if self.input_tokens is None and self.output_tokens is None:
            return self.total_tokens or 0
        return (self.input_tokens or 0) + (self.output_tokens or 0)
