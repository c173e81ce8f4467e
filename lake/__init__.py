"""The telemetry lake: partition layout, daily compaction, DuckDB queries and Athena DDL."""
