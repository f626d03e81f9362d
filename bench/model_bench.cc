// bench/model_bench.cc
//
// The model hot path: one QMC round predicts 896 rows (= 128 x (5 + 2), the batch of a 5-query
// pipeline) or 1280 rows with a 100-tree, depth-6 model on 8 features. Compares XGBoost 1.7's
// own predict (XGBoosterPredictFromDense, one thread) with the compiled flat forest kernels.
// The counter ns_per_row_tree = time / (rows x trees) (CPU time; wall time for the thread
// comparison); DESIGN.md section 8 quotes ~11.5 ns for XGBoost and ~4.4 ns for a blocked flat
// evaluator on this kind of machine. On a shared machine, compare numbers from one run.
// BM_MlpPredict: an 8-100-100-1 MLP (the Bearing-Imbalance shape) on 1,024 rows; its counter
// is ns_per_row.
//
//   build-model/bench/model_bench --benchmark_filter=896
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/flat_forest.h"
#include "model/loader.h"
#include "model/mlp.h"
#include "model/xgboost_model.h"

namespace apx::model {
namespace {

constexpr size_t kFeatures = 8;
constexpr int kTrees = 100;
constexpr int kDepth = 6;

std::vector<float> Rows(size_t n_rows, uint64_t seed, double nan_fraction) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
  std::uniform_real_distribution<double> coin;
  std::vector<float> rows(n_rows * kFeatures);
  for (float& x : rows) x = coin(rng) < nan_fraction ? std::nanf("") : uniform(rng);
  return rows;
}

void Die(const Status& status) {
  std::fprintf(stderr, "model_bench: %s\n", status.ToString().c_str());
  std::exit(1);
}

// The benchmark model, trained once: regression on a noisy nonlinear target, so that trees
// grow to full depth.
struct Fixture {
  std::unique_ptr<XGBoostModel> xgboost;
  std::string json;

  static Fixture& Get() {
    static Fixture* fixture = [] {
      auto* f = new Fixture;
      const size_t n_rows = 20000;
      const std::vector<float> X = Rows(n_rows, 1, 0.0);
      std::vector<float> y(n_rows);
      std::mt19937_64 rng(2);
      std::normal_distribution<float> noise;
      for (size_t i = 0; i < n_rows; ++i) {
        const float* x = &X[i * kFeatures];
        y[i] = x[0] * x[1] + std::sin(x[2]) * 3 + x[3] * x[3] - x[4] + 0.5f * x[5] * x[6] + x[7] +
               noise(rng);
      }
      TrainOptions options{.task = Task::kRegression,
                           .num_trees = kTrees,
                           .max_depth = kDepth,
                           .eta = 0.1,
                           .nthread = 2,
                           .seed = 3};
      auto model = TrainXGBoost(X, n_rows, kFeatures, y, options);
      if (!model.ok()) Die(model.status());
      f->xgboost = std::move(model).value();
      if (Status s = f->xgboost->SetNumThreads(1); !s.ok()) Die(s);
      auto json = f->xgboost->ToJson();
      if (!json.ok()) Die(json.status());
      f->json = std::move(json).value();
      return f;
    }();
    return *fixture;
  }
};

void Report(benchmark::State& state, size_t n_rows) {
  state.counters["ns_per_row_tree"] = benchmark::Counter(
      static_cast<double>(n_rows) * kTrees,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void Run(benchmark::State& state, const Model& model, double nan_fraction) {
  const size_t n_rows = static_cast<size_t>(state.range(0));
  const std::vector<float> rows = Rows(n_rows, 11, nan_fraction);
  std::vector<float> out(n_rows);
  for (auto _ : state) {
    if (Status s = model.Predict(rows, n_rows, out); !s.ok()) Die(s);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  Report(state, n_rows);
}

void BM_XGBoostPredict(benchmark::State& state) { Run(state, *Fixture::Get().xgboost, 0.0); }

template <ForestKernel kKernel>
void BM_FlatForest(benchmark::State& state) {
  if (kKernel == ForestKernel::kCompleteAvx512 && !CpuHasAvx512()) {
    state.SkipWithError("no AVX-512");
    return;
  }
  auto model = CompileFlatForest(Fixture::Get().json, Task::kRegression, {.kernel = kKernel});
  if (!model.ok()) Die(model.status());
  Run(state, **model, 0.0);
}

// The default kernel on one thread vs shared with the helper thread from the first block
// (min_parallel_work 0); wall time, since two threads work.
template <int kThreads>
void BM_FlatForestThreads(benchmark::State& state) {
  auto model = CompileFlatForest(Fixture::Get().json, Task::kRegression,
                                 {.num_threads = kThreads, .min_parallel_work = 0});
  if (!model.ok()) Die(model.status());
  Run(state, **model, 0.0);
}

// Rows with 10% missing values take the kernels' has-missing path.
void BM_FlatForestWithMissing(benchmark::State& state) {
  auto model = CompileFlatForest(Fixture::Get().json, Task::kRegression);
  if (!model.ok()) Die(model.status());
  Run(state, **model, 0.1);
}

// An 8-100-100-1 MLP (weights from two epochs on the benchmark's regression data; the cost of
// Predict does not depend on the weights), on rows with and without missing values.
void BM_MlpPredict(benchmark::State& state) {
  static const std::string json = [] {
    const size_t n_rows = 2000;
    const std::vector<float> X = Rows(n_rows, 1, 0.0);
    std::vector<float> y(n_rows);
    for (size_t i = 0; i < n_rows; ++i) y[i] = X[i * kFeatures] * X[i * kFeatures + 1];
    MlpOptions options;
    options.max_epochs = 2;
    auto trained = TrainMlp(X, n_rows, kFeatures, y, Task::kRegression, options);
    if (!trained.ok()) Die(trained.status());
    return std::move(trained).value();
  }();
  auto model = CompileModel(json, Task::kRegression);
  if (!model.ok()) Die(model.status());
  Run(state, **model, state.range(1) / 100.0);
  state.counters.erase("ns_per_row_tree");  // set by Run; not meaningful here
  state.counters["ns_per_row"] = benchmark::Counter(
      static_cast<double>(state.range(0)),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// 896 = 128 x (5 + 2), the QMC batch of a 5-query pipeline; 1280 = 128 x 10.
#define APX_ROWS Arg(896)->Arg(1280)
BENCHMARK(BM_XGBoostPredict)->APX_ROWS;
BENCHMARK(BM_FlatForest<ForestKernel::kGeneral>)->APX_ROWS;
BENCHMARK(BM_FlatForest<ForestKernel::kComplete>)->APX_ROWS;
BENCHMARK(BM_FlatForest<ForestKernel::kCompleteAvx512>)->APX_ROWS;
BENCHMARK(BM_FlatForestThreads<1>)->APX_ROWS->Arg(3000)->UseRealTime();
BENCHMARK(BM_FlatForestThreads<2>)->APX_ROWS->Arg(3000)->UseRealTime();
BENCHMARK(BM_FlatForestWithMissing)->APX_ROWS;
// Args: rows, percent of missing values.
BENCHMARK(BM_MlpPredict)->Args({1024, 0})->Args({1024, 10})->Args({1, 0});

}  // namespace
}  // namespace apx::model

BENCHMARK_MAIN();
