#!/bin/sh
# Lambda Web Adapter entry (Handler: run.sh): the proxy as a local web server on $PORT; the adapter
# streams its responses to the Function URL. TAILPIPE_PROXY_LAMBDA=1 writes each record and flushes
# the sink before a response ends (Lambda freezes the sandbox afterwards).
export PYTHONPATH="${LAMBDA_TASK_ROOT:-.}:${PYTHONPATH}"
export TAILPIPE_PROXY_LAMBDA=1
exec python3 -m tailpipe_ai proxy --host 127.0.0.1 --port "${PORT:-8000}"
