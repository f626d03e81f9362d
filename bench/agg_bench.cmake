apx_add_benchmark(agg_bench.cc DEPS apx_agg)
