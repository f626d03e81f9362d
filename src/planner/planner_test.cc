#include "planner/planner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace apx::planner {
namespace {

TEST(PlannerTest, InitialStrataRespectsAlphaAndSupport) {
  PlannerOptions o;  // alpha 0.05
  EXPECT_EQ(InitialStrata(1'000'000, o), 5);
  EXPECT_EQ(InitialStrata(500, o), kNumStrata);  // tiny queries go exact
  // 30 * 1.2 / 20,000 * 100 = 0.18 -> 1 stratum, alpha dominates.
  EXPECT_EQ(InitialStrata(20'000, o), 5);
  // 30 * 1.2 * 100 / 2,000 = 1.8 -> 2 strata, alpha still dominates.
  EXPECT_EQ(InitialStrata(2'000, o), 5);
  o.alpha = 0.01;
  EXPECT_EQ(InitialStrata(2'000, o), 2);
}

TEST(PlannerTest, HighestPriorityQueryGetsTheBudget) {
  PlannerOptions o;
  std::vector<QueryView> q = {
      {.strata = 5, .matching_rows = 100'000, .s1 = 0.1, .usable = true, .ns_per_row = 1},
      {.strata = 5, .matching_rows = 100'000, .s1 = 0.8, .usable = true, .ns_per_row = 1},
      {.strata = 5, .matching_rows = 100'000, .s1 = 0.1, .usable = true, .ns_per_row = 1}};
  std::vector<int> target(3);
  PlanNextRound(q, o, target);
  EXPECT_EQ(target, (std::vector<int>{5, 8, 5}));  // gamma 1 * 3 queries = 3 granules
  // Cost matters: the same influence at a tenth of the cost wins.
  q[0].s1 = 0.8;
  q[0].matching_rows = 10'000;
  PlanNextRound(q, o, target);
  EXPECT_EQ(target, (std::vector<int>{8, 5, 5}));
}

TEST(PlannerTest, BudgetSpillsWhenTopQueryIsNearlyDone) {
  PlannerOptions o{.gamma = 2.0};
  std::vector<QueryView> q = {
      {.strata = 98, .matching_rows = 50'000, .s1 = 0.9, .usable = true},
      {.strata = 5, .matching_rows = 50'000, .s1 = 0.1, .usable = true}};
  std::vector<int> target(2);
  PlanNextRound(q, o, target);
  EXPECT_EQ(target[0], kNumStrata);
  EXPECT_EQ(target[1], 7);
}

TEST(PlannerTest, UnusableQueriesGrowFirst) {
  PlannerOptions o;
  std::vector<QueryView> q = {
      {.strata = 5, .matching_rows = 5'000, .s1 = 0.0, .usable = false},
      {.strata = 5, .matching_rows = 100'000, .s1 = 0.9, .usable = true}};
  std::vector<int> target(2);
  PlanNextRound(q, o, target);
  EXPECT_GE(target[0], 10);
  EXPECT_EQ(target[1], 5);
}

TEST(PlannerTest, NoInfluenceSpreadsEvenlyAndZeroVarianceIsNotNaN) {
  PlannerOptions o;
  std::vector<QueryView> q = {{.strata = 5, .matching_rows = 10'000},
                              {.strata = 100, .matching_rows = 10'000},
                              {.strata = 5, .matching_rows = 10'000}};
  std::vector<int> target(3);
  PlanNextRound(q, o, target);
  EXPECT_EQ(target, (std::vector<int>{7, 100, 6}));
}

TEST(PlannerTest, JumpMeetsTheTargetVarianceAtLeastCost) {
  // Two queries with equal variance now (at 5 %), one ten times as costly per unit ratio.
  std::vector<QueryView> q = {
      {.strata = 5, .matching_rows = 100'000, .ns_per_row = 1, .variance = 4.0},
      {.strata = 5, .matching_rows = 1'000'000, .ns_per_row = 1, .variance = 4.0}};
  std::vector<int> target(2);
  ASSERT_TRUE(PlanJump(q, 1.0, target));
  // Predicted variance at the plan must be <= the target, and the cheap query grows more.
  double var = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    const double p0 = 0.05, p = target[i] / 100.0;
    const double a = q[i].variance / (1 / p0 - 1);
    var += a * (1 / p - 1);
  }
  EXPECT_LE(var, 1.0);
  EXPECT_GT(target[0], target[1]);
  EXPECT_GE(target[1], 5);
  // The Lagrange optimum is p ∝ sqrt(a / c): the cheap query's ratio is ~sqrt(10) x larger.
  EXPECT_NEAR(static_cast<double>(target[0]) / target[1], std::sqrt(10.0), 0.6);
}

TEST(PlannerTest, JumpGoesExactWhenTheTargetIsUnreachable) {
  std::vector<QueryView> q = {{.strata = 5, .matching_rows = 10'000, .ns_per_row = 1, .variance = 4.0},
                              {.strata = 100, .matching_rows = 10'000, .ns_per_row = 1, .variance = 0}};
  std::vector<int> target(2);
  EXPECT_FALSE(PlanJump(q, 0.0, target));
  EXPECT_EQ(target, (std::vector<int>{100, 100}));
  // A reachable target that rounding would not move still grows something.
  ASSERT_TRUE(PlanJump(q, 3.99, target));
  EXPECT_GT(target[0], 5);
}

TEST(PlannerTest, CostsAndValidation) {
  std::vector<QueryView> q = {{.strata = 50, .matching_rows = 1000, .ns_per_row = 2},
                              {.strata = 100, .matching_rows = 1000, .ns_per_row = 2}};
  EXPECT_DOUBLE_EQ(ExactRemainingCost(q), 1000.0);
  std::vector<int> target = {60, 100};
  EXPECT_DOUBLE_EQ(PlanCost(q, target), 200.0);
  EXPECT_FALSE(Validate({.alpha = 0}).ok());
  EXPECT_FALSE(Validate({.alpha = 1.5}).ok());
  EXPECT_FALSE(Validate({.gamma = -1}).ok());
  EXPECT_TRUE(Validate({}).ok());
}

}  // namespace
}  // namespace apx::planner
