#!/bin/sh
# A local S3 endpoint (moto's standalone server) with the topology's bucket in it.
set -e
python -m moto.server -H 127.0.0.1 -p "$GEOBATCH_S3_PORT" &
server=$!
trap 'kill $server' INT TERM
until python -c "import httpx, os; httpx.put(os.environ['AWS_ENDPOINT_URL'] + '/geobatch').raise_for_status()" 2>/dev/null; do
  sleep 0.2
done
wait $server
