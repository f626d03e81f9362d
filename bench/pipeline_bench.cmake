# Included by bench/CMakeLists.txt. pipeline_bench: per-round overhead and scans on the shipped
# flight pipelines (needs scripts/fetch-data.sh and trained models; skips otherwise).
apx_add_benchmark(pipeline_bench.cc DEPS apx_eval apx_pipeline apx_planner)
