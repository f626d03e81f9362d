# Included by bench/CMakeLists.txt. model_bench: XGBoost's own predict vs the flat forest.
apx_add_benchmark(model_bench.cc DEPS apx_model)
