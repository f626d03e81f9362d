#!/usr/bin/env bash
# Fetches the 3,000,000-row US flights table (npm vega-datasets@3.2.1, data/flights-3m.parquet),
# checks its sha256, and converts it once to data/flights.csv. Idempotent: does nothing when
# data/flights.csv already exists.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=data/flights.csv
TARBALL_SHA=6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3
PARQUET_SHA=dbeb920c90f59b6ccaff823dcc3d08f25a97fa1ce128d93f40be4e931f5900b0

if [ -s "$OUT" ]; then
  echo "fetch-data: $OUT already present"
  exit 0
fi
mkdir -p data/.cache
cd data/.cache
if [ ! -s vega-datasets-3.2.1.tgz ]; then
  echo "fetch-data: downloading vega-datasets@3.2.1 (17.6 MB) through npm"
  npm pack --silent vega-datasets@3.2.1 >/dev/null
fi
echo "$TARBALL_SHA  vega-datasets-3.2.1.tgz" | sha256sum --check --quiet
tar xzf vega-datasets-3.2.1.tgz package/data/flights-3m.parquet
echo "$PARQUET_SHA  package/data/flights-3m.parquet" | sha256sum --check --quiet
cd ../..

if [ ! -d scripts/parquet2csv/node_modules/hyparquet ]; then
  echo "fetch-data: installing the Parquet reader (hyparquet) through npm"
  (cd scripts/parquet2csv && npm install --silent --no-audit --no-fund)
fi
node scripts/parquet2csv/convert.mjs data/.cache/package/data/flights-3m.parquet "$OUT"
