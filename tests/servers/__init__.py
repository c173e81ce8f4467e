"""Real servers started on loopback for end-to-end tests (S3, Firehose)."""
