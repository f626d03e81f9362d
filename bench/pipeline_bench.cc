// Benchmarks on the shipped flight pipelines (run from the repository root, after
// scripts/fetch-data.sh and `apxserve train` for both pipelines):
//
//   BM_RoundOverhead/<pipeline>: one approximate round without data access — propagation
//     (design mapping, one batched predict of N·(G+2) rows with the pipeline's 100-tree model,
//     ŷ / confidence / S1) plus the jump planner. Feature distributions come from real test
//     requests: exact values with a standard error of 5 % of |value| (+0.1) on every
//     aggregation feature, about what round 0 sees. DESIGN §9 budget: <= 0.5 ms.
//   BM_RoundOverheadTwoStage/<pipeline>: the same when the A/B rows already reach τ (the
//     final round of a request): 2N rows.
//   BM_ScanAvg: the exact path's scan: avg over every row of a network-wide 30-day window
//     (~500,000 contiguous doubles in 100 strata), reported as rows/s.
//   BM_Request{Exact,Approx}/<pipeline>: whole requests, cycling over 200 test requests.
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/requests.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "planner/planner.h"

namespace apx {
namespace {

struct Loaded {
  std::unique_ptr<pipeline::Pipeline> pipeline;
  std::vector<pipeline::Request> requests;
  std::string error;
};

Loaded& Load(const std::string& spec_path) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(spec_path);
  if (it != cache.end()) return it->second;
  Loaded& l = cache[spec_path];
  auto spec = pipeline::LoadSpec(spec_path);
  if (!spec.ok()) {
    l.error = spec.status().ToString();
    return l;
  }
  auto p = pipeline::Pipeline::Open(*spec);
  if (!p.ok()) {
    l.error = p.status().ToString();
    return l;
  }
  l.pipeline = std::move(*p);
  pipeline::RequestSetSpec set = spec->test;
  set.n = 200;
  std::vector<double> labels;
  Status s = eval::MakeRequests(*l.pipeline, set, &l.requests, &labels);
  if (!s.ok()) l.error = s.ToString();
  return l;
}

const char* kSpecs[] = {"pipelines/flight-delay.yaml", "pipelines/flight-late.yaml"};

// Feature distributions of `count` requests as round 0 would see them (see file comment).
std::vector<std::vector<uq::FeatureDist>> RoundZeroFeatures(const Loaded& l, size_t count) {
  const pipeline::Pipeline& p = *l.pipeline;
  pipeline::Session session(p);
  std::vector<std::vector<uq::FeatureDist>> out;
  std::vector<bool> is_agg(p.num_features(), false);
  for (const pipeline::CompiledQuery& q : p.queries()) {
    for (int slot : q.feature_slots) is_agg[slot] = true;
  }
  std::vector<float> x(p.num_features());
  for (size_t i = 0; i < count && i < l.requests.size(); ++i) {
    if (!session.ExactFeatures(l.requests[i], x).ok()) continue;
    std::vector<uq::FeatureDist> f(p.num_features());
    for (size_t d = 0; d < f.size(); ++d) {
      const bool sampled = is_agg[d] && std::isfinite(x[d]);
      f[d] = {.mean = x[d], .std = sampled ? 0.05 * std::abs(x[d]) + 0.1 : 0.0, .fixed = !sampled};
    }
    out.push_back(std::move(f));
  }
  return out;
}

void RoundOverhead(benchmark::State& state, const char* spec, bool two_stage) {
  Loaded& l = Load(spec);
  if (!l.error.empty()) {
    state.SkipWithError(l.error.c_str());
    return;
  }
  const pipeline::Pipeline& p = *l.pipeline;
  const auto features = RoundZeroFeatures(l, 64);
  uq::Propagator propagator(p.design(), p.model());
  uq::PropagationResult result;
  const size_t G = p.queries().size();
  std::vector<planner::QueryView> views(G);
  std::vector<int> target(G);
  const double delta = p.spec().guarantee.delta > 0 ? p.spec().guarantee.delta : 1.0;
  size_t i = 0, rows = 0;
  for (auto _ : state) {
    const auto& f = features[i++ % features.size()];
    // two_stage: a threshold of 0 always stops after the A/B rows (the final round's cost).
    Status s = propagator.Run(f, delta, &result, {.stop_confidence = two_stage ? 0.0 : -1.0});
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    for (size_t q = 0; q < G; ++q) {
      views[q] = {.strata = 5, .matching_rows = 100'000, .s1 = result.s1[q], .usable = true,
                  .ns_per_row = 2.0, .variance = result.output_std * result.output_std * result.s1[q]};
    }
    planner::PlanJump(views, 0.25 * delta * delta, target);
    benchmark::DoNotOptimize(target.data());
    rows += result.model_rows;
  }
  state.counters["model_rows_per_round"] =
      benchmark::Counter(static_cast<double>(rows) / static_cast<double>(state.iterations()));
  state.counters["trees"] = p.spec().model.trees;
}

void BM_RoundOverhead(benchmark::State& state) { RoundOverhead(state, kSpecs[state.range(0)], false); }
void BM_RoundOverheadTwoStage(benchmark::State& state) {
  RoundOverhead(state, kSpecs[state.range(0)], true);
}
BENCHMARK(BM_RoundOverhead)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RoundOverheadTwoStage)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_ScanAvg(benchmark::State& state) {
  Loaded& l = Load(kSpecs[0]);
  if (!l.error.empty()) {
    state.SkipWithError(l.error.c_str());
    return;
  }
  const pipeline::Pipeline& p = *l.pipeline;
  // The network-wide 30-day query: the one without keys.
  const pipeline::CompiledQuery* network = nullptr;
  for (const pipeline::CompiledQuery& q : p.queries()) {
    if (q.key_fields.empty() && q.window_from <= -30 * 86400) network = &q;
  }
  if (network == nullptr) {
    state.SkipWithError("no network-wide 30-day query");
    return;
  }
  backend::BoundQuery bound;
  const int64_t t = 991958400;  // 2001-06-08 00:00
  (void)p.backend().Bind(network->shape, {}, t + network->window_from, t + network->window_to, &bound);
  agg::Aggregator avg(agg::AggOp::kAvg);
  agg::Aggregator* aggs[] = {&avg};
  int64_t rows = 0;
  for (auto _ : state) {
    avg.Reset();
    auto read = p.backend().Read(bound, 0, backend::kNumStrata, aggs);
    rows += *read;
    benchmark::DoNotOptimize(avg.Finalize(1.0).value);
  }
  state.counters["rows_per_s"] = benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsRate);
  state.counters["rows_per_scan"] = static_cast<double>(bound.matching_rows);
}
BENCHMARK(BM_ScanAvg)->Unit(benchmark::kMicrosecond);

void Request(benchmark::State& state, bool exact) {
  Loaded& l = Load(kSpecs[state.range(0)]);
  if (!l.error.empty()) {
    state.SkipWithError(l.error.c_str());
    return;
  }
  pipeline::Session session(*l.pipeline);
  pipeline::Prediction pred;
  size_t i = 0;
  for (auto _ : state) {
    Status s = session.Predict(l.requests[i++ % l.requests.size()], {.exact = exact}, &pred);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
}
void BM_RequestExact(benchmark::State& state) { Request(state, true); }
void BM_RequestApprox(benchmark::State& state) { Request(state, false); }
BENCHMARK(BM_RequestExact)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RequestApprox)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace apx

BENCHMARK_MAIN();
