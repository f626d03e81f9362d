// agg/agg_test.cc: estimator coverage by simulation, exactness, merge/batching/reset, edges.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "agg/select.h"

namespace apx::agg {
namespace {

constexpr AggOp kAllOps[] = {AggOp::kCount,    AggOp::kSum,          AggOp::kAvg, AggOp::kVar,
                             AggOp::kStd,      AggOp::kMin,          AggOp::kMax, AggOp::kMedian,
                             AggOp::kQuantile, AggOp::kCountDistinct};

// ---- populations (fixed seeds) ----

std::vector<double> NormalPopulation(size_t size, double mean, double sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, sd);
  std::vector<double> pop(size);
  for (double& x : pop) x = dist(rng);
  return pop;
}

std::vector<double> LogNormalPopulation(size_t size, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(0.0, sigma);
  std::vector<double> pop(size);
  for (double& x : pop) x = dist(rng);
  return pop;
}

// Integers ⌊e^{N(2, 1.2)}⌋: many repeated small values and a tail of singletons.
std::vector<double> DiscretePopulation(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(2.0, 1.2);
  std::vector<double> pop(size);
  for (double& x : pop) x = std::floor(dist(rng));
  return pop;
}

// ---- direct (reference) computations over all rows ----

double DirectAggregate(AggOp op, double q, std::vector<double> rows) {
  const double n = static_cast<double>(rows.size());
  const double sum = std::accumulate(rows.begin(), rows.end(), 0.0);
  const double mean = sum / n;
  double m2 = 0;
  for (double x : rows) m2 += (x - mean) * (x - mean);  // two-pass variance
  switch (op) {
    case AggOp::kCount:
      return n;
    case AggOp::kSum:
      return sum;
    case AggOp::kAvg:
      return mean;
    case AggOp::kVar:
      return m2 / (n - 1);
    case AggOp::kStd:
      return std::sqrt(m2 / (n - 1));
    case AggOp::kMin:
      return *std::min_element(rows.begin(), rows.end());
    case AggOp::kMax:
      return *std::max_element(rows.begin(), rows.end());
    case AggOp::kMedian:
    case AggOp::kQuantile: {
      const auto it =
          rows.begin() + (QuantileRank(op == AggOp::kMedian ? 0.5 : q, rows.size()) - 1);
      std::nth_element(rows.begin(), it, rows.end());
      return *it;
    }
    case AggOp::kCountDistinct:
      std::sort(rows.begin(), rows.end());
      return static_cast<double>(std::unique(rows.begin(), rows.end()) - rows.begin());
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// Bernoulli(p) sample of `pop` by geometric skips (each row in independently with prob. p).
void BernoulliSample(const std::vector<double>& pop, double p, std::mt19937_64& rng,
                     std::vector<double>* sample) {
  sample->clear();
  std::geometric_distribution<int64_t> skip(p);
  for (int64_t row_idx = skip(rng); row_idx < static_cast<int64_t>(pop.size());
       row_idx += 1 + skip(rng)) {
    sample->push_back(pop[row_idx]);
  }
}

struct CoverageCase {
  AggOp op;
  double q = 0.5;
  double covered = 0;  // fraction of replicates whose value ± 1.96·std held the truth
};

// Draws `replicates` Bernoulli(p) samples of `pop` and measures, for every case, how often the
// nominal 95% interval value ± 1.96·std covers the aggregate over the whole population.
void MeasureCoverage(const std::vector<double>& pop, double p, int replicates, uint64_t seed,
                     const char* population_name, std::vector<CoverageCase>* cases) {
  std::mt19937_64 rng(seed);
  std::vector<Aggregator> aggs;
  std::vector<double> truth;
  for (const CoverageCase& c : *cases) {
    aggs.emplace_back(c.op, c.q);
    truth.push_back(DirectAggregate(c.op, c.q, pop));
  }
  std::vector<int> hits(cases->size(), 0);
  std::vector<double> sample;
  for (int rep = 0; rep < replicates; ++rep) {
    BernoulliSample(pop, p, rng, &sample);
    for (size_t case_idx = 0; case_idx < cases->size(); ++case_idx) {
      Aggregator& agg = aggs[case_idx];
      agg.Reset();
      agg.Update(sample);
      // The realised ratio n / N, as the pipeline passes it (the store knows N).
      const Estimate est =
          agg.Finalize(static_cast<double>(sample.size()) / static_cast<double>(pop.size()));
      ASSERT_TRUE(est.usable);
      ASSERT_FALSE(est.exact);
      hits[case_idx] += std::abs(est.value - truth[case_idx]) <= 1.96 * est.std;
    }
  }
  for (size_t case_idx = 0; case_idx < cases->size(); ++case_idx) {
    CoverageCase& c = (*cases)[case_idx];
    c.covered = static_cast<double>(hits[case_idx]) / replicates;
    std::printf("[coverage] %-22s %-14s q=%.2f  %.4f\n", population_name,
                std::string(AggOpName(c.op)).c_str(), c.q, c.covered);
  }
}

// Settings shared by the coverage tests: a fixed finite population of 20,000 rows sampled at
// p = 0.1 (n ≈ 2,000, where the CLT is reasonable), 2,000 replicates. With 2,000 replicates the
// binomial sd of a 95% coverage is 0.49 points, so [93%, 97%] is ±4 sd.
constexpr size_t kPopulationSize = 20000;
constexpr double kSampleRatio = 0.1;
constexpr int kReplicates = 2000;
constexpr double kCoverageLow = 0.93;
constexpr double kCoverageHigh = 0.97;

void ExpectNominal(const std::vector<CoverageCase>& cases, std::initializer_list<AggOp> ops) {
  for (const CoverageCase& c : cases) {
    if (std::find(ops.begin(), ops.end(), c.op) == ops.end()) continue;
    EXPECT_GE(c.covered, kCoverageLow) << AggOpName(c.op) << " q=" << c.q;
    EXPECT_LE(c.covered, kCoverageHigh) << AggOpName(c.op) << " q=" << c.q;
  }
}

void ExpectConservative(const std::vector<CoverageCase>& cases, std::initializer_list<AggOp> ops) {
  for (const CoverageCase& c : cases) {
    if (std::find(ops.begin(), ops.end(), c.op) == ops.end()) continue;
    EXPECT_GE(c.covered, kCoverageLow) << AggOpName(c.op);
  }
}

TEST(AggregatorCoverageTest, NormalPopulation) {
  const std::vector<double> pop = NormalPopulation(kPopulationSize, 10.0, 2.0, 301);
  std::vector<CoverageCase> cases = {
      {AggOp::kCount}, {AggOp::kSum},           {AggOp::kAvg},           {AggOp::kVar},
      {AggOp::kStd},   {AggOp::kMedian},        {AggOp::kQuantile, 0.9}, {AggOp::kMin},
      {AggOp::kMax},   {AggOp::kCountDistinct},
  };
  MeasureCoverage(pop, kSampleRatio, kReplicates, 7001, "normal(10,2)", &cases);
  // count: with the realised ratio n / N the count n / p is N itself (the pipeline reports
  // it exact); its Horvitz–Thompson std is then only conservative.
  ExpectNominal(cases, {AggOp::kSum, AggOp::kAvg, AggOp::kVar, AggOp::kStd,
                        AggOp::kMedian, AggOp::kQuantile});
  ExpectConservative(cases, {AggOp::kCount, AggOp::kMin, AggOp::kMax, AggOp::kCountDistinct});
}

// Log-normal σ = 1 (skewness 6.2): first-moment operators and quantiles.
TEST(AggregatorCoverageTest, LogNormalPopulation) {
  const std::vector<double> pop = LogNormalPopulation(kPopulationSize, 1.0, 302);
  std::vector<CoverageCase> cases = {
      {AggOp::kCount},         {AggOp::kSum}, {AggOp::kAvg}, {AggOp::kMedian},
      {AggOp::kQuantile, 0.9}, {AggOp::kMin}, {AggOp::kMax}, {AggOp::kCountDistinct},
  };
  MeasureCoverage(pop, kSampleRatio, kReplicates, 7002, "lognormal(0,1)", &cases);
  ExpectNominal(cases, {AggOp::kSum, AggOp::kAvg, AggOp::kMedian, AggOp::kQuantile});
  ExpectConservative(cases, {AggOp::kCount, AggOp::kMin, AggOp::kMax, AggOp::kCountDistinct});
}

// Log-normal σ = 0.5 (excess kurtosis 5.9) for var/std: the delta method needs the 4th moment
// to be estimable at n ≈ 2,000. At σ = 1 (excess kurtosis 111) s² is still visibly skewed at
// this n and the interval under-covers; see the header's caveat.
TEST(AggregatorCoverageTest, LogNormalPopulationVarStd) {
  const std::vector<double> pop = LogNormalPopulation(kPopulationSize, 0.5, 303);
  std::vector<CoverageCase> cases = {{AggOp::kVar}, {AggOp::kStd}};
  MeasureCoverage(pop, kSampleRatio, kReplicates, 7003, "lognormal(0,0.5)", &cases);
  ExpectNominal(cases, {AggOp::kVar, AggOp::kStd});
}

// Repeated integer values (count_distinct has both frequent values and singletons; min/max have
// ties at the top).
TEST(AggregatorCoverageTest, DiscretePopulationConservativeOps) {
  const std::vector<double> pop = DiscretePopulation(kPopulationSize, 304);
  std::vector<CoverageCase> cases = {{AggOp::kMin}, {AggOp::kMax}, {AggOp::kCountDistinct}};
  MeasureCoverage(pop, kSampleRatio, kReplicates, 7004, "floor(lognormal(2,1.2))", &cases);
  ExpectConservative(cases, {AggOp::kCount, AggOp::kMin, AggOp::kMax, AggOp::kCountDistinct});
}

// ---- exactness ----

std::vector<double> MixedData(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(100.0, 15.0);
  std::uniform_int_distribution<int> small(0, 50);
  std::vector<double> rows(size);
  for (size_t row_idx = 0; row_idx < size; ++row_idx) {
    // Half continuous, half small integers (repeats for count_distinct and ties for quantiles).
    rows[row_idx] = row_idx % 2 == 0 ? normal(rng) : static_cast<double>(small(rng));
  }
  return rows;
}

void ExpectSameEstimate(const Estimate& a, const Estimate& b, const std::string& what) {
  const double tol_value = 1e-12 * std::max(1.0, std::abs(b.value));
  const double tol_std = 1e-9 * std::max(1.0, std::abs(b.std));
  EXPECT_NEAR(a.value, b.value, tol_value) << what;
  EXPECT_NEAR(a.std, b.std, tol_std) << what;
  EXPECT_EQ(a.n, b.n) << what;
  EXPECT_EQ(a.exact, b.exact) << what;
  EXPECT_EQ(a.usable, b.usable) << what;
}

TEST(AggregatorTest, FinalizeAtOneEqualsDirectComputation) {
  const std::vector<double> rows = MixedData(10007, 11);
  for (AggOp op : kAllOps) {
    Aggregator agg(op, 0.9);
    agg.Update(rows);
    const Estimate est = agg.Finalize(1.0);
    const double direct = DirectAggregate(op, 0.9, rows);
    EXPECT_NEAR(est.value, direct, 1e-12 * std::abs(direct)) << AggOpName(op);
    EXPECT_TRUE(est.exact) << AggOpName(op);
    EXPECT_TRUE(est.usable) << AggOpName(op);
    EXPECT_EQ(est.std, 0.0) << AggOpName(op);
    EXPECT_EQ(est.n, 10007) << AggOpName(op);
    EXPECT_EQ(est.N, 10007.0) << AggOpName(op);
  }
}

TEST(AggregatorTest, MinMaxAndCountDistinctBecomeExactAtOne) {
  const std::vector<double> pop = LogNormalPopulation(5000, 1.0, 12);
  for (AggOp op : {AggOp::kMin, AggOp::kMax, AggOp::kCountDistinct}) {
    Aggregator agg(op);
    agg.Update(pop);
    const Estimate approx = agg.Finalize(0.5);
    const Estimate exact = agg.Finalize(1.0);
    EXPECT_GT(approx.std, 0.0) << AggOpName(op);
    EXPECT_EQ(exact.std, 0.0) << AggOpName(op);
    EXPECT_EQ(exact.value, DirectAggregate(op, 0.5, pop)) << AggOpName(op);
  }
}

TEST(AggregatorTest, MergeOfHalvesEqualsOneUpdate) {
  const std::vector<double> rows = MixedData(5001, 13);
  const std::span<const double> all(rows);
  for (AggOp op : kAllOps) {
    Aggregator whole(op, 0.25), left(op, 0.25), right(op, 0.25);
    whole.Update(all);
    left.Update(all.first(1700));
    right.Update(all.subspan(1700));
    left.Merge(right);
    EXPECT_EQ(left.n(), whole.n());
    for (double p : {1.0, 0.3}) {
      ExpectSameEstimate(left.Finalize(p), whole.Finalize(p),
                         std::string(AggOpName(op)) + " p=" + std::to_string(p));
    }
  }
}

// Power sums about a center, as a database computes them (sum(x - c), sum(pow(x - c, 2)), ...).
PartialMoments SumsAbout(std::span<const double> rows, double center) {
  PartialMoments p{.rows = static_cast<int64_t>(rows.size()), .center = center,
                   .lo = std::numeric_limits<double>::infinity(),
                   .hi = -std::numeric_limits<double>::infinity()};
  for (double x : rows) {
    const double d = x - center;
    p.s1 += d;
    p.s2 += d * d;
    p.s3 += d * d * d;
    p.s4 += d * d * d * d;
    p.lo = std::min(p.lo, x);
    p.hi = std::max(p.hi, x);
  }
  return p;
}

TEST(AggregatorTest, PartialMomentsEqualTheRowsTheySummarise) {
  const std::vector<double> rows = MixedData(5001, 17);
  const std::span<const double> all(rows);
  for (AggOp op : kAllOps) {
    if (!PushesDown(op)) continue;
    for (double center : {0.0, 3.5, -1e3}) {
      Aggregator direct(op), pushed(op);
      direct.Update(all.first(2000));
      direct.UpdateExact(all.subspan(4000));
      direct.Update(all.subspan(2000, 2000));
      pushed.UpdatePartial(SumsAbout(all.first(2000), center), /*exact=*/false);
      pushed.UpdatePartial(SumsAbout(all.subspan(4000), center), /*exact=*/true);
      pushed.UpdatePartial(SumsAbout(all.subspan(2000, 2000), center), /*exact=*/false);
      pushed.UpdatePartial(PartialMoments{}, /*exact=*/false);  // an empty stratum set
      EXPECT_EQ(pushed.n(), direct.n());
      EXPECT_EQ(pushed.exact_n(), direct.exact_n());
      for (double p : {1.0, 0.3}) {
        const Estimate a = pushed.Finalize(p), b = direct.Finalize(p);
        const std::string what = std::string(AggOpName(op)) + " c=" + std::to_string(center);
        EXPECT_NEAR(a.value, b.value, 1e-9 * (1 + std::abs(b.value))) << what;
        EXPECT_NEAR(a.std, b.std, 1e-7 * (1 + std::abs(b.std))) << what;
      }
    }
  }
  EXPECT_FALSE(PushesDown(AggOp::kMedian));
  EXPECT_FALSE(PushesDown(AggOp::kMax));
  EXPECT_FALSE(PushesDown(AggOp::kCountDistinct));
}

TEST(AggregatorTest, AValueBeyondTheRangeMakesTheRangeNoBound) {
  // A database's per-key range read before rows were added: a sampled value above it proves it
  // stale, so the max must not be declared exact (the unsampled rest may hold larger ones).
  std::vector<double> rows;
  for (int i = 0; i < 200; ++i) rows.push_back(i % 7 == 0 ? 15.0 + i * 0.01 : i * 0.05);
  Aggregator max(AggOp::kMax);
  max.set_value_range(0.0, 10.0);
  max.Update(rows);
  const Estimate e = max.Finalize(0.1);
  EXPECT_FALSE(e.exact);
  EXPECT_GT(e.std, 0.0);
  Aggregator within(AggOp::kMax);  // the range still bounds a sample that reaches its end
  within.set_value_range(0.0, 9.95);
  within.Update(std::vector<double>{0.05, 0.1, 0.15, 9.95});
  EXPECT_EQ(within.Finalize(0.1).std, 0.0);
}

TEST(AggregatorTest, ManySmallBatchesEqualOneBatch) {
  const std::vector<double> rows = MixedData(6000, 14);
  const std::span<const double> all(rows);
  std::mt19937_64 rng(15);
  std::uniform_int_distribution<size_t> batch_size(1, 97);
  for (AggOp op : kAllOps) {
    Aggregator one(op, 0.1), many(op, 0.1);
    one.Update(all);
    for (size_t begin = 0; begin < all.size();) {
      const size_t len = std::min(batch_size(rng), all.size() - begin);
      many.Update(all.subspan(begin, len));
      begin += len;
    }
    for (double p : {1.0, 0.2}) {
      ExpectSameEstimate(many.Finalize(p), one.Finalize(p),
                         std::string(AggOpName(op)) + " p=" + std::to_string(p));
    }
  }
}

TEST(AggregatorTest, ResetForgetsRowsAndKeepsCapacity) {
  const std::vector<double> first = MixedData(8000, 16);
  const std::vector<double> second = MixedData(3000, 17);
  for (AggOp op : kAllOps) {
    Aggregator reused(op, 0.75), fresh(op, 0.75);
    reused.Update(first);
    const size_t capacity = reused.ValuesCapacityForTesting();
    reused.Reset();
    EXPECT_EQ(reused.n(), 0);
    reused.Update(second);
    fresh.Update(second);
    EXPECT_EQ(reused.ValuesCapacityForTesting(), capacity) << AggOpName(op);
    if (NeedsValues(op)) {
      EXPECT_GE(capacity, first.size()) << AggOpName(op);
    }
    ExpectSameEstimate(reused.Finalize(0.4), fresh.Finalize(0.4), std::string(AggOpName(op)));
  }
}

// Finalize between growth rounds (as the executor does) must not depend on what was finalized
// before: the incremental sort of count_distinct and the quantile scratch are rebuilt correctly.
TEST(AggregatorTest, FinalizeBetweenRoundsMatchesFresh) {
  const std::vector<double> rows = MixedData(9000, 19);
  const std::span<const double> all(rows);
  for (AggOp op : {AggOp::kCountDistinct, AggOp::kQuantile, AggOp::kMedian}) {
    Aggregator growing(op, 0.9);
    size_t seen = 0;
    for (size_t round_end : {500, 501, 2000, 2000, 4500, 9000}) {
      growing.Update(all.subspan(seen, round_end - seen));
      seen = round_end;
      Aggregator fresh(op, 0.9);
      fresh.Update(all.first(seen));
      for (double p : {0.5, 1.0}) {
        ExpectSameEstimate(growing.Finalize(p), fresh.Finalize(p),
                           std::string(AggOpName(op)) + " n=" + std::to_string(seen));
      }
    }
    Aggregator other(op, 0.9);
    other.Update(all.first(1234));
    growing.Merge(other);  // appended rows after a finalize
    Aggregator fresh(op, 0.9);
    fresh.Update(all);
    fresh.Update(all.first(1234));
    ExpectSameEstimate(growing.Finalize(0.5), fresh.Finalize(0.5), std::string(AggOpName(op)));
    growing.Reset();
    growing.Update(all.first(100));
    Aggregator small(op, 0.9);
    small.Update(all.first(100));
    ExpectSameEstimate(growing.Finalize(0.5), small.Finalize(0.5), std::string(AggOpName(op)));
  }
}

// ---- estimator formulas on hand-checked inputs ----

TEST(AggregatorTest, CountIsHorvitzThompsonAndSumUsesTheKnownN) {
  const std::vector<double> rows = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
  Aggregator count(AggOp::kCount), sum(AggOp::kSum);
  count.Update(rows);
  sum.Update(rows);
  const Estimate c = count.Finalize(0.25);
  EXPECT_DOUBLE_EQ(c.value, 120.0);
  EXPECT_DOUBLE_EQ(c.std, std::sqrt(30 * 0.75) / 0.25);
  EXPECT_DOUBLE_EQ(c.N, 120.0);
  const Estimate s = sum.Finalize(0.25);
  // N = n / p = 120 rows: Ŝ = N·x̄, se = N·s/√n·√(1 − p) (mean per unit with known N; the
  // Horvitz–Thompson √((1−p)·Σx²)/p would be inflated by √(1 + x̄²/s²)).
  const double s2 = 30.0 * 31.0 / 12.0;  // sample variance of 1..30 (ddof 1)
  EXPECT_DOUBLE_EQ(s.value, 465.0 / 0.25);
  EXPECT_NEAR(s.std, 120.0 * std::sqrt(s2 / 30.0 * 0.75), 1e-9);
}

TEST(AggregatorTest, CountDistinctIsTheMidpointOfItsEnvelope) {
  // d = 4 values seen, f1 = 2 singletons (2 and 4), p = 0.5.
  const std::vector<double> rows = {1, 1, 2, 3, 3, 3, 4};
  Aggregator agg(AggOp::kCountDistinct);
  agg.Update(rows);
  const Estimate est = agg.Finalize(0.5);
  // B⁺ = (1 − p)/p·f₁⁺, f₁⁺ = the one-sided 95 % Poisson upper bound of a count of 2 (6.2958);
  // U = d + B⁺ + 1.645·√B⁺.
  const double unseen = 6.29579;
  const double upper = 4.0 + unseen + 1.645 * std::sqrt(unseen);
  EXPECT_NEAR(est.value, 0.5 * (4.0 + upper), 1e-4);
  EXPECT_NEAR(est.std, (upper - 4.0) / (2 * kZ95), 1e-4);
  EXPECT_NEAR(est.value - kZ95 * est.std, 4.0, 1e-9);  // the envelope starts at d
  EXPECT_FALSE(est.usable);                             // 7 rows < kMinSupport
  EXPECT_EQ(agg.Finalize(1.0).value, 4.0);
  // A bound on the distinct values (the whole key's) caps the envelope.
  agg.set_distinct_bound(5);
  const Estimate capped = agg.Finalize(0.5);
  EXPECT_NEAR(capped.value, 4.5, 1e-12);
  EXPECT_NEAR(capped.std, 1.0 / (2 * kZ95), 1e-12);
}

// The max envelope's std from the header's formula for the k+1 most extreme distinct values
// `top` (descending), written out independently.
double WantExtremeStd(const std::vector<double>& top, double p) {
  const int k = static_cast<int>(top.size()) - 1;
  // Solve (1−p)/p·(1 + c/k)^{−k} = 0.05 for c by bisection (not the closed form).
  double lo = 0, hi = 1e9;
  for (int iter = 0; iter < 200; ++iter) {
    const double mid = 0.5 * (lo + hi);
    ((1 - p) / p * std::pow(1 + mid / k, -k) > 0.05 ? lo : hi) = mid;
  }
  const double c = (1 - p) / p > 0.05 ? lo : 0.0;
  double reach = 0;
  if (top[k] > 0) {
    double hill = 0;
    for (int i = 0; i < k; ++i) hill += std::log(top[i] / top[k]) / k;
    reach = top[0] * (std::exp(c * hill) - 1.0);
  } else {
    double mean_excess = 0;
    for (int i = 0; i < k; ++i) mean_excess += (top[i] - top[k]) / k;
    reach = c * mean_excess;
  }
  return reach / kZ95;
}

// Checks the max/min envelope against the header's formula for every k (the Gamma quantile
// pivot included), on a positive tail (Pareto form) and a negative one (exponential form).
TEST(AggregatorTest, ExtremeEnvelopeMatchesFormula) {
  for (double shift : {1.0, -1000.0}) {
    for (int k = 1; k <= 10; ++k) {
      const double p = 0.05 * k;
      // Rows v²/2 + shift for v = 0 … 40, each five times (ties); keep the k+1 largest.
      std::vector<double> rows, top;
      for (int v = 40; v >= 40 - k; --v) top.push_back(v * v * 0.5 + shift);
      for (int rep = 0; rep < 5; ++rep) {
        for (int v = 0; v <= 40; ++v) {
          if (v >= 40 - k) rows.push_back(v * v * 0.5 + shift);
        }
      }
      std::vector<double> negated(rows.size());
      std::transform(rows.begin(), rows.end(), negated.begin(), [](double x) { return -x; });
      Aggregator max_agg(AggOp::kMax), min_agg(AggOp::kMin);
      max_agg.Update(rows);
      min_agg.Update(negated);
      const double want_std = WantExtremeStd(top, p);
      const Estimate max_est = max_agg.Finalize(p);
      const Estimate min_est = min_agg.Finalize(p);
      EXPECT_EQ(max_est.value, top[0]);
      EXPECT_EQ(min_est.value, -top[0]);
      EXPECT_NEAR(max_est.std, want_std, 1e-9 * want_std) << "k=" << k << " shift=" << shift;
      EXPECT_NEAR(min_est.std, want_std, 1e-9 * want_std) << "k=" << k << " shift=" << shift;
      EXPECT_EQ(max_agg.Finalize(0.96).std, 0.0);  // p ≥ 1/(1+α): the sample max is the max
    }
  }
}

TEST(AggregatorTest, QuantileRankDefinition) {
  EXPECT_EQ(QuantileRank(0.9, 10), 9);
  EXPECT_EQ(QuantileRank(0.7, 10), 7);
  EXPECT_EQ(QuantileRank(0.5, 10), 5);  // lower median for even n
  EXPECT_EQ(QuantileRank(0.5, 11), 6);
  EXPECT_EQ(QuantileRank(0.0, 5), 1);
  EXPECT_EQ(QuantileRank(1.0, 5), 5);
  EXPECT_EQ(QuantileRank(0.5, 1), 1);
  // ⌈k·n/100⌉ in integer arithmetic for every percentile and n up to 2,000.
  for (int64_t n = 1; n <= 2000; ++n) {
    for (int64_t k = 1; k <= 100; ++k) {
      const int64_t want = (k * n + 99) / 100;
      ASSERT_EQ(QuantileRank(static_cast<double>(k) / 100.0, n), want) << k << "/100 n=" << n;
    }
  }
}

TEST(AggregatorTest, MedianForcesHalf) {
  EXPECT_EQ(Aggregator(AggOp::kMedian, 0.9).q(), 0.5);
  EXPECT_EQ(Aggregator(AggOp::kQuantile, 0.9).q(), 0.9);
}

// ---- selection ----

// SelectNth must honour the std::nth_element contract on every k, including duplicates,
// presorted and constant inputs and sizes around the small-input cut-over.
TEST(SelectNthTest, MatchesSortAndPartitionsAroundK) {
  std::mt19937_64 rng(21);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> few(0, 4);
  for (size_t size : {1, 2, 3, 31, 32, 33, 100, 1000, 20000}) {
    for (int shape = 0; shape < 5; ++shape) {
      std::vector<double> input(size);
      for (size_t idx = 0; idx < size; ++idx) {
        switch (shape) {
          case 0:  // distinct
            input[idx] = normal(rng);
            break;
          case 1:  // heavy ties
            input[idx] = few(rng);
            break;
          case 2:  // ascending
            input[idx] = static_cast<double>(idx);
            break;
          case 3:  // descending
            input[idx] = static_cast<double>(size - idx);
            break;
          default:  // constant
            input[idx] = 7.0;
            break;
        }
      }
      std::vector<double> sorted = input;
      std::sort(sorted.begin(), sorted.end());
      const size_t step = std::max<size_t>(1, size / 13);
      for (size_t k = 0; k < size; k += step) {
        std::vector<double> data = input;
        const PlacedRange placed = SelectNth(data.data(), data.size(), k);
        ASSERT_EQ(data[k], sorted[k]) << "size=" << size << " shape=" << shape << " k=" << k;
        // The placed range holds k, is in sorted place, and covers every copy of data[k].
        ASSERT_LE(placed.first, k);
        ASSERT_GT(placed.last, k);
        ASSERT_LE(placed.last, size);
        for (size_t idx = placed.first; idx < placed.last; ++idx) ASSERT_EQ(data[idx], sorted[idx]);
        const auto copies = std::equal_range(sorted.begin(), sorted.end(), sorted[k]);
        ASSERT_LE(placed.first, static_cast<size_t>(copies.first - sorted.begin()));
        ASSERT_GE(placed.last, static_cast<size_t>(copies.second - sorted.begin()));
        for (size_t idx = 0; idx < k; ++idx) ASSERT_LE(data[idx], data[k]);
        for (size_t idx = k + 1; idx < size; ++idx) ASSERT_GE(data[idx], data[k]);
        std::sort(data.begin(), data.end());
        ASSERT_EQ(data, sorted) << "SelectNth must permute, not change, the values";
      }
    }
  }
}

// ---- names ----

TEST(AggOpTest, ParseRoundTripsEveryName) {
  for (AggOp op : kAllOps) {
    const Result<AggOp> parsed = ParseAggOp(AggOpName(op));
    ASSERT_TRUE(parsed.ok()) << AggOpName(op);
    EXPECT_EQ(*parsed, op);
  }
}

TEST(AggOpTest, UnknownNameListsValidNames) {
  const Result<AggOp> parsed = ParseAggOp("mean");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = parsed.status().message();
  EXPECT_NE(message.find("'mean'"), std::string::npos) << message;
  for (AggOp op : kAllOps) {
    EXPECT_NE(message.find(std::string(AggOpName(op))), std::string::npos) << message;
  }
  EXPECT_FALSE(ParseAggOp("AVG").ok());
  EXPECT_FALSE(ParseAggOp("").ok());
}

TEST(AggOpTest, NeedsValuesOnlyForOrderStatisticsAndDistinct) {
  for (AggOp op : kAllOps) {
    const bool want = op == AggOp::kMedian || op == AggOp::kQuantile || op == AggOp::kCountDistinct;
    EXPECT_EQ(NeedsValues(op), want) << AggOpName(op);
  }
}

// ---- edges ----

TEST(AggregatorEdgeTest, EmptyDataIsExactAtOne) {
  for (AggOp op : kAllOps) {
    const Estimate est = Aggregator(op).Finalize(1.0);
    EXPECT_TRUE(est.exact) << AggOpName(op);
    EXPECT_TRUE(est.usable) << AggOpName(op);
    EXPECT_EQ(est.std, 0.0) << AggOpName(op);
    EXPECT_EQ(est.n, 0) << AggOpName(op);
    EXPECT_EQ(est.N, 0.0) << AggOpName(op);
    if (op == AggOp::kCount || op == AggOp::kSum || op == AggOp::kCountDistinct) {
      EXPECT_EQ(est.value, 0.0) << AggOpName(op);
    } else {
      EXPECT_TRUE(std::isnan(est.value)) << AggOpName(op);
    }
  }
}

TEST(AggregatorEdgeTest, EmptyDataIsNotUsableBelowOne) {
  for (AggOp op : kAllOps) {
    const Estimate est = Aggregator(op).Finalize(0.5);
    EXPECT_FALSE(est.exact) << AggOpName(op);
    EXPECT_FALSE(est.usable) << AggOpName(op);
    EXPECT_EQ(est.n, 0) << AggOpName(op);
  }
}

TEST(AggregatorEdgeTest, BelowMinimumSupportIsNotUsableButFilled) {
  const std::vector<double> rows = MixedData(kMinSupport, 18);
  for (AggOp op : kAllOps) {
    Aggregator agg(op);
    agg.Update(std::span<const double>(rows).first(kMinSupport - 1));
    const Estimate small = agg.Finalize(0.2);
    EXPECT_FALSE(small.usable) << AggOpName(op);
    EXPECT_TRUE(std::isfinite(small.value)) << AggOpName(op);
    EXPECT_TRUE(std::isfinite(small.std)) << AggOpName(op);
    EXPECT_DOUBLE_EQ(small.N, (kMinSupport - 1) / 0.2) << AggOpName(op);
    agg.Update(std::span<const double>(rows).last(1));
    EXPECT_TRUE(agg.Finalize(0.2).usable) << AggOpName(op);
    EXPECT_TRUE(agg.Finalize(1.0).usable) << AggOpName(op);
  }
  Aggregator one_row(AggOp::kVar);
  one_row.Update(std::span<const double>(rows).first(1));
  EXPECT_TRUE(std::isnan(one_row.Finalize(1.0).value));  // ddof = 1
  EXPECT_TRUE(one_row.Finalize(1.0).usable);
}

TEST(AggregatorEdgeTest, ConstantDataHasZeroSpreadAndNoNan) {
  const std::vector<double> rows(1000, 3.7);
  for (AggOp op : kAllOps) {
    Aggregator agg(op);
    agg.Update(rows);
    const Estimate est = agg.Finalize(0.5);
    EXPECT_TRUE(std::isfinite(est.value)) << AggOpName(op);
    EXPECT_TRUE(std::isfinite(est.std)) << AggOpName(op);
    switch (op) {
      case AggOp::kCount:
        EXPECT_GT(est.std, 0.0) << AggOpName(op);  // how many rows match is still uncertain
        break;
      case AggOp::kSum:  // N = n / p rows of 3.7; without a value range nothing bounds the rest
        EXPECT_NEAR(est.value, 3.7 * est.N, 1e-9) << AggOpName(op);
        break;
      case AggOp::kVar:
      case AggOp::kStd:
        EXPECT_NEAR(est.value, 0.0, 1e-7) << AggOpName(op);
        EXPECT_NEAR(est.std, 0.0, 1e-7) << AggOpName(op);
        break;
      case AggOp::kCountDistinct: {
        // No singletons does not prove that no rare value exists: f₁⁺ = −ln 0.05 ≈ 3 (Poisson
        // bound), so the envelope is [1, 1 + B⁺ + 1.645·√B⁺] with B⁺ = f₁⁺ at p = 0.5.
        const double unseen = -std::log(0.05);
        EXPECT_NEAR(est.std, (unseen + 1.645 * std::sqrt(unseen)) / (2 * kZ95), 1e-9);
        EXPECT_NEAR(est.value - kZ95 * est.std, 1.0, 1e-9);
        break;
      }
      default:
        EXPECT_NEAR(est.value, 3.7, 1e-12) << AggOpName(op);
        EXPECT_NEAR(est.std, 0.0, 1e-12) << AggOpName(op);
        break;
    }
  }
}

TEST(AggregatorDeathTest, MisuseAborts) {
  Aggregator avg(AggOp::kAvg), sum(AggOp::kSum);
  EXPECT_DEATH(avg.Merge(sum), "check failed");
  EXPECT_DEATH(avg.Finalize(0.0), "check failed");
  EXPECT_DEATH(avg.Finalize(1.5), "check failed");
  EXPECT_DEATH(Aggregator(AggOp::kQuantile, 1.5), "check failed");
#ifndef NDEBUG
  const double bad[] = {1.0, std::numeric_limits<double>::quiet_NaN()};
  EXPECT_DEATH(avg.Update(bad), "check failed");
#endif
}

TEST(ConstantSampleTest, RareValuesDoNotLookCertain) {
  // A flight's health-state column (the Turbofan analogue): 6 rows of 0 among 5,000 rows of 1.
  // A 5 % sample usually contains no 0 at all; its CLT standard error is then 0 and the 95 %
  // interval misses the true mean ~74 % of the time. With the column's range known ([0, 1]),
  // a constant sample gets the rule-of-three standard error and the interval covers.
  std::mt19937_64 rng(401);
  std::vector<double> pop(5000, 1.0);
  for (int i = 0; i < 6; ++i) pop[i * 800] = 0.0;
  const double truth = 1.0 - 6.0 / 5000;
  std::bernoulli_distribution keep(0.05);
  for (AggOp op : {AggOp::kAvg, AggOp::kSum, AggOp::kStd, AggOp::kVar}) {
    int covered = 0, covered_without_range = 0, constant = 0;
    const int trials = 2000;
    double true_value = truth;
    if (op == AggOp::kSum) true_value = truth * 5000;
    if (op == AggOp::kVar || op == AggOp::kStd) {
      const double var = truth * (1 - truth) * 5000 / 4999;
      true_value = op == AggOp::kVar ? var : std::sqrt(var);
    }
    for (int t = 0; t < trials; ++t) {
      std::vector<double> sample;
      for (double v : pop) {
        if (keep(rng)) sample.push_back(v);
      }
      const double p = static_cast<double>(sample.size()) / pop.size();
      Aggregator with(op), without(op);
      with.set_value_range(0.0, 1.0);
      with.Update(sample);
      without.Update(sample);
      const Estimate a = with.Finalize(p), b = without.Finalize(p);
      constant += a.value == (op == AggOp::kSum ? sample.size() / p : (op == AggOp::kAvg ? 1.0 : 0.0));
      covered += std::abs(a.value - true_value) <= 1.96 * a.std + 1e-12;
      covered_without_range += std::abs(b.value - true_value) <= 1.96 * b.std + 1e-12;
    }
    EXPECT_GT(constant, trials / 2) << AggOpName(op);  // the case this is about is common
    EXPECT_GE(covered, 0.95 * trials) << AggOpName(op);
    if (op == AggOp::kAvg) {
      EXPECT_LT(covered_without_range, 0.5 * trials);  // the failure mode
    }
  }
}

}  // namespace
}  // namespace apx::agg

namespace apx::agg {
namespace {

TEST(QuantileEstimatorTest, DiscreteTieRarelyLooksCertain) {
  // Two-point data near a tie (the median imbalance experiment): x in 50.05 % of the rows,
  // -100 in the rest. A 5 % sample has both 95 % interval ranks on the wrong side in ~2.5 % of
  // samples; with only the 95 % interval that is a wrong median with std 0 (certainty) about
  // 12 times in 500. Widening a collapsed interval to 99.9 % leaves ~0.1 % of such cases.
  std::mt19937_64 rng(301);
  const int n_pop = 20000;
  std::vector<double> pop(n_pop);
  for (int i = 0; i < n_pop; ++i) pop[i] = i < 10010 ? 7.0 : -100.0;
  std::bernoulli_distribution keep(0.05);
  int degenerate_but_wrong = 0;
  for (int trial = 0; trial < 500; ++trial) {
    Aggregator median(AggOp::kMedian);
    std::vector<double> sample;
    for (double v : pop) {
      if (keep(rng)) sample.push_back(v);
    }
    median.Update(sample);
    const Estimate e = median.Finalize(0.05);
    ASSERT_TRUE(e.usable);
    // A wrong median with zero spread is a confident wrong answer.
    if (e.value != 7.0 && e.std == 0) ++degenerate_but_wrong;
  }
  EXPECT_LE(degenerate_but_wrong, 2);
}

}  // namespace
}  // namespace apx::agg
