"""`TailpipeAI(...).wrap(client)`: the 3-line integration for one SDK client instance."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import ContextDecorator, contextmanager
from typing import Any, TypeVar

log = logging.getLogger("tailpipe_ai")

T = TypeVar("T")

# Module prefix of the client's class -> our instrumentation module providing wrap_client().
_WRAPPERS = (
    ("openai", "tailpipe_ai.instrumentation.openai"),
    ("anthropic", "tailpipe_ai.instrumentation.anthropic"),
    ("google.genai", "tailpipe_ai.instrumentation.google_genai"),
    ("mistralai", "tailpipe_ai.instrumentation.mistralai"),
    ("botocore", "tailpipe_ai.instrumentation.bedrock"),  # boto3/botocore clients (bedrock-runtime only)
    ("aiobotocore", "tailpipe_ai.instrumentation.bedrock"),  # async clients, the same wrap_client
)


class _Tags(ContextDecorator):
    """Attribution tags for every call inside a `with` block or a decorated function."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._stack: list[Any] = []

    def __enter__(self) -> _Tags:
        from tailpipe_ai.instrumentation._context import tags

        cm = tags(**self._values)
        cm.__enter__()
        self._stack.append(cm)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.pop().__exit__(*exc)


class TailpipeAI:
    """Capture telemetry (never content) from the SDK clients you wrap.

        tailpipe = TailpipeAI(api_key="tp_...")        # or TAILPIPE_API_KEY; optional with the local lake
        client = tailpipe.wrap(OpenAI())               # use the client as normal

    api_key: the tenant key. It authenticates to a tailpipe gateway when one is configured and keys the
    HMAC signature of records; it is never logged or written anywhere.
    lake: folder of the local lake (default `TAILPIPE_LAKE` or ./tailpipe-lake).
    region: where your model calls run ('aws:eu-central-1', 'DE', ...) when the client does not say.
    residency: where records are stored: 'eu', 'us', 'apac' or an AWS region. Sends them to the Firehose
    stream configured for that residency (docs/operations.md); a destination outside it is an error here.
    tags: attribution tags (team, project, ...) added to every call.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        lake: str | os.PathLike[str] | None = None,
        region: str | None = None,
        residency: str | None = None,
        tags: Mapping[str, str] | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        sink: Any = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        from tailpipe_ai.exporter.local_lake import LocalLakeSink
        from tailpipe_ai.exporter.sink import default_sink, signer_from_env
        from tailpipe_ai.instrumentation._telemetry import Telemetry

        self._api_key = api_key or os.environ.get("TAILPIPE_API_KEY") or None
        if residency is not None and (lake is not None or sink is not None):
            raise ValueError("TailpipeAI: residency= sends records to Firehose; give it without lake= or sink=")
        if residency is not None:
            from tailpipe_ai.exporter.firehose import FirehoseSink

            sink = FirehoseSink.from_env(residency, signer=signer_from_env(self._api_key))
        if sink is None:
            # Records are signed with keys from TAILPIPE_SIGNING_KEYS and/or derived from the api_key.
            sink = LocalLakeSink(lake, signer=signer_from_env(self._api_key)) if lake is not None else default_sink()
        self.sink = sink
        self.telemetry = Telemetry(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            sink=sink,
            region=region,
            tags={k: str(v) for k, v in (tags or {}).items()},
            environment=environment,
            integration="sdk",
        )

    def __repr__(self) -> str:  # never show the key
        return f"TailpipeAI(api_key={'set' if self._api_key else 'unset'}, region={self.telemetry.region!r})"

    def wrap(self, client: T) -> T:
        """Instrument this one client instance (no global patching) and return it.

        An unsupported client is returned unchanged with a warning: wrapping must never break a program.
        """
        module = type(client).__module__
        for prefix, target in _WRAPPERS:
            if module == prefix or module.startswith(prefix + "."):
                try:
                    wrapper = importlib.import_module(target)
                    return wrapper.wrap_client(client, self.telemetry)
                except Exception as exc:
                    log.warning(
                        "tailpipe: could not wrap %s (%s); the client is unchanged",
                        type(client).__name__,
                        type(exc).__name__,
                    )
                    return client
        log.warning(
            "tailpipe: %s.%s is not a supported client; it is returned unchanged", module, type(client).__name__
        )
        return client

    def langchain_handler(self) -> Any:
        """A LangChain callback handler emitting with this configuration (`config={"callbacks": [...]}`);
        records say integration "langchain". Needs langchain-core. See docs/langchain.md."""
        from tailpipe_ai.instrumentation.langchain import TailpipeCallbackHandler

        return TailpipeCallbackHandler(self.telemetry)

    def tags(self, **values: str) -> _Tags:
        """Context manager and decorator: `with tailpipe.tags(team="search"):` / `@tailpipe.tags(team=...)`."""
        return _Tags(values)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Emit pending spans, metrics and records, then write out the records (all done in the background)."""
        from tailpipe_ai.instrumentation._telemetry import flush

        return flush(timeout) and self.sink.flush(timeout)


@contextmanager
def tags(**values: str) -> Iterator[None]:
    """Module-level attribution tags, for auto-instrumented code: `with tailpipe_ai.tags(team="x"):`."""
    from tailpipe_ai.instrumentation._context import tags as _tags

    with _tags(**values):
        yield


def flush(timeout: float | None = 10.0) -> bool:
    """Emit every finished call's span, metrics and record now and write out the default lake's records.

    Calls are emitted on a background thread; this runs at exit anyway. Call it before shutting down
    your own TracerProvider or MeterProvider by hand, so the last calls are not lost.
    """
    from tailpipe_ai.exporter.sink import _default_sink
    from tailpipe_ai.instrumentation._telemetry import flush as flush_calls

    done = flush_calls(timeout)
    return (_default_sink.flush(timeout) if _default_sink is not None else True) and done
