#include "planner/round_cost.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace apx::planner {
namespace {

// Rounds like flight-delay's on two ClickHouse shards: 1 to 6 queries, 100 to 1M rows, and
// time = 0.9 ms + 1.1 ms per query + 11 ns per row, ±10 % noise.
double Truth(int branches, int64_t rows) { return 0.9e6 + 1.1e6 * branches + 11.0 * static_cast<double>(rows); }

TEST(RoundCostFitTest, SeparatesTheCostPerQueryFromTheCostPerRow) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> branches(1, 6);
  std::uniform_real_distribution<double> log_rows(2, 6), noise(0.9, 1.1);
  RoundCostFit fit;
  for (int i = 0; i < 300; ++i) {
    const int b = branches(rng);
    const auto rows = static_cast<int64_t>(std::pow(10.0, log_rows(rng)));
    fit.Add(b, rows, Truth(b, rows) * noise(rng));
  }
  const RoundCost c = fit.Get();
  EXPECT_NEAR(c.ns_per_branch, 1.1e6, 0.15e6);
  EXPECT_NEAR(c.ns_per_row, 11.0, 1.5);
  EXPECT_NEAR(c.fixed_ns, 0.9e6, 0.5e6);
  // What the cut-over asks: a small round of one query, a round 0 of six, a big read.
  for (auto [b, rows] : {std::pair<int, int64_t>{1, 200}, {6, 25'000}, {1, 1'000'000}}) {
    EXPECT_NEAR(c.Of(b, static_cast<double>(rows)) / Truth(b, rows), 1.0, 0.1) << b << " queries, " << rows << " rows";
  }
}

TEST(RoundCostFitTest, AConstantNumberOfQueriesFoldsIntoTheFixedPart) {
  RoundCostFit fit;
  for (int i = 0; i < 50; ++i) {
    const int64_t rows = 1000 * (1 + i % 10);
    fit.Add(3, rows, Truth(3, rows));
  }
  const RoundCost c = fit.Get();
  EXPECT_GE(c.fixed_ns, 0);
  EXPECT_GE(c.ns_per_branch, 0);
  EXPECT_NEAR(c.ns_per_row, 11.0, 0.01);
  EXPECT_NEAR(c.Of(3, 5000), Truth(3, 5000), 1e3);
}

TEST(RoundCostFitTest, CoefficientsStayNonNegative) {
  // Time falling with rows (noise, caching): no negative cost per row, the mean instead.
  RoundCostFit fit;
  for (int i = 0; i < 40; ++i) fit.Add(2, 1000 * (i + 1), 5e6 - 1e3 * i);
  const RoundCost c = fit.Get();
  EXPECT_GE(c.fixed_ns, 0);
  EXPECT_GE(c.ns_per_branch, 0);
  EXPECT_GE(c.ns_per_row, 0);
  EXPECT_NEAR(c.Of(2, 20'000), 4.98e6, 0.1e6);
}

TEST(RoundCostFitTest, DefaultsBeforeRoundsAndIgnoresBadSamples) {
  RoundCostFit fit(0.98, 2.0);
  EXPECT_EQ(fit.Get().ns_per_row, 2.0);
  EXPECT_EQ(fit.Get().fixed_ns, 0);
  fit.Add(1, 100, std::nan(""));
  fit.Add(1, 100, -5);
  fit.Add(-1, 100, 5);
  EXPECT_EQ(fit.rounds_weight(), 0);
  fit.Add(2, 1000, 4000);
  EXPECT_DOUBLE_EQ(fit.Get().ns_per_row, 4.0);  // one round: all of it per row
}

}  // namespace
}  // namespace apx::planner
