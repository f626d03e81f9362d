// bench/agg_bench.cc: Aggregator hot paths.
//   BM_Update/<op>: Update throughput over 1M contiguous doubles (items/s = rows/s).
//   BM_QuantileFinalize/<n>: Finalize(p) of a 0.9-quantile over n sampled values (copy +
//   three selections).
//   BM_QuantileFinalizeTies/<n>: the same on Poisson counts (ties; the interval collapses).
//   BM_NthElement/<n>, BM_SelectNth/<n>: one selection (copy included), std vs agg/select.h.
//   BM_CountDistinctFinalize/<n>: Reset + Update + Finalize(p) of count_distinct (full sort).
//   BM_CountDistinctRound/<n>: one growth round of 5% new rows after a Finalize at n.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <span>
#include <vector>

#include "agg/aggregate.h"
#include "agg/select.h"

namespace apx::agg {
namespace {

std::vector<double> RandomRows(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(100.0, 15.0);
  std::vector<double> rows(size);
  for (double& x : rows) x = dist(rng);
  return rows;
}

void BM_Update(benchmark::State& state, AggOp op) {
  constexpr size_t kRows = 1 << 20;
  const std::vector<double> rows = RandomRows(kRows, 1);
  Aggregator agg(op);
  for (auto _ : state) {
    agg.Reset();
    agg.Update(rows);
    benchmark::DoNotOptimize(agg.Finalize(0.5));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRows);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRows * sizeof(double));
}
BENCHMARK_CAPTURE(BM_Update, count, AggOp::kCount);
BENCHMARK_CAPTURE(BM_Update, sum, AggOp::kSum);
BENCHMARK_CAPTURE(BM_Update, avg, AggOp::kAvg);
BENCHMARK_CAPTURE(BM_Update, var, AggOp::kVar);
BENCHMARK_CAPTURE(BM_Update, std, AggOp::kStd);
BENCHMARK_CAPTURE(BM_Update, max, AggOp::kMax);
BENCHMARK_CAPTURE(BM_Update, min, AggOp::kMin);

// The quantile and count_distinct benchmarks rotate over kDataSets aggregators holding
// different data: repeating one input lets the branch predictor learn its partition pattern and
// makes selection look ~10× faster than it is on fresh data.
constexpr int kDataSets = 8;

// Finalize(0.1) of a `level`-quantile on freshly fed values, rotating over the inputs. Feeding
// is not timed; it must happen every iteration because an aggregator remembers its selection
// until its values change (a second Finalize on the same values is a cache hit).
void FinalizeFresh(benchmark::State& state, const std::vector<std::vector<double>>& inputs,
                   double level) {
  Aggregator agg(AggOp::kQuantile, level);
  size_t set_idx = 0;
  for (auto _ : state) {
    state.PauseTiming();
    agg.Reset();
    agg.Update(inputs[set_idx]);
    state.ResumeTiming();
    benchmark::DoNotOptimize(agg.Finalize(0.1));
    set_idx = (set_idx + 1) % inputs.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_QuantileFinalize(benchmark::State& state) {
  std::vector<std::vector<double>> inputs;
  for (int set_idx = 0; set_idx < kDataSets; ++set_idx) {
    inputs.push_back(RandomRows(static_cast<size_t>(state.range(0)), 10 + set_idx));
  }
  FinalizeFresh(state, inputs, 0.9);
}
BENCHMARK(BM_QuantileFinalize)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// The same on discrete data with heavy ties (Poisson counts, a dozen distinct values): the
// 95 % interval collapses onto the estimate's value, so the estimator widens it and scans.
void BM_QuantileFinalizeTies(benchmark::State& state) {
  std::vector<std::vector<double>> inputs;
  for (int set_idx = 0; set_idx < kDataSets; ++set_idx) {
    std::mt19937_64 rng(30 + set_idx);
    std::poisson_distribution<int> dist(3.0);
    std::vector<double> rows(static_cast<size_t>(state.range(0)));
    for (double& x : rows) x = dist(rng);
    inputs.push_back(std::move(rows));
  }
  FinalizeFresh(state, inputs, 0.5);
}
BENCHMARK(BM_QuantileFinalizeTies)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// Selection alone on a fresh copy: SelectNth (agg/select.h) against std::nth_element.
template <bool kStd>
void BM_Select(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<std::vector<double>> inputs;
  for (int set_idx = 0; set_idx < kDataSets; ++set_idx) {
    inputs.push_back(RandomRows(size, 20 + set_idx));
  }
  std::vector<double> scratch(size);
  const size_t k = size * 9 / 10;
  int set_idx = 0;
  for (auto _ : state) {
    std::copy(inputs[set_idx].begin(), inputs[set_idx].end(), scratch.begin());
    if constexpr (kStd) {
      std::nth_element(scratch.begin(), scratch.begin() + k, scratch.end());
    } else {
      SelectNth(scratch.data(), size, k);
    }
    benchmark::DoNotOptimize(scratch[k]);
    set_idx = (set_idx + 1) % kDataSets;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK_TEMPLATE(BM_Select, true)
    ->Name("BM_NthElement")
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_Select, false)
    ->Name("BM_SelectNth")
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMicrosecond);

// count_distinct, first Finalize of a sample (full sort) ...
void BM_CountDistinctFinalize(benchmark::State& state) {
  const std::vector<double> rows = RandomRows(static_cast<size_t>(state.range(0)), 3);
  Aggregator agg(AggOp::kCountDistinct);
  for (auto _ : state) {
    agg.Reset();
    agg.Update(rows);
    benchmark::DoNotOptimize(agg.Finalize(0.1));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_CountDistinctFinalize)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// ... and a growth round: 5% new rows on top of n already finalized (incremental sort + merge).
void BM_CountDistinctRound(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::vector<double> rows = RandomRows(size + size / 20, 4);
  const std::span<const double> all(rows);
  Aggregator agg(AggOp::kCountDistinct);
  for (auto _ : state) {
    state.PauseTiming();
    agg.Reset();
    agg.Update(all.first(size));
    benchmark::DoNotOptimize(agg.Finalize(0.1));
    state.ResumeTiming();
    agg.Update(all.subspan(size));
    benchmark::DoNotOptimize(agg.Finalize(0.1));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_CountDistinctRound)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace apx::agg

BENCHMARK_MAIN();
