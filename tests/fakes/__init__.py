"""Loopback fake provider servers for the official SDKs (JSON and SSE exactly as providers send them)."""
