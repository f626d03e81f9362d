apx_add_benchmark(uq_bench.cc DEPS apx_uq)
