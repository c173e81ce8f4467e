"""Provider knowledge, written once: how to read usage out of a response object, a JSON body or a
stream event of each provider. Shared by the SDK instrumentation, the proxy and the gateway.

Parsers read only usage, model names, ids and finish reasons; they never touch message content.
"""

from .base import CallInfo, get

__all__ = ["CallInfo", "get"]
