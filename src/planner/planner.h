// planner/planner.h
//
// Decides, per round, which aggregation query gets more sample, and when reading the rest
// exactly is cheaper than going on approximating (DESIGN §7; biathlon-spec B.8).
//
// Samples are counted in strata (1 / kNumStrata of a query's rows each, the "granule").
// Round 0 gives every query ratio α (at least the minimum support in expected rows). Each later
// round hands out γ · (#queries) granules, highest priority first, where
//   priority_q = S1_q / (w_q · remaining_q),
// S1 is the query's first-order Sobol index, w_q its cost per unit ratio (matching rows × cost
// per row) and remaining_q = 1 − p_q: influential, cheap and nearly finished queries go first.
//
// All functions are pure; safe to call from any thread.
#ifndef APX_PLANNER_PLANNER_H_
#define APX_PLANNER_PLANNER_H_

#include <cstdint>
#include <span>

#include "common/status.h"

namespace apx::planner {

inline constexpr int kNumStrata = 100;

struct PlannerOptions {
  double alpha = 0.05;        // initial sample ratio of every aggregation query
  double gamma = 1.0;         // granules per query per round (γ · #queries per round)
  int64_t min_support = 30;   // expected sample rows below which an estimate is not used
  // Queries matching at most this many rows are read exactly from the start: reading them is
  // cheaper than the bookkeeping of sampling them.
  int64_t exact_below_rows = 1000;
};

// Validates option ranges; InvalidArgument names the bad option.
Status Validate(const PlannerOptions& options);

// What the planner knows about one query after a round.
struct QueryView {
  int strata = 0;             // strata read so far, 0..kNumStrata
  int64_t matching_rows = 0;  // rows the query matches (known or estimated)
  double s1 = 0;              // first-order Sobol index from the last propagation
  bool usable = true;         // false: the estimate lacks minimum support
  double ns_per_row = 1.0;    // measured cost of reading and aggregating one row
  double variance = 0;        // output variance attributed to this query at its current ratio
};

// Strata to read in round 0 for a query matching `matching_rows` rows.
int InitialStrata(int64_t matching_rows, const PlannerOptions& options);

// Strata needed so that the expected sample reaches the minimum support (kNumStrata when the
// query is so small that only exact makes sense).
int SupportStrata(int64_t matching_rows, const PlannerOptions& options);

// Fills `target` (same size as `queries`) with each query's strata after the next round:
// unusable queries are first grown to their minimum support (that round does nothing else);
// otherwise γ · #queries granules go to the queries by priority. REQUIRES: sizes match.
void PlanNextRound(std::span<const QueryView> queries, const PlannerOptions& options,
                   std::span<int> target);

// The "jump" plan (beyond the paper, biathlon-spec F.1.6 / F.3.5): instead of fixed steps,
// predict from std ∝ √((1 − p) / p) how much sample each query needs for the output variance
// to fall to `target_variance`, at the least cost. With V_q(p) = a_q (1/p − 1) and cost c_q p,
// minimising Σ c_q p_q subject to Σ V_q(p_q) ≤ target gives p_q ∝ √(a_q / c_q) (Lagrange),
// clamped to [current ratio, 1] and re-solved for the unclamped queries. Fills `target` with
// strata per query; at least one query grows. Returns false when even reading everything
// is needed (every open query goes to kNumStrata).
bool PlanJump(std::span<const QueryView> queries, double target_variance, std::span<int> target);

// Cost (ns) of reading every query to the end, given the measured costs per row.
double ExactRemainingCost(std::span<const QueryView> queries);
// Cost (ns) of the rows a plan adds.
double PlanCost(std::span<const QueryView> queries, std::span<const int> target);

}  // namespace apx::planner

#endif  // APX_PLANNER_PLANNER_H_
