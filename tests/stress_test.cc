// The stress suite (pipelines/stress/*.yaml, docs/benchmarks/stress.md): generated pipelines on
// hostile data (rare huge values, infinite-variance tails, heavy ties, near-constant columns,
// unseen singletons, nested windows, windows too noisy to sample). With the cut-over off, every
// pipeline must really approximate and still keep Pr(|ŷ − y_exact| ≤ δ) ≥ τ. Several do not
// with the estimators of this writing: that is what the suite is for (docs/benchmarks/stress.md
// has the table). CTest label `stress`: `ctest -L stress`.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/requests.h"
#include "eval/eval.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "pipeline/spec.h"
#include "small_spec.h"

namespace apx {
namespace {

// The CI scale: every aggregation query still matches >= ~5,000 rows (>= 20,000 at scale 1).
constexpr double kScale = 0.25;
constexpr int kRequests = 400;
constexpr char kStressDir[] = "pipelines/stress";
// Pipelines that cannot meet δ without reading most of their rows, so the cut-over must take
// the exact path: `wide` (windows too noisy for δ) and `distinct` (count_distinct where the
// unseen values are rare singletons: a small sample cannot tell 5 of them from 50, and an
// honest estimate says so).
bool MustReadMost(const std::string& name) { return name == "wide" || name == "distinct"; }

std::string TempDir() { return testing::TempDir("apx_stress_"); }

// Every spec under pipelines/stress/, sorted (the test runs from the source tree).
std::vector<std::string> StressSpecs() {
  std::vector<std::string> specs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kStressDir, ec)) {
    if (entry.path().extension() == ".yaml") specs.push_back(entry.path().string());
  }
  std::sort(specs.begin(), specs.end());
  return specs;
}

std::string Stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

// Loads a stress spec at the CI scale, with its snapshots and model redirected to a temp dir.
pipeline::PipelineSpec SmallSpec(const std::string& path) {
  return testing::SmallSpec(path, kScale, TempDir());
}

// Prepares (generates, trains with one thread: XGBoost's OpenMP threads crawl on a busy
// 2-core machine) and opens a spec with the given cut-over setting.
std::unique_ptr<pipeline::Pipeline> OpenSmall(const std::string& path, bool cut_over) {
  pipeline::PipelineSpec spec = SmallSpec(path);
  Status prepared = eval::Prepare(spec, 1, false);
  EXPECT_TRUE(prepared.ok()) << prepared.ToString();
  if (!prepared.ok()) return nullptr;
  spec.guarantee.cut_over = cut_over;
  auto p = pipeline::Pipeline::Open(spec);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(*p) : nullptr;
}

// Lowest meet rate a correct τ guarantee shows on n answers, 3 binomial standard errors down.
double MinMeetRate(double tau, int n) { return tau - 3 * std::sqrt(tau * (1 - tau) / n); }

// Per-answer figures that RunEval averages away: each test request answered exactly and
// approximately (the same session, one after the other).
struct Answers {
  int n = 0;
  int with_rounds = 0;        // approximate answers that ran >= 1 propagation round
  int confident = 0;          // approximate answers that claim confidence >= τ
  int confident_misses = 0;   // ... and miss δ (binary: a different class than exact)
};

Answers Answer(const pipeline::Pipeline& p, int n) {
  Answers a;
  pipeline::RequestSetSpec set = p.spec().test;
  set.n = n;
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  Status made = eval::MakeRequests(p, set, &requests, &labels);
  EXPECT_TRUE(made.ok()) << made.ToString();
  pipeline::Session session(p);
  pipeline::Prediction exact, approx;
  const bool binary = p.spec().task == model::Task::kBinary;
  for (const pipeline::Request& r : requests) {
    Status s = session.Predict(r, {.exact = true}, &exact);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = session.Predict(r, {.exact = false}, &approx);
    EXPECT_TRUE(s.ok()) << s.ToString();
    ++a.n;
    a.with_rounds += approx.rounds >= 1;
    if (approx.confidence >= approx.tau) {
      ++a.confident;
      const bool miss = binary ? approx.y != exact.y : std::abs(approx.y - exact.y) > approx.delta;
      a.confident_misses += miss;
    }
  }
  return a;
}

double MeanQueryRatio(const eval::EvalReport& r) {
  double sum = 0;
  for (const auto& [name, ratio] : r.query_sample_ratio) sum += ratio;
  return r.query_sample_ratio.empty() ? 0 : sum / static_cast<double>(r.query_sample_ratio.size());
}

class StressTest : public ::testing::TestWithParam<std::string> {};

// The data are hostile but the models are honest: their predictions follow the aggregation
// features, not only the request fields (else the guarantee would hold trivially). Swapping
// every request's aggregation features for another request's must move the predictions.
TEST_P(StressTest, ModelUsesTheAggregates) {
  auto p = OpenSmall(GetParam(), /*cut_over=*/true);
  ASSERT_NE(p, nullptr);
  pipeline::RequestSetSpec set = p->spec().test;
  set.n = 200;
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  ASSERT_TRUE(eval::MakeRequests(*p, set, &requests, &labels).ok());
  const size_t n = requests.size(), d = p->num_features();
  std::vector<float> x(n * d), swapped(n * d);
  pipeline::Session session(*p);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(session.ExactFeatures(requests[i], std::span<float>(x.data() + i * d, d)).ok());
  }
  swapped = x;
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (i + n / 2) % n;
    for (const pipeline::CompiledQuery& q : p->queries()) {
      for (int slot : q.feature_slots) swapped[i * d + slot] = x[j * d + slot];
    }
  }
  std::vector<float> y(n), y_swapped(n);
  ASSERT_TRUE(p->model().Predict(x, n, y).ok());
  ASSERT_TRUE(p->model().Predict(swapped, n, y_swapped).ok());
  if (p->spec().task == model::Task::kBinary) {
    int flips = 0;
    for (size_t i = 0; i < n; ++i) flips += (y[i] >= 0.5) != (y_swapped[i] >= 0.5);
    EXPECT_GT(flips, static_cast<int>(n / 10)) << GetParam();
  } else {
    double mean = 0, ss = 0, moved = 0;
    for (size_t i = 0; i < n; ++i) mean += y[i] / static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) {
      ss += (y[i] - mean) * (y[i] - mean);
      moved += (y_swapped[i] - y[i]) * (y_swapped[i] - y[i]);
    }
    // Aggregates carry ~70 % of the label's variance: swapping them moves predictions by about
    // their spread (independent requests: √2·their share), far more than δ.
    EXPECT_GT(std::sqrt(moved / n), 0.5 * std::sqrt(ss / n)) << GetParam();
    EXPECT_GT(std::sqrt(moved / n), 2 * p->spec().guarantee.delta) << GetParam();
  }
}

// Cut-over off: the approximate path must sample (< 60 % of the rows, >= 1 propagation round
// on most requests) and keep the guarantee: meet rate >= τ minus 3 binomial standard errors,
// and answers claiming confidence >= τ miss δ no more often than that allows. The pipelines of
// MustReadMost instead need more than half of their rows, so the cut-over must take the exact
// path.
TEST_P(StressTest, KeepsTheGuaranteeOnHostileData) {
  const std::string name = Stem(GetParam());
  auto p = OpenSmall(GetParam(), /*cut_over=*/false);
  ASSERT_NE(p, nullptr);
  auto report = eval::RunEval(*p, {.n = kRequests, .progress = false});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->requests, kRequests);
  for (const auto& [query, rows] : report->query_rows) {
    EXPECT_GE(rows, 4500) << query << ": too few rows to sample at the CI scale";
  }
  const Answers answers = Answer(*p, kRequests);
  const double ratio = MeanQueryRatio(*report);
  const double tau = report->tau;
  std::printf("[ stress   ] %-18s meet %.3f (min %.3f)  sample ratio %.3f  rounds %.2f  "
              "confident misses %d/%d\n",
              name.c_str(), report->meet_rate, MinMeetRate(tau, kRequests), ratio,
              report->avg_rounds, answers.confident_misses, answers.confident);

  if (MustReadMost(name)) {
    EXPECT_GT(ratio, 0.5) << name << " should need most of its rows";
  } else {
    // Sampled, not read whole: at the CI scale (~5,000 rows per query) an honest estimate of
    // ties' integer quantiles needs about half of the rows (36 % at scale 1).
    EXPECT_LT(ratio, 0.6) << name << ": did not approximate";
    EXPECT_GE(answers.with_rounds, answers.n * 8 / 10) << name << ": too few propagation rounds";
  }
  EXPECT_GE(report->meet_rate, MinMeetRate(tau, kRequests)) << name;
  if (answers.confident > 0) {
    EXPECT_LE(static_cast<double>(answers.confident_misses) / answers.confident,
              1 - MinMeetRate(tau, answers.confident))
        << name << ": answers claiming confidence >= tau miss delta too often";
  }

  if (MustReadMost(name)) {
    // With the cut-over on (the default), the approximate path is the exact path. Whether it is
    // also no slower is a speed claim, measured by `eval --interleave` in docs/BENCHMARKS.md,
    // not asserted here: a timed check can fail on a loaded machine (stress_test failed twice
    // in 2026-12-03's parallel ctest runs, next to ClickHouse servers; the output was lost).
    auto q = OpenSmall(GetParam(), /*cut_over=*/true);
    ASSERT_NE(q, nullptr);
    auto on = eval::RunEval(*q, {.n = kRequests, .progress = false});
    ASSERT_TRUE(on.ok()) << on.status().ToString();
    std::printf("[ stress   ] %-18s cut-over on: cut over %.3f, exact p50 %.3f ms, default p50 "
                "%.3f ms\n",
                name.c_str(), on->cut_over_rate, on->exact_latency.p50, on->approx_latency.p50);
    EXPECT_GE(on->cut_over_rate, 0.9);
    EXPECT_GE(on->meet_rate, MinMeetRate(tau, kRequests));
  }
}

INSTANTIATE_TEST_SUITE_P(Pipelines, StressTest, ::testing::ValuesIn(StressSpecs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = Stem(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(StressSuiteTest, HasEveryHostilePattern) {
  std::vector<std::string> names;
  for (const std::string& s : StressSpecs()) names.push_back(Stem(s));
  for (const char* want : {"rare-jumps", "rare-jumps-binary", "pareto", "lognormal", "ties",
                           "near-constant", "distinct", "nested", "sum", "wide"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

}  // namespace
}  // namespace apx
