"""LangChain instrumentation: one GenAI span, metric set and record per chat-model / LLM run, of any provider.

`TailpipeCallbackHandler` is a plain LangChain callback handler (pass it by hand with
``config={"callbacks": [TailpipeCallbackHandler()]}``); `LangChainInstrumentor` adds one to every callback
manager LangChain creates, so every run in the process is seen.

What the handler reads, and only this: run ids, the ``ls_provider`` / ``ls_model_name`` metadata LangChain
adds for tracing, numeric request parameters and the model name from the invocation parameters, for
Bedrock models the AWS region (``ls_invocation_params.region_name``, or the model's ``region_name``
argument), and from the result ``usage_metadata`` (or ``llm_output["token_usage"]``, which also fills
cache and reasoning counts ``usage_metadata`` leaves out), the response model, id and finish reason.
Prompts, messages, tool arguments and generated text arrive in the same callbacks and are never touched:
``on_llm_new_token`` only counts chunks (for time to first chunk).

Spans: a model run's span is parented under the span of the chain (or tool, or retriever) run around
it. Chain spans are "light": one is created only for a chain that has a model call somewhere inside it,
with the chain's own start and end times, never made current, on the telemetry thread (off the request
path). A chain run started while a different OpenTelemetry span is current than at its parent's start
(you opened a span inside a RunnableLambda) is parented to that span instead: the nearest enclosing
span wins.

Counted once: a model run is an "outer call" (``_context.push_outer_call``). When our provider
instrumentation (OpenAIInstrumentor, AnthropicInstrumentor, ``TailpipeAI.wrap``, ...) traces the SDK
call the run makes, its call hands itself to the run instead of emitting a span and record of its own;
the run then emits the single span and record (integration ``langchain``), taking the exact usage,
provider, server and region the SDK call observed and LangChain's usage where the SDK call had none.
docs/langchain.md has the details.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tailpipe_ai.providers import CallInfo
from tailpipe_ai.providers import anthropic as anthropic_parser
from tailpipe_ai.providers import bedrock as bedrock_parser
from tailpipe_ai.providers import openai as openai_parser
from tailpipe_ai.providers.base import as_int, get
from tailpipe_ai.semconv import attributes as sc

from ._context import drop_outer_call, push_outer_call
from ._telemetry import Telemetry, default_telemetry, defer, log_once, suppressed, telemetry_from_kwargs
from ._wrap import known_region

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError:  # pragma: no cover - the module is only imported when langchain-core is installed
    BaseCallbackHandler = object  # type: ignore[assignment,misc]

_instruments = ("langchain-core >= 0.3.0, < 2",)

__all__ = ["LangChainInstrumentor", "TailpipeCallbackHandler"]


# LangChain's ls_provider (and a few older spellings) -> gen_ai.provider.name
_PROVIDERS = {
    "openai": sc.PROVIDER_OPENAI,
    "azure": sc.PROVIDER_AZURE_AI_OPENAI,
    "azure_openai": sc.PROVIDER_AZURE_AI_OPENAI,
    "azure_ai": sc.PROVIDER_AZURE_AI_INFERENCE,
    "anthropic": sc.PROVIDER_ANTHROPIC,
    "amazon_bedrock": sc.PROVIDER_AWS_BEDROCK,
    "bedrock": sc.PROVIDER_AWS_BEDROCK,
    "bedrock_converse": sc.PROVIDER_AWS_BEDROCK,
    "google_genai": sc.PROVIDER_GCP_GEMINI,
    "google_generative_ai": sc.PROVIDER_GCP_GEMINI,
    "google_vertexai": sc.PROVIDER_GCP_VERTEX_AI,
    "google_anthropic_vertex": sc.PROVIDER_GCP_VERTEX_AI,
    "mistral": sc.PROVIDER_MISTRAL_AI,
    "mistralai": sc.PROVIDER_MISTRAL_AI,
    "cohere": sc.PROVIDER_COHERE,
    "deepseek": sc.PROVIDER_DEEPSEEK,
    "groq": sc.PROVIDER_GROQ,
    "xai": sc.PROVIDER_X_AI,
    "perplexity": sc.PROVIDER_PERPLEXITY,
    "ibm": sc.PROVIDER_IBM_WATSONX_AI,
    "watsonx": sc.PROVIDER_IBM_WATSONX_AI,
}
_MODEL_PARAMS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_MAX_NAME = 128
_MAX_RUNS = 100_000


def _str(value: Any, limit: int = _MAX_NAME) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _provider(metadata: Mapping[str, Any], params: Mapping[str, Any], serialized: Any) -> str:
    """gen_ai.provider.name from ls_provider, else the integration package in the serialized id, else
    the model type (``openai-chat``); a provider we do not map is kept as LangChain names it."""
    ls = _str(metadata.get("ls_provider"), 64)
    if ls is None:
        ids = get(serialized, "id")
        if isinstance(ids, list) and len(ids) >= 3 and isinstance(ids[2], str):
            ls = ids[2]  # ["langchain", "chat_models", "openai", "ChatOpenAI"]
    if ls is None:
        ls = (_str(params.get("_type"), 64) or "").split("-")[0] or None
    if ls is None:
        return "langchain"
    ls = ls.lower()
    return _PROVIDERS.get(ls, ls)


def _model(metadata: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    model = _str(metadata.get("ls_model_name"))
    for name in _MODEL_PARAMS:
        if model is not None:
            break
        model = _str(params.get(name))
    return model


def _aws_region(provider: str, metadata: Mapping[str, Any], serialized: Any) -> str | None:
    """The region of a Bedrock model's client, so the carbon engine uses that region's PUE and grid:
    ChatBedrockConverse reports it in ``ls_invocation_params``, ChatBedrock only as its ``region_name``
    argument. A region the carbon engine does not know is dropped (it would cost the call its estimate)."""
    if provider != sc.PROVIDER_AWS_BEDROCK:
        return None
    region = _str(get(metadata.get("ls_invocation_params"), "region_name"), 64)
    region = region or _str(get(get(serialized, "kwargs"), "region_name"), 64)
    return region if region and known_region(f"aws:{region}") else None


def _request(metadata: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    max_tokens = _num(metadata.get("ls_max_tokens"))
    if max_tokens is None:
        max_tokens = _num(params.get("max_tokens") or params.get("max_completion_tokens"))
    temperature = _num(metadata.get("ls_temperature"))
    return {
        sc.GEN_AI_REQUEST_MAX_TOKENS: int(max_tokens) if max_tokens is not None else None,
        sc.GEN_AI_REQUEST_TEMPERATURE: temperature if temperature is not None else _num(params.get("temperature")),
        sc.GEN_AI_REQUEST_TOP_P: _num(params.get("top_p")),
    }


# --------------------------------------------------------------------------------------------------
# Usage out of an LLMResult (never the text)
# --------------------------------------------------------------------------------------------------


def _read_usage_metadata(usage: Any, info: CallInfo) -> bool:
    """LangChain's UsageMetadata -> info. Its input_tokens already include cached tokens (every partner
    package adds Anthropic's cache parts back), as GenAI semconv wants. False if absent or malformed."""
    raw_in, raw_out = get(usage, "input_tokens"), get(usage, "output_tokens")
    inp, out = as_int(raw_in), as_int(raw_out)
    if (raw_in is not None and inp is None) or (raw_out is not None and out is None):
        return False  # distrusted as a whole, like the provider parsers do
    if not inp and not out:  # partner packages fill zeros when the provider sent no usage at all
        total = as_int(get(usage, "total_tokens"))
        if not total:
            return False
        info.total_tokens = total
        return True
    info.input_tokens, info.output_tokens = inp, out
    details_in = get(usage, "input_token_details")
    info.cache_read_tokens = as_int(get(details_in, "cache_read"))
    creation = as_int(get(details_in, "cache_creation"))
    if not creation and isinstance(details_in, Mapping):
        # langchain-anthropic splits cache writes by TTL (ephemeral_5m/1h_input_tokens) and zeroes the total
        by_ttl = [as_int(v) for k, v in details_in.items() if isinstance(k, str) and k.startswith("ephemeral_")]
        creation = sum(v for v in by_ttl if v) or creation
    info.cache_write_tokens = creation
    info.reasoning_tokens = as_int(get(get(usage, "output_token_details"), "reasoning"))
    return True


_DETAILS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def _read_llm_output(llm_output: Any, provider: str, info: CallInfo) -> None:
    """The provider-shaped usage some integrations put in ``llm_output`` (and LLMs, which have no
    message): read with that provider's own parser. When ``usage_metadata`` was read already, only the
    details it lacks are taken (langchain-mistralai drops the cached-token count there), and only from a
    usage with the same input and output counts, so both describe the call the same way."""
    if not isinstance(llm_output, Mapping):
        return
    info.response_model = info.response_model or _str(llm_output.get("model_name")) or _str(llm_output.get("model"))
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(usage, Mapping):
        return
    if provider == sc.PROVIDER_ANTHROPIC and "prompt_tokens" not in usage:
        parsed = anthropic_parser.normalise(anthropic_parser.read_usage(usage))
    else:
        parsed = openai_parser.parse_response({"usage": usage})
    if not info.has_usage:
        info.update(parsed)
    elif (parsed.input_tokens, parsed.output_tokens) == (info.input_tokens, info.output_tokens):
        for name in _DETAILS:
            if getattr(info, name) is None:
                setattr(info, name, getattr(parsed, name))


def _finish_reason(meta: Mapping[str, Any]) -> str | None:
    reason = _str(meta.get("finish_reason"), 64)
    if reason is None:  # Anthropic-shaped (ChatAnthropic, ChatBedrock), else Converse (ChatBedrockConverse)
        mapped = anthropic_parser.finish_reason(meta.get("stop_reason"))
        mapped = mapped or bedrock_parser.finish_reason(meta.get("stopReason"))
        reason = _str(mapped[0], 64) if mapped else None
    return reason


def _info_from_result(response: Any, provider: str) -> CallInfo:
    info = CallInfo()
    reasons: list[str] = []
    for group in get(response, "generations") or ():
        for generation in group if isinstance(group, list) else ():
            message = getattr(generation, "message", None)
            meta = getattr(message, "response_metadata", None) if message is not None else None
            if not isinstance(meta, Mapping):
                meta = getattr(generation, "generation_info", None)
            if not info.has_usage and message is not None:
                usage = getattr(message, "usage_metadata", None)
                if usage:  # each choice of an n>1 call carries the call's whole usage: read it once
                    _read_usage_metadata(usage, info)
            if isinstance(meta, Mapping):
                info.response_model = info.response_model or _str(meta.get("model_name")) or _str(meta.get("model"))
                info.response_id = info.response_id or _str(meta.get("id"))
                reason = _finish_reason(meta)
                if reason:
                    reasons.append(reason)
    info.finish_reasons = tuple(reasons)
    _read_llm_output(get(response, "llm_output"), provider, info)
    return info


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

_runs: dict[UUID, Any] = {}  # run id -> _Span / _Model, shared by every handler: the first one to see a run owns it
_runs_lock = threading.Lock()


def _current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


class _Span:
    """A chain, tool or retriever run. Its span is created only when a model run inside it needs a parent
    (`request`), on the telemetry thread, with the run's own start time."""

    __slots__ = ("context", "ended", "kind", "name", "outer_span_id", "owner", "parent", "requested", "span", "start")

    def __init__(self, owner: Any, kind: str, name: str, parent: _Span | None) -> None:
        self.owner = owner
        self.kind = kind
        self.name = name
        self.parent = parent
        self.start = time.time_ns()
        self.outer_span_id = _current_span_id()
        self.context: Any = otel_context.get_current() if parent is None else None
        self.span: Any = None
        self.requested = False
        self.ended = False

    def request(self, tracer: trace.Tracer) -> None:
        """Make sure this run and every run around it get a span (idempotent; caller's thread, cheap)."""
        pending = []
        run: _Span | None = self
        while run is not None and not run.requested:
            run.requested = True
            pending.append(run)
            run = run.parent
        for run in reversed(pending):  # outermost first: FIFO on one thread, so parents exist in time
            defer(lambda run=run: run._open(tracer))

    def _open(self, tracer: trace.Tracer) -> None:
        self.span = tracer.start_span(
            f"{self.kind} {self.name}",
            context=self.parent_context(),
            kind=SpanKind.INTERNAL,
            start_time=self.start,
            attributes={sc.TAILPIPE_LANGCHAIN_RUN_TYPE: self.kind},
        )

    def parent_context(self) -> Any:
        """The parent of this run's span: the enclosing run's span, else the context current at start."""
        return self.parent.own_context() if self.parent is not None else self.context

    def own_context(self) -> Any:
        """The parent of a span directly under this run (telemetry thread)."""
        return trace.set_span_in_context(self.span) if self.span is not None else self.parent_context()

    def end(self, error: BaseException | None) -> None:
        if self.ended:
            return
        self.ended = True
        if not self.requested:
            return
        end_ns = time.time_ns()
        error_type = type(error).__qualname__ if error is not None else None
        defer(lambda: self._close(end_ns, error_type))

    def _close(self, end_ns: int, error_type: str | None) -> None:
        span = self.span  # kept: a late child (a stream read after its chain ended) still finds its parent
        if span is None:
            return
        if error_type is not None:
            span.set_attribute(sc.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))  # the type only: messages can echo prompts
        span.end(end_time=max(end_ns, self.start))


class _Model:
    """A chat-model or LLM run: the one call that is counted, possibly enriched by the SDK call inside it."""

    __slots__ = ("claimed", "done", "handle", "inner", "lock", "owner", "tokens")

    def __init__(self, owner: Any, handle: Any) -> None:
        self.owner = owner
        self.handle = handle
        self.tokens = 0
        self.claimed = False
        self.done = False
        self.inner: Any = None
        self.lock = threading.Lock()

    # -- the outer-call protocol of _context: an SDK call of ours started inside this run claims it
    @property
    def open(self) -> bool:
        return not (self.done or self.claimed or self.tokens)  # a chunk seen: the run's own call has started

    def claim(self) -> bool:
        with self.lock:
            if not self.open:
                return False
            self.claimed = True
            return True

    def absorb(self, inner: Any) -> None:
        """The claiming SDK call ended: keep its call for the merge (dropped if this run already ended,
        which then counted the call itself)."""
        with self.lock:
            if not self.done:
                self.inner = inner

    def token(self) -> None:
        if not self.tokens:
            self.handle.first_chunk()
        self.tokens += 1

    def finish(self, info: CallInfo | None, error: BaseException | None = None, *, incomplete: bool = False) -> None:
        with self.lock:
            self.done = True
            inner = self.inner
        drop_outer_call(self)
        handle, call = self.handle, self.handle.call
        if self.tokens:
            call.streamed = True
            handle.attrs[sc.GEN_AI_REQUEST_STREAM] = True
        accuracy, flags = None, ()
        if inner is not None:
            info, accuracy, flags = _merge(handle, inner, info or CallInfo())
        if incomplete and not (info and info.has_usage):
            accuracy, flags = "estimated", (*flags, "stream_incomplete")
        handle.finish(info, error=error, token_accuracy=accuracy, flags=flags)


_OWN_ATTRS = frozenset({sc.TAILPIPE_INTEGRATION, sc.GEN_AI_OPERATION_NAME})


def _merge(handle: Any, inner: Any, own: CallInfo) -> tuple[CallInfo, str | None, tuple[str, ...]]:
    """One call seen twice: by the LangChain run (handle) and by our SDK instrumentation (inner).

    The SDK call knows the endpoint (provider behind a base URL, server, region) and parsed the provider's
    own usage object: it wins where it has data. LangChain's usage fills in where the SDK call had none
    (e.g. a raw streamed response the SDK instrumentation must not read)."""
    call, other = handle.call, inner.call
    call.provider = other.provider
    handle.attrs[sc.GEN_AI_PROVIDER_NAME] = other.provider
    for key, value in inner.attrs.items():
        if key not in _OWN_ATTRS:
            handle.attrs.setdefault(key, value)
    call.request_model = call.request_model or other.request_model
    call.region = other.region or call.region
    call.output_type = other.output_type or call.output_type
    call.streamed = call.streamed or other.streamed
    if call.ttft_ms is None:
        call.ttft_ms = other.ttft_ms
    call.attributes = {**other.attributes, **call.attributes}
    merged = CallInfo()
    merged.update(own)
    if other.info.has_usage:
        merged.update(other.info)
        return merged, other.token_accuracy, tuple(f for f in other.flags if f != "usage_missing")
    for name in ("response_model", "response_id", "finish_reasons"):
        if not getattr(merged, name):
            setattr(merged, name, getattr(other.info, name))
    return merged, None, ()


def _own(run_id: UUID, owner: Any, cls: type) -> Any:
    run = _runs.get(run_id)
    return run if isinstance(run, cls) and run.owner is owner else None


def _pop(run_id: UUID, owner: Any, cls: type) -> Any:
    run = _own(run_id, owner, cls)
    if run is not None:
        _runs.pop(run_id, None)
    return run


def _register(run_id: UUID, run: Any) -> bool:
    with _runs_lock:
        if run_id in _runs:
            return False  # another handler (by hand and injected, say) has it: counted once
        if len(_runs) >= _MAX_RUNS:  # runs that never ended (abandoned generators): forget them
            _runs.clear()
        _runs[run_id] = run
        return True


# --------------------------------------------------------------------------------------------------
# The handler
# --------------------------------------------------------------------------------------------------


class TailpipeCallbackHandler(BaseCallbackHandler):  # type: ignore[misc,valid-type]
    """Energy, carbon, tokens and timing of every LangChain model call; never the messages.

    ``telemetry``: the Telemetry to emit with (``TailpipeAI(...).langchain_handler()`` passes its own);
    None uses the process-wide one (spans/metrics to the global OpenTelemetry providers, records to the
    configured sink). A failure inside the handler is logged once, without content, and never reaches
    your chain.
    """

    run_inline = True  # called in the run's own context (async too), so the SDK call inside can find the run
    raise_error = False

    def __init__(self, telemetry: Telemetry | None = None, *, _get_telemetry: Callable[[], Any] | None = None):
        super().__init__()
        self._get_telemetry = _get_telemetry or ((lambda: telemetry) if telemetry is not None else default_telemetry)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- chains, tools, retrievers: light parents for the model spans

    def _start_span_run(self, kind: str, serialized: Any, run_id: UUID, parent_run_id: UUID | None, kw: Any) -> None:
        try:
            parent = _runs.get(parent_run_id) if parent_run_id is not None else None
            if not isinstance(parent, _Span) or parent.outer_span_id != _current_span_id():
                parent = None  # no enclosing run of ours, or a span of yours opened inside it: that one is nearer
            ids = get(serialized, "id")
            name = _str(kw.get("name")) or _str(get(serialized, "name"))
            if name is None and isinstance(ids, list) and ids:
                name = _str(ids[-1])
            _register(run_id, _Span(self, kind, name or kind, parent))
        except Exception as exc:
            log_once(f"langchain.on_{kind}_start", exc)

    def _end_span_run(self, kind: str, run_id: UUID, error: BaseException | None) -> None:
        try:
            run = _pop(run_id, self, _Span)
            if run is not None:
                run.end(error)
        except Exception as exc:
            log_once(f"langchain.on_{kind}_end", exc)

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kwargs):
        self._start_span_run("chain", serialized, run_id, parent_run_id, kwargs)

    def on_chain_end(self, outputs, *, run_id, **kwargs):
        self._end_span_run("chain", run_id, None)

    def on_chain_error(self, error, *, run_id, **kwargs):
        self._end_span_run("chain", run_id, error)

    def on_tool_start(self, serialized, input_str, *, run_id, parent_run_id=None, **kwargs):
        self._start_span_run("tool", serialized, run_id, parent_run_id, kwargs)

    def on_tool_end(self, output, *, run_id, **kwargs):
        self._end_span_run("tool", run_id, None)

    def on_tool_error(self, error, *, run_id, **kwargs):
        self._end_span_run("tool", run_id, error)

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kwargs):
        self._start_span_run("retriever", serialized, run_id, parent_run_id, kwargs)

    def on_retriever_end(self, documents, *, run_id, **kwargs):
        self._end_span_run("retriever", run_id, None)

    def on_retriever_error(self, error, *, run_id, **kwargs):
        self._end_span_run("retriever", run_id, error)

    # -- model runs

    def _start_model(
        self, operation: str, serialized: Any, run_id: UUID, parent_run_id: UUID | None, metadata: Any, kw: Any
    ) -> None:
        try:
            if suppressed() or run_id in _runs:
                return
            telemetry = self._get_telemetry()
            if telemetry is None:
                return
            metadata = metadata if isinstance(metadata, Mapping) else {}
            params = kw.get("invocation_params")
            params = params if isinstance(params, Mapping) else {}
            parent = _runs.get(parent_run_id) if parent_run_id is not None else None
            resolve = None
            if isinstance(parent, _Span) and parent.outer_span_id == _current_span_id():
                parent.request(telemetry.tracer)
                resolve = parent.own_context
            provider = _provider(metadata, params, serialized)
            request = _request(metadata, params)
            region = _aws_region(provider, metadata, serialized)
            if region is not None:
                request[sc.CLOUD_REGION] = region  # as our Bedrock instrumentation reports it
            handle = telemetry.start(
                provider=provider,
                operation=operation,
                model=_model(metadata, params),
                stream=params.get("stream") is True or params.get("streaming") is True,
                request=request,
                output_type=sc.OUTPUT_TYPE_TEXT,
                region=f"aws:{region}" if region else None,
                integration=sc.INTEGRATION_LANGCHAIN,
                parent=resolve,
            )
            run = _Model(self, handle)
            if _register(run_id, run):
                push_outer_call(run)
        except Exception as exc:
            log_once("langchain.on_llm_start", exc)

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, metadata=None, **kwargs):
        self._start_model(sc.OPERATION_CHAT, serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(self, serialized, prompts, *, run_id, parent_run_id=None, metadata=None, **kwargs):
        self._start_model(sc.OPERATION_TEXT_COMPLETION, serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_new_token(self, token, *, run_id, **kwargs):
        try:
            run = _own(run_id, self, _Model)
            if run is not None:
                run.token()
        except Exception as exc:
            log_once("langchain.on_llm_new_token", exc)

    def on_llm_end(self, response, *, run_id, **kwargs):
        try:
            run = _pop(run_id, self, _Model)
            if run is None:
                return
            try:
                info = _info_from_result(response, run.handle.call.provider)
            except Exception as exc:
                log_once("langchain usage", exc)
                run.finish(None)
                return
            run.finish(info)
        except Exception as exc:
            log_once("langchain.on_llm_end", exc)

    def on_llm_error(self, error, *, run_id, response=None, **kwargs):
        try:
            run = _pop(run_id, self, _Model)
            if run is None:
                return
            info = None
            if response is not None:
                try:  # the chunks streamed before the error may carry usage
                    info = _info_from_result(response, run.handle.call.provider)
                except Exception as exc:
                    log_once("langchain usage", exc)
            if isinstance(error, GeneratorExit):  # the caller stopped reading a stream: not an error
                run.finish(info, incomplete=True)
            else:
                run.finish(info, error)
        except Exception as exc:
            log_once("langchain.on_llm_error", exc)


# --------------------------------------------------------------------------------------------------
# The instrumentor
# --------------------------------------------------------------------------------------------------


class LangChainInstrumentor(BaseInstrumentor):
    """Adds one `TailpipeCallbackHandler` to every LangChain callback manager (inherited by child runs).

    A handler you pass yourself wins: adding one to a manager removes the injected one from it, so a run
    is never seen by two of ours. `instrument(telemetry=...)` as in `telemetry_from_kwargs`."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt

        handler = TailpipeCallbackHandler(_get_telemetry=telemetry_from_kwargs(kwargs))
        self._handler = handler

        def init(wrapped, instance, args, kw):
            wrapped(*args, **kw)
            try:
                if not any(isinstance(h, TailpipeCallbackHandler) for h in instance.handlers):
                    instance.handlers.append(handler)
                    if handler not in instance.inheritable_handlers:
                        instance.inheritable_handlers.append(handler)
            except Exception as exc:
                log_once("langchain inject", exc)

        def add_handler(wrapped, instance, args, kw):
            try:
                new = args[0] if args else kw.get("handler")
                if isinstance(new, TailpipeCallbackHandler) and new is not handler:
                    instance.remove_handler(handler)
            except Exception as exc:
                log_once("langchain inject", exc)
            return wrapped(*args, **kw)

        wrapt.wrap_function_wrapper("langchain_core.callbacks.base", "BaseCallbackManager.__init__", init)
        wrapt.wrap_function_wrapper("langchain_core.callbacks.base", "BaseCallbackManager.add_handler", add_handler)

    def _uninstrument(self, **kwargs: Any) -> None:
        from langchain_core.callbacks.base import BaseCallbackManager
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(BaseCallbackManager, "__init__")
        unwrap(BaseCallbackManager, "add_handler")
