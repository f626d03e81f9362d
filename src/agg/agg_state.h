// agg/agg_state.h
//
// The mergeable states behind agg::Aggregator (internal to agg/; use agg/aggregate.h). Each
// state is a plain struct with Reset / UpdateBatch(span) / Merge, spelled out by the concept
// AggregateState; the estimators that turn a state into an Estimate live in aggregate.cc.
// UpdateBatch is the hot loop: it runs over a plain array with every decision taken before the
// loop, and is called once per batch (the Aggregator's std::visit happens once per batch too).
//
// Thread safety: plain values; const members may be called concurrently, except for
// SampleState, whose mutable buffers (scratch, sorted) are written by the const estimators.
#ifndef APX_AGG_AGG_STATE_H_
#define APX_AGG_AGG_STATE_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "agg/select.h"

namespace apx::agg {

// What every state provides. n() is the number of rows seen.
// clang-format off
template <typename S>
concept AggregateState = std::default_initializable<S> &&
                         requires(S s, const S& cs, std::span<const double> values) {
                           { s.Reset() };
                           { s.UpdateBatch(values) };
                           { s.Merge(cs) };
                           { cs.n() } -> std::convertible_to<int64_t>;
                         };
// clang-format on

// count: only the number of rows.
struct CountState {
  int64_t rows = 0;

  int64_t n() const { return rows; }
  void Reset() { rows = 0; }
  void UpdateBatch(std::span<const double> values) { rows += static_cast<int64_t>(values.size()); }
  void Merge(const CountState& other) { rows += other.rows; }
};

// Central moments for sum/avg (kOrder 2) and var/std (kOrder 4): rows, mean and the central
// sums m_k = Σ(x − mean)^k. UpdateBatch computes each chunk of kChunk rows with a two-pass
// loop (mean, then central sums; both vectorise) and folds the chunk in with the pairwise
// update of Chan, Golub & LeVeque (1979) extended to m₃, m₄ by Terriberry (2007) / Pébay (2008).
// For one-row chunks this is exactly Welford's update; for big chunks it is faster and at least
// as accurate.
template <int kOrder>
struct MomentState {
  static_assert(kOrder == 2 || kOrder == 4, "moments are kept to order 2 or 4");
  static constexpr size_t kChunk = 1024;  // 8 KiB of doubles: both passes stay in L1

  int64_t rows = 0;
  double mean = 0;
  double m2 = 0;
  double m3 = 0;  // kOrder == 4 only
  double m4 = 0;  // kOrder == 4 only
  double lo = std::numeric_limits<double>::infinity();   // smallest value seen
  double hi = -std::numeric_limits<double>::infinity();  // largest value seen

  int64_t n() const { return rows; }
  void Reset() { *this = MomentState(); }
  void UpdateBatch(std::span<const double> values);
  void Merge(const MomentState& other) {
    Combine(other.rows, other.mean, other.m2, other.m3, other.m4);
    lo = std::min(lo, other.lo);
    hi = std::max(hi, other.hi);
  }
  // Pairwise update with a second set of (rows_b, mean_b, m2_b, m3_b, m4_b).
  void Combine(int64_t rows_b, double mean_b, double m2_b, double m3_b, double m4_b);
};

// min (kMax = false) / max (kMax = true): the kKeep most extreme DISTINCT values, kept in
// "oriented" form o = kMax ? x : −x so that larger is more extreme, sorted descending.
template <bool kMax>
struct ExtremeState {
  static constexpr int kKeep = 11;  // t₁ … t₁₁: 10 excesses over t₁₁ for the tail scale

  int64_t rows = 0;
  int count = 0;  // distinct values held, ≤ kKeep
  double top[kKeep] = {};

  int64_t n() const { return rows; }
  void Reset() {
    rows = 0;
    count = 0;
  }
  void UpdateBatch(std::span<const double> values);
  void Merge(const ExtremeState& other);
  // Adds one oriented value (slow path: only when it beats the current kKeep-th).
  void Insert(double oriented);
  // The most extreme value in natural orientation. REQUIRES: count > 0.
  double Extreme() const { return kMax ? top[0] : -top[0]; }
};

// median/quantile/count_distinct: every sampled value, in arrival order. The estimators work on
// mutable copies so that Finalize can stay const:
//   scratch — quantiles: a copy reordered by SelectNth (agg/select.h). Select() remembers the
//             ranks it has placed since the copy was made (with every tie of each selected
//             value: on discrete data the interval's ends usually fall among them and cost
//             nothing); they split the copy into segments
//             whose values lie between theirs, so every further rank (the interval's ends,
//             another quantile of the same values) costs only its segment. The copy is
//             remade only when the values changed (O(n) per round, not per quantile);
//   sorted  — count_distinct: values[0, sorted.size()) in ascending order, extended on each call
//             by sorting only the new rows and merging (O(Δ log Δ + n) per round, not
//             O(n log n)); valid because values only grow between Reset()s.
struct SampleState {
  std::vector<double> values;
  mutable std::vector<double> scratch;
  mutable std::vector<double> sorted;
  mutable std::vector<double> merge_buffer;

  int64_t n() const { return static_cast<int64_t>(values.size()); }
  void Reset() {  // keeps capacity
    values.clear();
    sorted.clear();
    Invalidate();
  }
  void UpdateBatch(std::span<const double> batch) {
    values.insert(values.end(), batch.begin(), batch.end());
    Invalidate();
  }
  void Merge(const SampleState& other) {
    values.insert(values.end(), other.values.begin(), other.values.end());
    Invalidate();
  }
  // All values in ascending order (see `sorted`). The reference stays valid until the next
  // non-const call or SortedValues() call.
  const std::vector<double>& SortedValues() const;
  // The k-th smallest (0-based) of `values`, plus `extra->values` when extra is given (the
  // union), selected in `scratch` (see above). REQUIRES: k < the number of values.
  double Select(size_t k, const SampleState* extra = nullptr) const;
  // After Select: the values (or the union) in some order, valid until the next non-const call.
  std::span<const double> Selected() const { return scratch; }

 private:
  void Invalidate() { selected_from_ = kNone; }
  static constexpr size_t kNone = ~size_t{0};
  // Ranges of ranks in their final place (SelectNth's PlacedRange), disjoint, ascending.
  mutable std::vector<PlacedRange> placed_;
  mutable size_t selected_from_ = kNone;       // values.size() the copy was made from
  mutable const SampleState* selected_with_ = nullptr;  // the union's other part, if any
  mutable size_t selected_with_n_ = 0;
};

static_assert(AggregateState<CountState>);
static_assert(AggregateState<MomentState<2>>);
static_assert(AggregateState<MomentState<4>>);
static_assert(AggregateState<ExtremeState<false>>);
static_assert(AggregateState<ExtremeState<true>>);
static_assert(AggregateState<SampleState>);

}  // namespace apx::agg

#endif  // APX_AGG_AGG_STATE_H_
