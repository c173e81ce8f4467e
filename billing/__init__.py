"""Readers for billing files: AWS Bedrock Cost and Usage Reports and Azure cost exports."""
