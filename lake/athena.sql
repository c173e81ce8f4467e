-- Athena DDL for a tailpipe-ai lake in S3 (schema tailpipe.record/1). See docs/lake.md.
--
-- Replace s3://BUCKET/PREFIX with your lake (the Firehose destination bucket and prefix), and pick a
-- database (CREATE DATABASE tailpipe;). Three tables:
--   ai_telemetry_raw      the Firehose-written raw objects, partitioned by ARRIVAL day (year/month/day),
--                         with partition projection (no crawler, no MSCK REPAIR); may hold duplicates
--   ai_telemetry          the compacted files, one per RECORD day, de-duplicated (the source of truth)
--   ai_telemetry_report   the narrow Parquet companions of the compacted files (fast, report columns only)
-- Column names and types follow semconv/record.schema.json (a test checks they match).

CREATE EXTERNAL TABLE IF NOT EXISTS ai_telemetry_raw (
  `schema` string,
  record_id string,
  `timestamp` string,
  integration string,
  provider string,
  request_model string,
  response_model string,
  operation string,
  output_type string,
  input_tokens bigint,
  output_tokens bigint,
  cache_read_tokens bigint,
  cache_write_tokens bigint,
  reasoning_tokens bigint,
  images bigint,
  image_size string,
  image_quality string,
  video_seconds double,
  video_resolution string,
  latency_ms double,
  ttft_ms double,
  streamed boolean,
  status string,
  error_type string,
  token_accuracy string,
  region string,
  environment map<string,string>,
  attributes map<string,string>,
  trace_id string,
  span_id string,
  energy_wh double,
  energy_wh_min double,
  energy_wh_max double,
  carbon_gco2e double,
  carbon_gco2e_min double,
  carbon_gco2e_max double,
  cost_usd double,
  factors string,
  flags array<string>,
  signature struct<alg:string,key_id:string,value:string>
)
PARTITIONED BY (year int, month int, day int)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION 's3://BUCKET/PREFIX/ai-telemetry-raw/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'integer',
  'projection.year.range' = '2024,2100',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer',
  'projection.day.range' = '1,31',
  'projection.day.digits' = '2',
  'storage.location.template' = 's3://BUCKET/PREFIX/ai-telemetry-raw/year=${year}/month=${month}/day=${day}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS ai_telemetry (
  `schema` string,
  record_id string,
  `timestamp` string,
  integration string,
  provider string,
  request_model string,
  response_model string,
  operation string,
  output_type string,
  input_tokens bigint,
  output_tokens bigint,
  cache_read_tokens bigint,
  cache_write_tokens bigint,
  reasoning_tokens bigint,
  images bigint,
  image_size string,
  image_quality string,
  video_seconds double,
  video_resolution string,
  latency_ms double,
  ttft_ms double,
  streamed boolean,
  status string,
  error_type string,
  token_accuracy string,
  region string,
  environment map<string,string>,
  attributes map<string,string>,
  trace_id string,
  span_id string,
  energy_wh double,
  energy_wh_min double,
  energy_wh_max double,
  carbon_gco2e double,
  carbon_gco2e_min double,
  carbon_gco2e_max double,
  cost_usd double,
  factors string,
  flags array<string>,
  signature struct<alg:string,key_id:string,value:string>
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION 's3://BUCKET/PREFIX/ai-telemetry/';

CREATE EXTERNAL TABLE IF NOT EXISTS ai_telemetry_report (
  record_id string,
  `timestamp` string,
  provider string,
  request_model string,
  response_model string,
  integration string,
  region string,
  operation string,
  input_tokens bigint,
  output_tokens bigint,
  energy_wh double,
  carbon_gco2e double,
  cost_usd double,
  attributes map<string,string>
)
STORED AS PARQUET
LOCATION 's3://BUCKET/PREFIX/ai-telemetry-parquet/';

-- Example queries ------------------------------------------------------------------------------------

-- kgCO2e, kWh and requests by model and day (compacted days).
SELECT substr("timestamp", 1, 10) AS day,
       coalesce(response_model, request_model) AS model,
       count(*) AS requests,
       sum(energy_wh) / 1000 AS kwh,
       sum(carbon_gco2e) / 1000 AS kgco2e
FROM ai_telemetry
GROUP BY 1, 2
ORDER BY 1, 2;

-- kgCO2e and cost by team over a month (the Parquet companions: reads a few columns only).
SELECT element_at(attributes, 'team') AS team,
       sum(carbon_gco2e) / 1000 AS kgco2e,
       sum(cost_usd) AS cost_usd
FROM ai_telemetry_report
WHERE "timestamp" >= '2026-11-01' AND "timestamp" < '2026-12-01'
GROUP BY 1
ORDER BY kgco2e DESC;

-- Today's raw records, not yet compacted: partitions by arrival day, de-duplicated by record_id.
SELECT coalesce(response_model, request_model) AS model,
       count(*) AS requests,
       sum(carbon_gco2e) / 1000 AS kgco2e
FROM (
  SELECT *, row_number() OVER (PARTITION BY record_id ORDER BY "$path") AS copy
  FROM ai_telemetry_raw
  WHERE year = 2026 AND month = 11 AND day BETWEEN 21 AND 23
    AND substr("timestamp", 1, 10) = '2026-11-22'
)
WHERE copy = 1
GROUP BY 1;
