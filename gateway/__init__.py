"""OTLP gateway: receives GenAI spans and Claude Code metrics over OTLP/HTTP and writes records."""
