// planner/round_cost.h
//
// What one round costs on a remote backend, learned from the rounds a pipeline has run.
//
// A round is one statement per shard. On ClickHouse its time is a fixed part (the round trip,
// parsing, planning), a part per UNION ALL branch (one per query read: about 1 ms each on
// 18.16, docs/profile.md) and a part per row read. A fit on rows alone lets the branches'
// cost leak into the cost per row, which then swings by 100x with the mix of queries a round
// reads (1.5 to 200 ns per row on flight-delay), and the cut-over with it.
//
// Thread safety: RoundCostFit is not thread-safe (Pipeline guards it with a mutex).
#ifndef APX_PLANNER_ROUND_COST_H_
#define APX_PLANNER_ROUND_COST_H_

#include <cstdint>

namespace apx::planner {

struct RoundCost {
  double fixed_ns = 0;       // per statement
  double ns_per_branch = 0;  // per query the round reads
  double ns_per_row = 2.0;   // per row read
  // Predicted time (ns) of a round reading `branches` queries and `rows` rows.
  double Of(int branches, double rows) const {
    return fixed_ns + ns_per_branch * branches + ns_per_row * rows;
  }
};

// Exponentially weighted least squares of a round's time on (1, branches, rows), with every
// coefficient kept ≥ 0 (non-negative least squares, solved exactly over the subsets of the
// three regressors). Before two rounds, or when the rounds so far cannot tell the parts apart
// (always the same branches, say), the parts the data does not show are 0: a constant number
// of branches folds into the fixed part, which predicts those rounds the same.
class RoundCostFit {
 public:
  // `keep`: weight of the past per new round (0.98: about 50 rounds of memory).
  // `default_ns_per_row`: the cost per row before any round.
  explicit RoundCostFit(double keep = 0.98, double default_ns_per_row = 2.0)
      : keep_(keep), default_ns_per_row_(default_ns_per_row) {}

  void Add(int branches, int64_t rows, double ns);
  RoundCost Get() const;
  double rounds_weight() const { return s_[0][0]; }

 private:
  double keep_, default_ns_per_row_;
  // Weighted sums: s_[i][j] = Σ x_i x_j over x = (1, branches, rows); sy_[i] = Σ x_i y; syy_ = Σ y².
  double s_[3][3] = {};
  double sy_[3] = {};
  double syy_ = 0;
};

}  // namespace apx::planner

#endif  // APX_PLANNER_ROUND_COST_H_
