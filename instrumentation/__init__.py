"""Instrumentors for the provider SDKs (OpenAI, Anthropic, Gemini, Mistral, Bedrock, LangChain).

Each SDK gets one ``BaseInstrumentor`` module here; they read only usage objects, model names,
ids, status and timing, never message content.
"""
