"""`providers.bedrock` on the JSON shapes AWS documents (the instrumentation tests cover them through
boto3; these pin the edge cases: malformed values, header forms, every family's body, media requests),
and the model-id forms of Bedrock the carbon resolver must understand."""

from __future__ import annotations

import json

import pytest

from tailpipe_ai.carbon import resolve_model
from tailpipe_ai.providers import bedrock as p


def test_converse_usage_adds_cache_to_input():
    info = p.parse_converse(
        {"usage": {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 10, "cacheWriteInputTokens": 20}}
    )
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens, info.cache_write_tokens) == (33, 4, 10, 20)
    assert p.parse_converse({"stopReason": "guardrail_intervened"}).finish_reasons == ("content_filter",)
    assert p.parse_converse({"stopReason": "something_new"}).finish_reasons == ("something_new",)


def test_malformed_usage_values_are_dropped():
    info = p.parse_converse({"usage": {"inputTokens": "3", "outputTokens": -4, "cacheReadInputTokens": [1]}})
    assert not info.has_usage and info.cache_read_tokens is None
    assert not p.parse_converse({"usage": "lots"}).has_usage
    assert not p.parse_converse(None).has_usage


def test_converse_stream_events():
    parse = p.ConverseStreamParser()
    assert parse({"contentBlockDelta": {"delta": {"text": "secret"}}}) is None
    assert parse({"messageStop": {"stopReason": "max_tokens"}}).finish_reasons == ("length",)
    info = parse({"metadata": {"usage": {"inputTokens": 1, "outputTokens": 2}}})
    assert (info.input_tokens, info.output_tokens) == (1, 2)
    assert parse("not an event") is None


def test_headers_any_case_and_malformed():
    info = p.parse_headers(
        {
            "X-Amzn-Bedrock-Input-Token-Count": "5",
            "x-amzn-bedrock-output-token-count": " 7 ",
            "x-amzn-bedrock-cache-read-input-token-count": "100",
            "x-amzn-bedrock-cache-write-input-token-count": "nope",
        }
    )
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens, info.cache_write_tokens) == (
        105,
        7,
        100,
        None,
    )
    assert not p.parse_headers({"x-amzn-bedrock-input-token-count": "-1"}).has_usage
    assert not p.parse_headers(None).has_usage


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "message", "usage": {"input_tokens": 5, "output_tokens": 6}, "stop_reason": "end_turn"}, (5, 6)),
        ({"choices": [{"finish_reason": "stop"}], "usage": {"prompt_tokens": 8, "completion_tokens": 9}}, (8, 9)),
        ({"usage": {"inputTokens": 2, "outputTokens": 3, "cacheWriteInputTokenCount": 40}}, (42, 3)),
        ({"prompt_token_count": 11, "generation_token_count": 12, "stop_reason": "length"}, (11, 12)),
        ({"inputTextTokenCount": 4, "results": [{"tokenCount": 2}, {"tokenCount": 3}]}, (4, 5)),
        (
            {
                "response_id": "r",
                "text": "x",
                "finish_reason": "COMPLETE",
                "meta": {"billed_units": {"input_tokens": 7, "output_tokens": 1}},
            },
            (7, 1),
        ),
        (
            {"completion": "x", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 1, "outputTokenCount": 2}},
            (1, 2),
        ),
    ],
)
def test_invoke_bodies_by_shape(body, expected):
    info = p.parse_invoke(body, {"x-amzn-bedrock-input-token-count": "999"})  # the body's usage wins
    assert (info.input_tokens, info.output_tokens) == expected


def test_invoke_headers_fill_bodies_without_usage():
    headers = {"x-amzn-bedrock-input-token-count": "17", "x-amzn-bedrock-output-token-count": "23"}
    info = p.parse_invoke({"outputs": [{"text": "x", "stop_reason": "stop"}]}, headers)
    assert (info.input_tokens, info.output_tokens, info.finish_reasons) == (17, 23, ("stop",))
    info = p.parse_invoke(None, headers)  # body not read (too large) or not JSON
    assert (info.input_tokens, info.output_tokens) == (17, 23)


def test_invoke_stream_parser_reads_only_usage_bearing_chunks():
    parse = p.InvokeStreamParser()
    assert parse(json.dumps({"generation": "secret", "stop_reason": None}).encode()) is None
    assert parse(b"not json but has invocationMetrics") is None
    last = {
        "generation": "",
        "stop_reason": "stop",
        p.INVOCATION_METRICS: {"inputTokenCount": 3, "outputTokenCount": 4},
    }
    info = parse(json.dumps(last).encode())
    assert (info.input_tokens, info.output_tokens, info.finish_reasons) == (3, 4, ("stop",))


def test_invoke_stream_nova_usage_beats_metrics():
    parse = p.InvokeStreamParser()
    assert parse(json.dumps({"messageStop": {"stopReason": "end_turn"}}).encode()).finish_reasons == ("stop",)
    chunk = {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 2, "cacheReadInputTokenCount": 5}}}
    chunk[p.INVOCATION_METRICS] = {"inputTokenCount": 1, "outputTokenCount": 2}
    info = parse(json.dumps(chunk).encode())
    assert (info.input_tokens, info.cache_read_tokens) == (6, 5)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"imageGenerationConfig": {"numberOfImages": 4, "width": 512, "height": 512, "quality": "premium"}},
            (4, "512x512", "premium"),
        ),
        ({"imageGenerationConfig": {}}, (1, None, None)),
        ({"text_prompts": [{"text": "x"}], "width": 1024, "height": 1024}, (1, "1024x1024", None)),
        ({"prompt": "x"}, (1, "1024x1024", None)),
        ({"prompt": "x", "aspect_ratio": "16:9"}, (1, None, None)),
        (None, (None, None, None)),
    ],
)
def test_image_requests(body, expected):
    req = p.image_request(body)
    assert (req.images, req.image_size, req.image_quality) == expected


@pytest.mark.parametrize(
    ("model_input", "expected"),
    [
        ({"videoGenerationConfig": {"durationSeconds": 12, "dimension": "1280x720"}}, (12.0, "1280x720")),
        (
            {"multiShotManualParams": {"shots": [{}, {}, {}]}, "videoGenerationConfig": {"dimension": "1280x720"}},
            (18.0, "1280x720"),
        ),
        ({"prompt": "x", "duration": "9s", "resolution": "540p"}, (9.0, "540p")),
        ({"prompt": "x"}, (None, None)),
    ],
)
def test_video_requests(model_input, expected):
    req = p.video_request(model_input)
    assert (req.video_seconds, req.video_resolution) == expected


@pytest.mark.parametrize(
    ("model_id", "kind"),
    [
        ("amazon.titan-image-generator-v2:0", "image"),
        ("amazon.nova-canvas-v1:0", "image"),
        ("stability.sd3-5-large-v1:0", "image"),
        ("amazon.nova-reel-v1:1", "video"),
        ("luma.ray-v2:0", "video"),
        ("cohere.embed-english-v3", "embeddings"),
        ("us.meta.llama3-2-11b-instruct-v1:0", "text_completion"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "chat"),
        ("arn:aws:bedrock:us-east-1:1:provisioned-model/x", "chat"),
        (None, "chat"),
    ],
)
def test_model_kind(model_id, kind):
    assert p.model_kind(model_id) == kind


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("deepseek.r1-v1:0", "deepseek-r1"),  # the vendor prefix is part of the name
        ("us.deepseek.r1-v1:0", "deepseek-r1"),
        # a custom (fine-tuned) model's ARN names its base model
        (
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/meta.llama3-1-70b-instruct-v1:0:128k/2ghn9ti3",
            "llama-3.1-70b",
        ),
        (
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.meta.llama3-2-11b-instruct-v1:0",
            "llama-3.2-11b-vision",
        ),
    ],
)
def test_bedrock_ids_resolve(model_id, expected):
    assert resolve_model(model_id).id == expected


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
    ],
)
def test_opaque_arns_are_unknown_not_errors(model_id):
    """Provisioned models and application inference profiles name no model: flagged (a user alias in the
    config maps them, docs/bedrock.md)."""
    assert resolve_model(model_id).flags == ("model_unknown",)
