// agg/aggregate.h
//
// Aggregation operators and their estimators over a growing random sample.
//
// An Aggregator holds the incremental state of ONE aggregation (count, sum, avg, var, std, min,
// max, median, quantile, count_distinct) over the rows that match one query: an EXACT part
// (UpdateExact: rows read whole, the store's outlier index) and the REST, of which the rows
// seen by Update are a uniform sample of ratio p = n / N_rest (the realised ratio; the sample
// only grows). Finalize(p) turns the state into an Estimate: a point estimate of the aggregate
// over ALL matching rows plus its standard error, which the propagator reads as a normal
// N(value, std²). With p == 1 the rest is read whole and the answer is exact (std == 0).
//
// Estimators (the one-line formula is repeated at each implementation in aggregate.cc;
// docs/algorithms.md has the reasoning). N_rest = n/p; "+ exact" = the exact part's share.
//   count   n_e + n/p, std = √(n(1−p))/p                 Horvitz–Thompson (pipelines serve N)
//   sum     S_e + N_rest·x̄, std = N_rest·s/√n·√(1−p)   mean per unit with known N
//   avg     (S_e + N_rest·x̄)/N, std = N_rest/N·s/√n·√(1−p)   CLT + finite-population corr.
//   var     pooled moments of both parts; Var(s²) ≈ (m₄ − (n−3)/(n−1)·s⁴)/n·(1−p), delta method
//   std     s, Var(s) ≈ Var(s²)/(4s²)                     delta method
//   median, quantile(q)
//           x_(r), r = QuantileRank(q, n) = max(1, ⌈q·n⌉) (the same definition on all rows at
//           p == 1); std = half-width of the order-statistic (binomial) interval
//           [x_(l), x_(u)], l,u = n·q ∓ (z·√(n·q(1−q)(1−p)) + p) (Woodruff 1952; FPC on the
//           ranks; + p: a continuity correction of one population rank, p sample ranks, for
//           the discreteness of the few unseen rows at large p), over z; when x_(r) is itself an end of the interval (ties), the whole
//           width over z. With an exact part, the rest's quantile at level (r − e)/N_rest.
//   min, max, count_distinct: there is no honest CLT; see "Conservative estimators" below.
// Unseen rows (set_value_range): sum/avg/var/std add the rule-of-three bound of rows beyond
// the sample's range; a quantile interval that collapses onto one value gets gap·√risk.
//
// Conservative estimators. Their `std` describes a deliberately wide symmetric envelope:
// value ± z·std (z = 1.959964) contains a one-sided bound that holds with probability ≥ 95%
// under the stated model, so coverage is at or above nominal; callers should grow these
// queries to exact when the model is sensitive to them.
//   max (min is the mirror image, on −x): value = sample max t₁ (never above the true max).
//     The state keeps the K+1 = 11 largest DISTINCT values t₁ > … > t_{k+1} (k ≤ 10).
//     Tail model, chosen by the sign of t_{k+1}:
//     * t_{k+1} > 0: Pareto (power-law) tail; Hill (1975) γ̂ = (1/k)Σ_{i≤k} ln(t_i/t_{k+1});
//       U = t₁·e^{c·γ̂}. Exact for power laws, conservative for every lighter (Gumbel-domain:
//       normal, log-normal, gamma) positive tail.
//     * t_{k+1} ≤ 0: exponential excesses; â = (1/k)Σ_{i≤k}(t_i − t_{k+1}); U = t₁ + c·â.
//     c is a pivotal 95% prediction bound: the number of unseen rows above t₁ is Geometric(p)
//     (exact under Bernoulli sampling), so P(true max > U) ≤ (1−p)/p·E[S(U − t₁)], and
//     k·γ̂/γ (k·â/a) ~ Gamma(k, 1) turns E[S] into the Gamma MGF (1 + c/k)^{−k}. Setting
//     (1−p)/p·(1 + c/k)^{−k} = α gives c = k·((α·p/(1−p))^{−1/k} − 1), α = 0.05 (c = 0 when
//     p ≥ 1/(1+α): the sample max is then the true max with probability ≥ 1 − α).
//     std = (U − t₁)/z, so value ± z·std contains [t₁, U]. The exponential form alone covered
//     log-normal(0, 1) maxima only ~91% of the time at p = 0.1 (n ≈ 2,000), hence the Pareto
//     form for positive tails; the price is width on skewed data (there U − t₁ is several
//     times t₁). A sample with one distinct value reaches the rest's range end (set_value_range;
//     std 0 without a range), and U is capped at it. U − t₁ is capped at kMaxReach
//     so that no inf reaches the propagator. Ties at the top (discrete data) are handled by
//     keeping distinct values only.
//   count_distinct: envelope [d, U], U = d + B⁺ + 1.645·√B⁺, B⁺ = (1−p)/p·f₁⁺ (E[unseen
//     values] ≤ (1−p)/p·E[f₁] for every frequency profile; f₁⁺ the 95 % Poisson upper bound
//     of the singleton count, ≈ 3 when f₁ = 0), capped by set_distinct_bound; value = the
//     midpoint, std = (U − d)/(2z). Values are compared with == (−0.0 equals 0.0).
//
// Measured coverage of value ± 1.96·std (agg_test.cc: 20,000-row tables, p = 0.1, n ≈ 2,000,
// 2,000 samples): sum, avg, median, quantile(0.9) 93.4–95.4% on normal and log-normal(0,1)
// data; through the store with the outlier index (backend_test.cc, n 40–2,000, p 0.02–0.9,
// normal, log-normal(1.5), Pareto(1.3), rare jumps; 220 cells, 1,200–2,400 replicates each,
// max excluded): mean 95.9 %, cells 92.8–99.9 %: quantiles 93.5–98.3 %, sum/avg/std lowest at
// p = 0.9 and n = 40 on Pareto (92.8 %), highest (≥ 99 %) at n = 40 on heavy tails where the
// rule-of-three bound dominates; max 99.5–100 % (one-sided envelope); var/std
// 94.1–94.7% on normal and log-normal(0,0.5) data. Known shortfalls: (1) var/std
// on high-kurtosis data, where s² is right-skewed at this n (log-normal(0,1): 83–89%); (2) the
// quantile interval is made symmetric around x_(r), which loses ~1 point where the density
// slopes (94.0–94.8% over 20,000 samples on log-normal data). min/max/count_distinct: 93.6–100%
// on one fixed table (the true min/max is a single row, so coverage varies from table to
// table; 97.6–99.9% on other normal tables).
//
// Missing values and small samples. Update REQUIRES finite values (the store never produces
// NaN; debug builds check). Empty data at p == 1: count, sum and count_distinct are 0, every
// other operator is NaN (NaN means "missing" to the model); var/std of one row are NaN too
// (ddof = 1). At p < 1 with n < kMinSupport the Estimate has usable == false: value and std are
// filled where they can be computed (possibly NaN) and must not be used; grow the sample first.
//
// Thread safety: an Aggregator is owned by one thread (the request's executor). Finalize() is
// const but sorts a mutable scratch buffer, so even const calls on ONE object must not run
// concurrently; distinct objects are independent. Estimate and the free functions are plain
// values / pure and are safe everywhere.
#ifndef APX_AGG_AGGREGATE_H_
#define APX_AGG_AGGREGATE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <variant>

#include "agg/agg_state.h"
#include "common/status.h"

namespace apx::agg {

enum class AggOp { kCount, kSum, kAvg, kVar, kStd, kMin, kMax, kMedian, kQuantile, kCountDistinct };

// Parses "count", "sum", "avg", "var", "std", "min", "max", "median", "quantile",
// "count_distinct" (exact, lower case). Returns InvalidArgument naming the bad name and listing
// the valid ones otherwise.
Result<AggOp> ParseAggOp(std::string_view name);

// The name ParseAggOp accepts for `op`.
std::string_view AggOpName(AggOp op);

// True for median/quantile/count_distinct: their state keeps every sampled value (memory O(n)).
// The others keep O(1) state (moments, or the 11 most extreme distinct values for min/max).
bool NeedsValues(AggOp op);

// Minimum sample size for an approximate estimate to be used (CLT rule of thumb).
constexpr int64_t kMinSupport = 30;

// Two-sided 95% normal quantile used by the interval-based estimators (median, quantile,
// min, max, count_distinct) to turn an interval half-width into a std.
constexpr double kZ95 = 1.959964;

// Cap on the reach U − t₁ of the min/max envelope (a finite stand-in for "unbounded").
constexpr double kMaxReach = 1e300;

// 1-based rank of the q-quantile of n sorted values: max(1, ⌈q·n⌉), clamped to n (the
// "inverse empirical CDF" definition, Hyndman & Fan type 1). q·n is computed in double with a
// relative slack of 8 ulp so that e.g. 0.9·10 is rank 9, not 10. REQUIRES: n ≥ 1, 0 ≤ q ≤ 1.
int64_t QuantileRank(double q, int64_t n);

// A partial aggregate computed elsewhere (a database, another shard) over a set of rows:
// their count, power sums about `center` (s_k = Σ(x − center)^k, k = 1..4; choose a center
// near the values, e.g. a previous mean, to keep the sums well conditioned) and their range.
// Enough for count, sum, avg, var and std (PushesDown); the others need the values.
struct PartialMoments {
  int64_t rows = 0;
  double center = 0;
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  double lo = 0, hi = 0;  // smallest and largest value (ignored when rows == 0)
};

// True for count/sum/avg/var/std: a PartialMoments carries everything their state needs.
bool PushesDown(AggOp op);

struct Estimate {
  double value = 0;    // point estimate of the exact aggregate over ALL matching rows
  double std = 0;      // standard error of `value` (0 when exact)
  int64_t n = 0;       // rows read (sample size, exact part included)
  double N = 0;        // matching rows: exact part + n_rest / p
  bool exact = false;  // p == 1: value is exact, std == 0
  bool usable = true;  // false when !exact and n < kMinSupport: the caller must grow the sample
};

// Incremental state of ONE aggregation over a growing Bernoulli sample (each matching row is in
// the sample independently with probability p; the sample only grows). Reusable across requests
// via Reset(). Copyable (a copy is a snapshot of the state).
class Aggregator {
 public:
  // q is used by kQuantile (kMedian forces 0.5). REQUIRES: 0 ≤ q ≤ 1.
  explicit Aggregator(AggOp op, double q = 0.5);

  AggOp op() const { return op_; }
  // The quantile level (0.5 for kMedian; meaningless for the other operators).
  double q() const { return q_; }

  // Forgets every row. Keeps allocated capacity, so reuse does not allocate.
  void Reset();

  // Adds a batch of sampled rows. Hot loop: one dispatch per batch, plain loops over the span,
  // no allocation beyond the growth of the value buffer (NeedsValues ops).
  // REQUIRES: every value is finite (APX_DCHECK in debug builds).
  // `values` is only read during the call.
  void Update(std::span<const double> values);

  // Adds rows of the EXACT part: rows that are not sampled but read whole (the store's outlier
  // index). The aggregate is over the exact part plus the sampled rest; Finalize's p is the
  // sampling ratio of the rest only. Same hot-loop contract as Update.
  void UpdateExact(std::span<const double> values);

  // Adds rows summarised by `partial` to the sampled part (exact == false) or the exact part:
  // the same state as Update/UpdateExact over those rows, up to floating-point rounding.
  // REQUIRES: PushesDown(op()); every summarised value finite.
  void UpdatePartial(const PartialMoments& partial, bool exact);

  // Adds the rows of `other` (Chan et al. 1979 / Pébay 2008 pairwise merge of the moments;
  // values appended; extremes merged), sampled part to sampled part and exact part to exact
  // part. The result equals one Update over both row sets up to floating-point rounding.
  // REQUIRES: same op and q; &other != this.
  void Merge(const Aggregator& other);

  // Estimate of the aggregate over all matching rows: the exact part (UpdateExact) plus the
  // rest, of which the rows seen by Update are a uniform sample of ratio p = n / N_rest (the
  // realised ratio: N_rest is estimated as n / p, exactly right when the caller knows N_rest).
  // REQUIRES: 0 < p ≤ 1 (checked). p == 1 ⇒ exact.
  Estimate Finalize(double p) const;

  // The range [lo, hi] every value of the sampled rest lies in (the store knows it per group:
  // the column's range without the outlier index's rows), known before sampling. Rows the
  // sample has not seen can lie outside the range the sample shows: with 95 % confidence at
  // most 3/n of the rest lies above the sample's largest value (rule of three), and 3/n below
  // its smallest, by at most the distance to the range's ends. sum/avg/var/std add that bound
  // to their standard error (a sample that shows no variation at all therefore gets the
  // standard error of the bound, e.g. avg: 3R / (1.96 n) · √(1 − p), instead of certainty);
  // min/max cap their envelope at the range and use it when the sample holds one value;
  // quantiles use it when the sample holds one value. Without a range (NaN, the default) these
  // bounds are 0. Survives Reset().
  void set_value_range(double lo, double hi);

  // An upper bound on the distinct values of the sampled rest (e.g. the distinct values of the
  // column in the whole key group, known at build time; < 0: unknown, the default).
  // count_distinct caps its envelope with it. Survives Reset().
  void set_distinct_bound(int64_t bound) { distinct_bound_ = bound; }

  // Whether the caller knows N_rest (the default) or estimates it as n / p from the design's
  // inclusion probability p (a database backend that does not count a window before sampling
  // it). sum then adds the count's own Horvitz–Thompson variance. Survives Reset().
  void set_population_known(bool known) { population_known_ = known; }

  // Makes this aggregator read the sampled values of `owner` instead of keeping its own: for
  // several quantiles (or a quantile and count_distinct) of one query, one value buffer and
  // one selection pass (SampleState::Select) serve them all. Update/UpdateExact on this
  // aggregator then do nothing: feed the owner only. REQUIRES: both keep values (NeedsValues),
  // the owner outlives this aggregator and is not itself sharing.
  void ShareValuesWith(const Aggregator& owner);

  // Rows seen in the sampled part (sample size).
  int64_t n() const;
  // Rows seen in the exact part.
  int64_t exact_n() const;

  // Capacity of the value buffer (0 for ops that do not keep values). Test hook.
  size_t ValuesCapacityForTesting() const;

 private:
  using State = std::variant<CountState, MomentState<2>, MomentState<4>, ExtremeState<false>,
                             ExtremeState<true>, SampleState>;

  static State MakeState(AggOp op);
  // The sampled and exact values (this aggregator's, or the owner's when sharing).
  std::pair<const SampleState&, const SampleState&> Values() const {
    const Aggregator& from = values_from_ != nullptr ? *values_from_ : *this;
    return {std::get<SampleState>(from.state_), std::get<SampleState>(from.exact_)};
  }

  AggOp op_;
  double q_;
  double range_lo_, range_hi_;  // NaN: unknown
  int64_t distinct_bound_ = -1;  // < 0: unknown
  bool population_known_ = true;
  State state_;                 // the sampled rest
  State exact_;                 // the exact part (UpdateExact)
  const Aggregator* values_from_ = nullptr;  // ShareValuesWith: the owner of the values
};

}  // namespace apx::agg

#endif  // APX_AGG_AGGREGATE_H_
