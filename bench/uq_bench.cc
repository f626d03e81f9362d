// bench/uq_bench.cc
//
// Cost of uq/ per round EXCLUDING the model: Propagator::Run with a trivial model (copies
// feature 0 of each row to the output), for 5 groups / 10 features and 10 groups / 20
// features at n_base 128 (896 and 1536 rows). The round budget for planner + propagation +
// model is 0.5 ms (DESIGN.md section 9); the non-model part should be tens of microseconds.
// BM_TrivialPredict measures the trivial model alone so it can be subtracted.
//
// Run: build-uq/bench/uq_bench
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "model/model.h"
#include "uq/propagation.h"
#include "uq/sobol.h"

namespace apx::uq {
namespace {

// out[r] = x[r][0]: touches each row once, so Run's own cost dominates.
class TrivialModel : public model::Model {
 public:
  TrivialModel(model::Task task, size_t num_features, const model::LinearForm* linear = nullptr)
      : task_(task), num_features_(num_features), linear_(linear) {}
  model::Task task() const override { return task_; }
  size_t num_features() const override { return num_features_; }
  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override {
    const float* x = rows.data();
    for (size_t row_idx = 0; row_idx < n_rows; ++row_idx) out[row_idx] = x[row_idx * num_features_];
    return Status::Ok();
  }
  const model::LinearForm* linear() const override { return linear_; }
  std::string Describe() const override { return "trivial"; }

 private:
  model::Task task_;
  size_t num_features_;
  const model::LinearForm* linear_;
};

struct Setup {
  std::vector<int> group_of;
  std::vector<FeatureDist> features;
};

// `groups` aggregation groups with 2 features each.
Setup MakeSetup(int groups) {
  Setup s;
  for (int g = 0; g < groups; ++g) {
    for (int k = 0; k < 2; ++k) {
      s.group_of.push_back(g);
      s.features.push_back({10.0 + g, 0.5 + 0.1 * k, false});
    }
  }
  return s;
}

void BM_PropagatorRun(benchmark::State& state, model::Task task) {
  const int groups = static_cast<int>(state.range(0));
  const Setup s = MakeSetup(groups);
  const SaltelliDesign design = SaltelliDesign::Build(s.group_of, groups, 128, 1).value();
  const TrivialModel m(task, s.group_of.size());
  Propagator prop(design, m);
  PropagationResult r;
  for (auto _ : state) {
    Status st = prop.Run(s.features, 0.5, &r);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::DoNotOptimize(r.confidence);
  }
  state.counters["rows"] = static_cast<double>(design.rows());
  state.counters["features"] = static_cast<double>(s.group_of.size());
  state.counters["ns_per_row"] = benchmark::Counter(
      static_cast<double>(design.rows()),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
void BM_PropagatorRunRegression(benchmark::State& state) {
  BM_PropagatorRun(state, model::Task::kRegression);
}
void BM_PropagatorRunBinary(benchmark::State& state) {
  BM_PropagatorRun(state, model::Task::kBinary);
}
BENCHMARK(BM_PropagatorRunRegression)->Arg(5)->Arg(10)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PropagatorRunBinary)->Arg(5)->Arg(10)->Unit(benchmark::kMicrosecond);

// The trivial model alone on the same number of rows (what Run's time includes for the model).
void BM_TrivialPredict(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  const size_t features = 2 * static_cast<size_t>(groups);
  const size_t rows = 128 * (static_cast<size_t>(groups) + 2);
  const TrivialModel m(model::Task::kRegression, features);
  std::vector<float> x(rows * features, 1.0f), y(rows);
  for (auto _ : state) {
    Status st = m.Predict(x, rows, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_TrivialPredict)->Arg(5)->Arg(10)->Unit(benchmark::kMicrosecond);

void BM_PropagatorRunLinearAnalytic(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  const Setup s = MakeSetup(groups);
  const SaltelliDesign design = SaltelliDesign::Build(s.group_of, groups, 128, 1).value();
  const model::LinearForm form{std::vector<double>(s.group_of.size(), 0.3), 1.0};
  const TrivialModel m(model::Task::kRegression, s.group_of.size(), &form);
  Propagator prop(design, m);
  PropagationResult r;
  for (auto _ : state) {
    Status st = prop.Run(s.features, 0.5, &r);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    benchmark::DoNotOptimize(r.confidence);
  }
}
BENCHMARK(BM_PropagatorRunLinearAnalytic)->Arg(5)->Arg(10)->Unit(benchmark::kNanosecond);

// One-time cost per pipeline shape.
void BM_SaltelliDesignBuild(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  const Setup s = MakeSetup(groups);
  for (auto _ : state) {
    Result<SaltelliDesign> d = SaltelliDesign::Build(s.group_of, groups, 128, 1);
    benchmark::DoNotOptimize(d.ok());
  }
}
BENCHMARK(BM_SaltelliDesignBuild)->Arg(5)->Arg(10)->Unit(benchmark::kMicrosecond);

void BM_FirstOrderIndices(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  const size_t rows = 128 * (static_cast<size_t>(groups) + 2);
  std::vector<double> y(rows);
  for (size_t i = 0; i < rows; ++i) y[i] = static_cast<double>((i * 2654435761u) % 1000);
  std::vector<double> s1(static_cast<size_t>(groups));
  for (auto _ : state) {
    FirstOrderIndices(y, 128, groups, s1);
    benchmark::DoNotOptimize(s1.data());
  }
}
BENCHMARK(BM_FirstOrderIndices)->Arg(5)->Arg(10)->Unit(benchmark::kMicrosecond);

void BM_SobolPointsOwen(benchmark::State& state) {
  const int dims = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Result<std::vector<double>> p = SobolPoints(dims, 128, 1, Scrambling::kOwen);
    benchmark::DoNotOptimize(p.ok());
  }
}
BENCHMARK(BM_SobolPointsOwen)->Arg(20)->Arg(40)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace apx::uq

BENCHMARK_MAIN();
