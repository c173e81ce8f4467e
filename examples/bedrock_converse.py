"""Amazon Bedrock with boto3: wrap one bedrock-runtime client; use it as normal.

    python examples/bedrock_converse.py

With AWS credentials configured (environment, profile, SSO, instance role) it calls Bedrock for real in
AWS_REGION (default eu-west-1). Without credentials it answers from botocore's Stubber with a response
shaped like Bedrock's (usage included), so it runs with no account and no network.
BEDROCK_ENDPOINT_URL points the client at another endpoint (a VPC endpoint, or the tests' fake server).

The record (metadata only: model, tokens, region, energy, carbon; never the prompt or the answer) lands in
./tailpipe-lake (or TAILPIPE_LAKE). The client's region sets the PUE and grid intensity used.
"""

from __future__ import annotations

import os

import boto3

from tailpipe_ai import TailpipeAI

MODEL = "eu.anthropic.claude-sonnet-4-20250514-v1:0"  # a cross-region inference profile


def make_client():
    region = os.environ.get("AWS_REGION", "eu-west-1")
    endpoint = os.environ.get("BEDROCK_ENDPOINT_URL")
    client = boto3.client("bedrock-runtime", region_name=region, endpoint_url=endpoint)
    if endpoint or boto3.Session().get_credentials() is not None:
        return client, None
    from botocore.stub import ANY, Stubber

    stub = Stubber(client)
    stub.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello from the stub."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 24, "outputTokens": 180, "totalTokens": 204},
            "metrics": {"latencyMs": 900},
        },
        {"modelId": MODEL, "messages": ANY, "inferenceConfig": ANY},
    )
    stub.activate()
    return client, stub


def main() -> None:
    tailpipe = TailpipeAI()  # api_key="tp_..." or TAILPIPE_API_KEY when sending to a tailpipe gateway
    client, _stub = make_client()
    client = tailpipe.wrap(client)
    with tailpipe.tags(team="support", feature="triage"):
        response = client.converse(
            modelId=MODEL,
            messages=[{"role": "user", "content": [{"text": "Summarise our returns policy in one line."}]}],
            inferenceConfig={"maxTokens": 200},
        )
    usage = response["usage"]
    print(f"tokens: {usage['inputTokens']} in / {usage['outputTokens']} out, region {client.meta.region_name}")
    tailpipe.flush()


if __name__ == "__main__":
    main()
