"""`tailpipe gateway`: the OTLP/HTTP gateway, and `tailpipe gateway add-key` to give a tenant an API key.

The gateway's modules (aiohttp, opentelemetry-proto) are imported only when a command runs, so
`tailpipe --help` stays fast without the `gateway` extra installed.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tailpipe_ai._cli_output import fail as _fail

gateway_app = typer.Typer(
    help="OTLP/HTTP gateway: GenAI spans and Claude Code metrics in, records with energy and carbon out.",
    invoke_without_command=True,
    no_args_is_help=False,
)

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", help="Gateway config file (default $TAILPIPE_GATEWAY_CONFIG or ./tailpipe-gateway.yaml)."),
]


@gateway_app.callback()
def gateway_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default from config).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default from config, 4318).")] = None,
    config: ConfigOption = None,
    lake: Annotated[str | None, typer.Option("--lake", help="Lake folder for records (default from config).")] = None,
    prometheus_port: Annotated[
        int | None, typer.Option("--prometheus-port", help="Also serve our metrics for Prometheus on this port.")
    ] = None,
) -> None:
    """Run the gateway (POST /v1/traces, /v1/metrics; protobuf or JSON; gzip)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from tailpipe_ai.gateway.config import GatewayConfigError, load_config
    except ImportError as exc:  # pragma: no cover - extras missing
        raise _fail(f"the gateway needs `pip install 'tailpipe-ai[gateway]'` ({exc.name} is missing)") from None
    try:
        cfg = load_config(config)
    except GatewayConfigError as exc:
        raise _fail(str(exc)) from None
    if not cfg.keys:
        raise _fail(f"no API keys in {cfg.path}: add one with `tailpipe gateway add-key --tenant NAME`")
    if port is not None and not 0 <= port <= 65535:
        raise _fail(f"--port must be 0..65535, got {port}")
    if lake:
        cfg.lake = lake
    telemetry = _telemetry(prometheus_port)
    from tailpipe_ai.gateway.server import build_gateway, serve

    serve(build_gateway(cfg, telemetry=telemetry), host or cfg.host, cfg.port if port is None else port)


def _telemetry(prometheus_port: int | None):
    """Our metrics for what the gateway ingests: to Prometheus if asked, else the global OTel providers."""
    from tailpipe_ai.instrumentation._telemetry import Telemetry

    if prometheus_port is None:
        return Telemetry(integration="gateway")
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server

    start_http_server(prometheus_port, addr="127.0.0.1")
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    return Telemetry(meter_provider=provider, integration="gateway")


@gateway_app.command("add-key")
def add_key_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id the key writes records as.")],
    config: ConfigOption = None,
) -> None:
    """Create an API key for a tenant: its SHA-256 goes into the config file, the key is printed once."""
    from tailpipe_ai.gateway.config import GatewayConfigError, add_key

    try:
        key, entry = add_key(tenant, config)
    except GatewayConfigError as exc:
        raise _fail(str(exc)) from None
    sys.stderr.write(f"added key {entry.id} for tenant {entry.tenant}; it is shown once, store it now:\n")
    sys.stdout.write(key + "\n")
