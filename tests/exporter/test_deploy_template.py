"""Static checks of deploy/aws/tailpipe-lake.yaml (CloudFormation): Firehose settings, buckets, least privilege.

There is no AWS here, so the template is checked as data: loaded with a loader that understands the short
intrinsic tags (!Sub, !Ref, !GetAtt, ...), then held to the facts in /work/shared/reference/pipeline.md
and to the lake layout the code uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tailpipe_ai.exporter.firehose import MAX_BATCH_RECORDS
from tailpipe_ai.exporter.residency import GROUPS, is_aws_region, region_allowed
from tailpipe_ai.lake.layout import COMPACT_PREFIX, ERRORS_PREFIX, RAW_PREFIX

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "tailpipe-lake.yaml"
PSEUDO = {"AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix", "AWS::NoValue"}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short tags, each turned into its long {"Fn::X": ...} form."""


def _intrinsic(name: str):
    def construct(loader: yaml.Loader, node: yaml.Node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"Ref": value} if name == "Ref" else {f"Fn::{name}": value}

    return construct


for _tag in (
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "And",
    "Or",
    "Not",
    "Contains",
    "FindInMap",
    "ImportValue",
    "Base64",
    "GetAZs",
    "Cidr",
):
    CfnLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def of_type(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_loader_refuses_unknown_python_tags():
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load("x: !!python/object/apply:os.system ['true']", Loader=CfnLoader)


def test_firehose_stream(template):
    (stream,) = of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamType"] == "DirectPut"
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["BufferingHints"] == {"IntervalInSeconds": 60, "SizeInMBs": 5}
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"] == f"{RAW_PREFIX}/year=!{{timestamp:yyyy}}/month=!{{timestamp:MM}}/day=!{{timestamp:dd}}/"
    err = s3["ErrorOutputPrefix"]
    assert err.startswith(f"{ERRORS_PREFIX}/") and "!{firehose:error-output-type}" in err  # mandatory with `!{`
    # `!{` only inside expressions, and only known namespaces
    for prefix in (s3["Prefix"], err):
        assert all(m in ("timestamp", "firehose") for m in re.findall(r"!\{(\w+):", prefix))
    assert s3["BucketARN"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
    assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] in ("AWS_OWNED_CMK", "CUSTOMER_MANAGED_CMK")
    assert MAX_BATCH_RECORDS == 500


def test_buckets_private_encrypted_with_lifecycle(template):
    buckets = of_type(template, "AWS::S3::Bucket")
    assert buckets
    for bucket in buckets.values():
        props = bucket["Properties"]
        block = props["PublicAccessBlockConfiguration"]
        assert all(
            block[k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        )
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        rules = {r.get("Prefix"): r for r in props["LifecycleConfiguration"]["Rules"]}
        assert rules[f"{RAW_PREFIX}/"]["ExpirationInDays"] == {"Ref": "RawRetentionDays"}
        assert f"{ERRORS_PREFIX}/" in rules and f"{COMPACT_PREFIX}/" in rules
        assert "ExpirationInDays" not in rules[f"{COMPACT_PREFIX}/"]  # compacted files are the record: kept
        assert bucket["DeletionPolicy"] == "Retain"
    assert template["Parameters"]["RawRetentionDays"]["MinValue"] >= 3  # compaction reads day-1..day+1


def iam_statements(template):
    """(where, statement) for every IAM statement in roles and managed policies (not bucket policies)."""
    for name, res in template["Resources"].items():
        props = res["Properties"]
        docs = []
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            docs.append(props["PolicyDocument"])
        elif res["Type"] == "AWS::IAM::Role":
            docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for doc in docs:
            for st in doc["Statement"]:
                yield name, st


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_every_iam_statement_names_specific_resources(template):
    statements = list(iam_statements(template))
    assert len(statements) >= 8
    for where, st in statements:
        assert st["Effect"] == "Allow", where
        actions = as_list(st["Action"])
        assert all("*" not in a for a in actions), f"{where}: wildcard action {actions}"
        resources = as_list(st["Resource"])
        for r in resources:
            assert r != "*" and r != "arn:aws:s3:::*", f"{where}: Resource '*' for {actions}"
            if isinstance(r, dict) and "Fn::Sub" in r:
                text = r["Fn::Sub"]
                if any(a.startswith("s3:") and a not in ("s3:ListBucket",) for a in actions):
                    # object actions: under one of our prefixes, never the whole bucket
                    assert re.search(r"/(ai-telemetry-raw|ai-telemetry|ai-telemetry-errors)/\*$", text), (where, text)


def test_producer_may_only_put_on_its_stream(template):
    producer = template["Resources"]["ProducerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert producer == [
        {
            "Sid": "PutTelemetryRecords",
            "Effect": "Allow",
            "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
            "Resource": {"Fn::GetAtt": ["DeliveryStream", "Arn"]},
        }
    ]
    for where, st in iam_statements(template):
        if any(a.startswith("firehose:") for a in as_list(st["Action"])):
            assert st["Resource"] == {"Fn::GetAtt": ["DeliveryStream", "Arn"]}, where


def test_delivery_role_writes_only_raw_and_errors(template):
    role = template["Resources"]["DeliveryRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert "sts:ExternalId" in trust["Condition"]["StringEquals"]  # confused-deputy guard
    writes = [st for _, st in iam_statements(template) if "s3:PutObject" in as_list(st["Action"])]
    by_policy = {}
    for where, st in iam_statements(template):
        if "s3:PutObject" in as_list(st["Action"]):
            by_policy[where] = sorted(r["Fn::Sub"].split("}/", 1)[1] for r in as_list(st["Resource"]))
    assert by_policy["DeliveryRole"] == [f"{ERRORS_PREFIX}/*", f"{RAW_PREFIX}/*"]
    assert by_policy["LakeCompactorPolicy"] == [f"{COMPACT_PREFIX}/*"]
    assert "LakeReaderPolicy" not in by_policy and writes


def test_residency_rule_matches_the_code(template):
    assert sorted(template["Parameters"]["Residency"]["AllowedValues"]) == sorted(GROUPS)
    branches = template["Rules"]["RegionInsideResidency"]["Assertions"][0]["Assert"]["Fn::Or"]
    seen = set()
    for branch in branches:
        equals, contains = branch["Fn::And"]
        residency = equals["Fn::Equals"][1]
        regions, ref = contains["Fn::Contains"]
        assert ref == {"Ref": "AWS::Region"}
        for region in regions:
            assert is_aws_region(region) and region_allowed(region, residency), (residency, region)
        assert not any(region_allowed(r, other) for r in regions for other in GROUPS if other != residency)
        seen.add(residency)
    assert seen == set(GROUPS)


def test_references_resolve(template):
    names = set(template["Resources"]) | set(template["Parameters"]) | PSEUDO
    for node in walk(template):
        if isinstance(node, dict) and "Ref" in node:
            assert node["Ref"] in names, node
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            assert node["Fn::GetAtt"][0] in template["Resources"], node
        if isinstance(node, dict) and "Fn::Sub" in node:
            for var in re.findall(r"\$\{([^}!]+)\}", node["Fn::Sub"]):
                assert var.split(".")[0] in names, var
