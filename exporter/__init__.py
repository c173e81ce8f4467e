"""Record encoding and signing, sinks (local lake, Firehose), the disk spool and the OTLP gateway."""
