"""Model-id resolution: one function, a table of the ids providers, gateways and bills actually use."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailpipe_ai.carbon import resolve_model
from tailpipe_ai.carbon.config import parse_config
from tailpipe_ai.carbon.resolve import canonical, params_from_id

CASES = [
    # (id as seen in the wild, resolved dataset id, kind)
    ("gpt-4o", "gpt-4o", "measured"),
    ("gpt-4o-2024-08-06", "gpt-4o", "measured"),
    ("GPT-4o", "gpt-4o", "measured"),
    ("openai/gpt-4o", "gpt-4o", "measured"),
    ("chatgpt-4o-latest", "gpt-4o", "measured"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "measured"),
    ("gpt-4.1-2025-04-14", "gpt-4.1", "measured"),
    ("gpt-4.1-nano", "gpt-4.1-nano", "measured"),
    ("gpt-4-0613", "gpt-4", "measured"),
    ("gpt-4-turbo-2024-04-09", "gpt-4-turbo", "measured"),
    ("gpt-4-1106-preview", "gpt-4-turbo", "measured"),
    ("gpt-4.5-preview", "gpt-4.5", "measured"),
    ("o3-mini-2025-01-31", "o3-mini", "measured"),
    ("o4-mini", "o4-mini-high", "measured"),
    ("o1-2024-12-17", "o1", "measured"),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "gpt-4o-mini", "measured"),
    ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet", "measured"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet", "measured"),
    ("claude-3.7-sonnet", "claude-3-7-sonnet", "measured"),
    ("anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet", "measured"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet", "measured"),
    ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet", "measured"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4", "published"),
    ("claude-sonnet-4-0", "claude-sonnet-4", "published"),
    ("anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "published"),
    ("eu.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "published"),
    ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "published"),
    ("global.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "published"),
    (
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-sonnet-4",
        "published",
    ),
    (
        "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-70b-instruct-v1:0",
        "llama-3.1-70b",
        "measured",
    ),
    ("meta.llama3-1-405b-instruct-v1:0", "llama-3.1-405b", "measured"),
    ("us.meta.llama3-2-90b-instruct-v1:0", "llama-3.2-90b-vision", "measured"),
    ("meta.llama3-8b-instruct-v1:0", "llama-3-8b", "measured"),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b", "measured"),
    ("llama-3.3-70b-versatile", "llama-3.3-70b", "measured"),
    ("deepseek-chat", "deepseek-v3", "measured"),
    ("deepseek-reasoner", "deepseek-r1", "measured"),
    ("us.deepseek.r1-v1:0", None, None),  # Bedrock's DeepSeek id: resolved or sized, never an exception
]


@pytest.mark.parametrize(("model_id", "expected", "kind"), CASES)
def test_resolution_table(model_id, expected, kind):
    match = resolve_model(model_id)
    if expected is None:
        assert match.kind in ("measured", "sized", "class", "unknown", "unsized")
        return
    assert match.id == expected, f"{model_id} -> {match.id} ({match.kind}, {match.via})"
    assert match.kind == kind


@pytest.mark.parametrize(
    ("model_id", "size_class"),
    [
        ("mistral.mistral-large-2407-v1:0", "large"),
        ("mistral-small-2501", "small"),
        ("mixtral-8x7b-instruct", "medium"),
        ("meta.llama4-maverick-17b-instruct-v1:0", "large"),
        ("gemma-3-27b-it", "small"),
        ("qwen2.5-7b-instruct", "micro"),
        ("command-r-plus", "large"),
    ],
)
def test_unmeasured_models_get_their_size_class(model_id, size_class):
    match = resolve_model(model_id)
    assert match.kind in ("sized", "class")
    assert match.size_class == size_class, f"{model_id}: {match}"


@pytest.mark.parametrize(
    ("model_id", "size_class", "flag"),
    [
        ("acme-foundation-13b", "micro", "size_from_model_id"),
        ("qwen3-235b-a22b-2507", "large", None),
        ("gemini-2.5-pro", "large", "size_class_assumed"),
        ("models/gemini-2.5-flash", "medium", "size_class_assumed"),
        ("gemini-2.5-flash-lite-preview-06-17", "medium", "size_class_assumed"),
        ("gpt-5-nano-2025-08-07", "small", "size_class_assumed"),
        ("claude-haiku-4-5-20251001", "medium", "size_class_assumed"),
        ("claude-opus-4-1-20250805", "large", "size_class_assumed"),
    ],
)
def test_fallbacks_are_flagged(model_id, size_class, flag):
    match = resolve_model(model_id)
    assert match.size_class == size_class, f"{model_id}: {match}"
    if flag:
        assert flag in match.flags


def test_sibling_figure_for_newer_sonnet():
    match = resolve_model("claude-sonnet-4-5-20250929")
    assert match.id == "claude-sonnet-4"
    assert "figure_from_sibling" in match.flags


@pytest.mark.parametrize(
    "model_id", ["totally-unknown", "", "   ", None, "arn:aws:bedrock:us-east-1:1:provisioned-model/x1"]
)
def test_unknown_ids_are_flagged_not_raised(model_id):
    match = resolve_model(model_id)
    assert match.kind == "unknown"
    assert match.flags and match.flags[0] in ("model_unknown", "model_missing")


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_string_resolves_without_raising(model_id):
    resolve_model(model_id)


def test_user_aliases_and_custom_models():
    cfg = parse_config(
        {
            "aliases": {"prod-gpt4o-eastus": "gpt-4o"},
            "models": {
                "acme-llm": {"wh_per_token": 0.0005, "aliases": ["acme-llm-v2"], "source": "bench 2026"},
                "acme-small": {"params_b": 3},
            },
        },
        "test",
    )
    assert resolve_model("prod-gpt4o-eastus", cfg).id == "gpt-4o"
    assert resolve_model("acme-llm-v2", cfg).custom_wh_per_token == 0.0005
    assert resolve_model("acme-small", cfg).size_class == "nano"


def test_every_alias_is_unique_in_canonical_form():
    from tailpipe_ai.carbon import load_datasets

    seen = {}
    for entry in load_datasets().models.values():
        for name in (entry.id, *entry.aliases):
            key = canonical(name)
            assert seen.setdefault(key, entry.id) == entry.id, f"{name} is claimed by {seen[key]} and {entry.id}"


def test_params_from_id():
    assert params_from_id("qwen2.5-7b-instruct") == 7
    assert params_from_id("mixtral-8x7b") == 56
    assert params_from_id("qwen3-30b-a3b") == 30
    assert params_from_id("gpt-4o") is None
