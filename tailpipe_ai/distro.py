"""`opentelemetry-instrument python app.py` support: our distro and configurator (entry points).

The configurator sets up the SDK from `OTEL_*` variables like the standard one, but every span exporter
sits behind our processor chain (carbon enrichment -> trace roll-up -> content guard), so third-party
GenAI spans get energy and carbon too, and no content leaves. Records go to the local lake
(`TAILPIPE_LAKE`, default ./tailpipe-lake) unless configured otherwise.

Defaults differ from opentelemetry-distro on purpose: traces, metrics and logs exporters default to
`none` (no collector is assumed; records still land in the local lake). Set `OTEL_TRACES_EXPORTER=otlp`
(or console, ...) to export spans.
"""

from __future__ import annotations

import os

from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator


def _export_processor(exporter):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tailpipe_ai.processor import build_pipeline

    return build_pipeline(BatchSpanProcessor(exporter))


class TailpipeConfigurator(_OTelSDKConfigurator):
    """The standard SDK set-up with our span-processor chain around every exporter."""

    def _configure(self, **kwargs):
        kwargs.setdefault("export_span_processor", _export_processor)
        super()._configure(**kwargs)
        from tailpipe_ai.instrumentation._telemetry import set_default_telemetry

        set_default_telemetry(None)  # rebuilt on first use against the providers just installed


class TailpipeDistro(BaseDistro):
    """Quiet defaults: no exporter unless OTEL_*_EXPORTER says so; records always go to the lake."""

    def _configure(self, **kwargs):
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "none")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
