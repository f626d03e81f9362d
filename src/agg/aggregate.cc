// agg/aggregate.cc: operator names, Aggregator dispatch and the estimators (state → Estimate).
#include "agg/aggregate.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/math/distributions/binomial.hpp>
#include <boost/math/special_functions/gamma.hpp>

#include "agg/select.h"

namespace apx::agg {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct OpName {
  AggOp op;
  std::string_view name;
};

constexpr std::array<OpName, 10> kOpNames = {{
    {AggOp::kCount, "count"},
    {AggOp::kSum, "sum"},
    {AggOp::kAvg, "avg"},
    {AggOp::kVar, "var"},
    {AggOp::kStd, "std"},
    {AggOp::kMin, "min"},
    {AggOp::kMax, "max"},
    {AggOp::kMedian, "median"},
    {AggOp::kQuantile, "quantile"},
    {AggOp::kCountDistinct, "count_distinct"},
}};

// One-sided miss probability of the min/max envelope [t₁, U].
constexpr double kExtremeAlpha = 0.05;
// Rule of three: with 95 % confidence at most 3/n of the rows lie beyond what n rows show.
constexpr double kRuleOfThree = 3.0;
constexpr double kZ999 = 3.2905;
// Continuity correction of the quantile interval's rank reach, in population ranks.
constexpr double kRankContinuity = 1.0;

// Fields every estimator shares. n_rest rows sampled at ratio p from the rest, n_exact rows of
// the exact part read whole.
Estimate BaseEstimate(int64_t n_rest, int64_t n_exact, double p) {
  Estimate est;
  est.n = n_rest + n_exact;
  est.exact = p == 1.0;
  const double rest = est.exact ? static_cast<double>(n_rest) : static_cast<double>(n_rest) / p;
  est.N = static_cast<double>(n_exact) + rest;
  est.usable = est.exact || n_rest >= kMinSupport;
  return est;
}

// How far rows the sample has not seen may lie beyond the sample's range [seen_lo, seen_hi]
// inside the rest's known range [lo, hi] (0 when the range is unknown).
struct Unseen {
  double below = 0;  // seen_lo − lo
  double above = 0;  // hi − seen_hi
  double Max() const { return std::max(below, above); }
};

Unseen UnseenBeyond(double seen_lo, double seen_hi, double lo, double hi) {
  Unseen u;
  if (std::isfinite(lo) && seen_lo > lo) u.below = seen_lo - lo;
  if (std::isfinite(hi) && hi > seen_hi) u.above = hi - seen_hi;
  return u;
}

// Standard error of the rest's sample mean: CLT with the finite-population correction, plus
// the rule-of-three bound of what lies beyond the sample's range: at most 3/n of the rows,
// each at most Unseen::Max() further out, shift the mean by at most 3·R_out/n (as a normal
// standard error: / 1.96), added in quadrature. A constant sample gets exactly that bound.
template <int kOrder>
double RestMeanSe(const MomentState<kOrder>& r, double p, double lo, double hi) {
  const int64_t n = r.rows;
  if (n < 2) return kNaN;
  const double nd = static_cast<double>(n);
  const double clt_var = r.m2 / (nd - 1.0) / nd;
  const double floor = kRuleOfThree * UnseenBeyond(r.lo, r.hi, lo, hi).Max() / (kZ95 * nd);
  return std::sqrt((clt_var + floor * floor) * (1.0 - p));
}

Estimate FinalizeCount(const CountState& rest, const CountState& exact, double p) {
  Estimate est = BaseEstimate(rest.rows, exact.rows, p);
  const double n = static_cast<double>(rest.rows);
  // Horvitz–Thompson under Bernoulli(p): N̂ = n/p, Var(N̂) = N(1−p)/p, estimated by n(1−p)/p².
  est.value = static_cast<double>(exact.rows) + n / p;
  est.std = est.exact ? 0.0 : std::sqrt(n * (1.0 - p)) / p;
  return est;
}

// sum and avg: exact part + N_rest · (rest mean), N_rest = n / p (the store knows it, so this
// is the mean-per-unit estimator with known N: its error is N_rest · se(x̄), not the
// Horvitz–Thompson (1−p)/p·Σx² that ignores the known N).
Estimate FinalizeSumOrAvg(const MomentState<2>& rest, const MomentState<2>& exact, double p,
                          bool avg, double lo, double hi, bool population_known) {
  Estimate est = BaseEstimate(rest.rows, exact.rows, p);
  const double n_exact = static_cast<double>(exact.rows);
  const double exact_sum = n_exact * exact.mean;
  const double n_rest = est.N - n_exact;
  const double rest_sum = rest.rows > 0 ? n_rest * rest.mean : 0.0;
  if (est.N == 0) {
    est.value = avg ? kNaN : 0.0;
    return est;
  }
  if (rest.rows == 0 && !est.exact) {  // nothing sampled yet (never usable)
    est.value = kNaN;
    est.std = kNaN;
    return est;
  }
  const double scale = avg ? 1.0 / est.N : 1.0;
  est.value = (exact_sum + rest_sum) * scale;
  if (est.exact) return est;
  est.std = n_rest * RestMeanSe(rest, p, lo, hi) * scale;
  if (!avg && !population_known) {
    // N_rest is itself estimated (n/p, Horvitz–Thompson: Var = N_rest·(1 − p)/p), so the sum
    // N_rest·x̄ also carries x̄²·Var(N_rest).
    est.std = std::sqrt(est.std * est.std + rest.mean * rest.mean * n_rest * (1.0 - p) / p);
  }
  return est;
}

// Sample variance s² (ddof 1) of the rest and the delta-method variance of s², with the
// rule-of-three bound of unseen rows: at most f = 3/n of the rows lie beyond the sample's
// range, each adding at most (end − x̄)² − (seen end − x̄)² to the squared deviations, so s²
// may be short by f·that (as a standard error: / 1.96). A constant sample gets f·R² / 1.96.
struct VarianceParts {
  double s2;
  double var_s2;      // delta method + unseen bound, FPC applied
  double unseen_s2;   // the unseen bound on s² alone (before / 1.96 and the FPC)
};

VarianceParts Variance(const MomentState<4>& state, double p, double lo, double hi) {
  const double n = static_cast<double>(state.rows);
  const double s2 = state.m2 / (n - 1.0);
  const double m4 = state.m4 / n;  // plug-in 4th central moment
  // Delta method: Var(s²) ≈ (m₄ − (n−3)/(n−1)·s⁴)/n.
  const double delta_var = std::max(0.0, (m4 - (n - 3.0) / (n - 1.0) * s2 * s2) / n);
  const Unseen unseen = UnseenBeyond(state.lo, state.hi, lo, hi);
  const double mean = state.mean;
  double extra = 0;
  if (unseen.above > 0) {
    extra = std::max(extra, (hi - mean) * (hi - mean) - (state.hi - mean) * (state.hi - mean));
  }
  if (unseen.below > 0) {
    extra = std::max(extra, (mean - lo) * (mean - lo) - (mean - state.lo) * (mean - state.lo));
  }
  const double unseen_s2 = kRuleOfThree / n * extra;
  const double floor = unseen_s2 / kZ95;
  return {s2, (delta_var + floor * floor) * (1.0 - p), unseen_s2};
}

Estimate FinalizeVarOrStd(const MomentState<4>& rest, const MomentState<4>& exact, double p,
                          bool take_sqrt, double lo, double hi) {
  Estimate est = BaseEstimate(rest.rows, exact.rows, p);
  if (est.exact) {
    // Exact: pool the two parts' moments.
    MomentState<4> all = rest;
    all.Merge(exact);
    est.value = all.rows < 2 ? kNaN : all.m2 / static_cast<double>(all.rows - 1);
    if (take_sqrt) est.value = std::sqrt(est.value);
    return est;
  }
  if (rest.rows < 2) {  // ddof = 1 needs two rows
    est.value = kNaN;
    est.std = kNaN;
    return est;
  }
  const VarianceParts parts = Variance(rest, p, lo, hi);
  double s2 = parts.s2;
  double var_s2 = parts.var_s2;
  double unseen_s2 = parts.unseen_s2;
  if (exact.rows > 0) {
    // Population of the window = exact part ∪ rest (N_rest = n / p rows with variance s²):
    //   M2 = M2_exact + (N_rest − 1)·s² + δ²·n_e·N_rest/N,  δ = x̄_rest − x̄_exact,
    //   s²_all = M2 / (N − 1);
    // its variance from Var(s²) and, through δ, from the rest mean's se (independent terms).
    const double n_e = static_cast<double>(exact.rows);
    const double n_rest = est.N - n_e;
    const double total = est.N;
    const double delta = rest.mean - exact.mean;
    const double m2 = exact.m2 + (n_rest - 1.0) * s2 + delta * delta * n_e * n_rest / total;
    const double w = (n_rest - 1.0) / (total - 1.0);
    const double se_mean = RestMeanSe(rest, p, lo, hi);
    const double d_delta = 2.0 * delta * n_e * n_rest / total / (total - 1.0);
    s2 = m2 / (total - 1.0);
    var_s2 = w * w * var_s2 + d_delta * d_delta * se_mean * se_mean;
    unseen_s2 *= w;
  }
  const double fpc = std::sqrt(1.0 - p);
  if (!take_sqrt) {
    est.value = s2;
    est.std = std::sqrt(var_s2);
    return est;
  }
  est.value = std::sqrt(s2);
  // Delta method for s = √s²: Var(s) ≈ Var(s²)/(4s²). The unseen bound on s² moves s by at
  // most √(s² + bound) − s, which for a constant sample (s = 0) is √(3/n)·R.
  const double unseen_s = (std::sqrt(s2 + unseen_s2) - est.value) / kZ95 * fpc;
  const double delta_s = s2 > 0.0 ? std::sqrt(var_s2 / (4.0 * s2)) : 0.0;
  est.std = std::max(delta_s, unseen_s);
  return est;
}

// A quantile interval that collapsed onto one value v even at 99.9 %: the sample says "v" with
// overwhelming odds but not certainty. Per side, the risk that the true quantile lies beyond
// v is the binomial probability of a sample this one-sided (the rows beyond v on that side
// would have to hold a share of the population the sample under-represents this much), and
// the gap is the distance to the nearest value seen beyond v on that side (the rest's range
// end when none was seen). The std matches the second moment of that two-point error,
// gap·√risk: tiny when the risk is tiny, never 0 unless nothing can lie beyond v.
double CollapsedQuantileStd(const double* data, int64_t n, double q, double v, double lo,
                            double hi) {
  int64_t below = 0, at_or_below = 0;
  double next_below = -INFINITY, next_above = INFINITY;
  for (int64_t idx = 0; idx < n; ++idx) {
    const double x = data[idx];
    if (x < v) {
      ++below;
      next_below = std::max(next_below, x);
    }
    if (x <= v) ++at_or_below;
    if (x > v) next_above = std::min(next_above, x);
  }
  const double nd = static_cast<double>(n);
  const double gap_below = below > 0 ? v - next_below : (std::isfinite(lo) ? v - lo : 0.0);
  const double gap_above =
      at_or_below < n ? next_above - v : (std::isfinite(hi) ? hi - v : 0.0);
  // The quantile is below v only if the share of rows below v reaches q: risk = P(Bin(n, q)
  // ≤ below); above v only if the share above reaches 1 − q: P(Bin(n, 1 − q) ≤ n − at_or_below).
  auto risk = [nd](double share, int64_t seen) {
    if (share <= 0.0) return 0.0;
    if (share >= 1.0) return 1.0;
    return boost::math::cdf(boost::math::binomial_distribution<double>(nd, share),
                            static_cast<double>(seen));
  };
  const double risk_below = gap_below > 0 ? risk(q, below) : 0.0;
  const double risk_above = gap_above > 0 ? risk(1.0 - q, n - at_or_below) : 0.0;
  return std::max(gap_below * std::sqrt(risk_below), gap_above * std::sqrt(risk_above));
}

// Quantile of the rest's sample when there is no exact part: value = x_(r) with
// r = QuantileRank(q, n), selected with SampleState::Select (no full sort; the interval's ranks
// and other quantiles of the same values only select inside their segments).
Estimate FinalizeQuantileSample(const SampleState& state, double q, double p, double lo,
                                double hi, Estimate est) {
  const int64_t n = state.n();
  const int64_t rank = QuantileRank(q, n);
  auto at = [&state](int64_t r) { return state.Select(static_cast<size_t>(r - 1)); };
  est.value = at(rank);
  if (est.exact) return est;
  // Order-statistic (binomial) interval (Woodruff 1952) with the finite-population
  // correction on the rank spread: ranks l,u = ⌊n·q − z·√(n·q(1−q)(1−p))⌋, ⌈… + …⌉, interval
  // [x_(l), x_(u)], std = half-width / z. The reach gets a continuity correction of one
  // population rank (p sample ranks): at large p only a few rows are unseen, the population
  // rank of x_(r) moves in whole steps, and without it quantiles at p = 0.9 covered ~92 %
  // (backend_test's coverage grid); at small p it costs nothing. (Scaling the value width by
  // √(1−p) instead shrank the interval below the gap between neighbouring order statistics at
  // large p: 86–90 % coverage at p = 0.9.)
  const double nd = static_cast<double>(n);
  const double center = nd * q;
  const double fpc = 1.0 - p;
  auto rank_at = [&](double z, bool upper) {
    const double reach = z * std::sqrt(nd * q * (1.0 - q) * fpc) + kRankContinuity * p;
    const double edge = center + (upper ? 1 : -1) * reach;
    return std::clamp<int64_t>(static_cast<int64_t>(upper ? std::ceil(edge) : std::floor(edge)),
                               1, n);
  };
  double lower = at(rank_at(kZ95, false));
  double upper = at(rank_at(kZ95, true));
  double z = kZ95;
  if (upper == lower && n > 1) {
    // Discrete data can make the 95 % interval collapse to one value (x_(l) == x_(u)), which
    // would read as certainty; it only means "this value with probability >= 95 %". Widen to
    // the 99.9 % interval so that the spread reflects the remaining risk; for two-point data
    // near a tie this is the distance between the two values.
    z = kZ999;
    lower = at(rank_at(kZ999, false));
    upper = at(rank_at(kZ999, true));
  }
  if (upper == lower) {
    const std::span<const double> all = state.Selected();
    est.std = CollapsedQuantileStd(all.data(), n, q, est.value, lo, hi) * std::sqrt(1.0 - p);
    return est;
  }
  // On tied (discrete) data the point estimate x_(r) often sits at one END of its interval
  // (e.g. [3, 4] with x_(r) = 3): a normal centred there with the half-width would give the
  // other end, as plausible as x_(r), only the 2.5 % tail, and a model that splits between
  // the two values would almost never see it (2 % confident misses at τ = 0.99 on the stress
  // suite's ties). The interval then lies on one side of x_(r), and its whole width is the
  // reach: std = width / z.
  const bool one_sided = est.value == lower || est.value == upper;
  est.std = (one_sided ? 1.0 : 0.5) * (upper - lower) / z;
  return est;
}

Estimate FinalizeQuantile(const SampleState& rest, const SampleState& exact, double q, double p,
                          double lo, double hi) {
  Estimate est = BaseEstimate(rest.n(), exact.n(), p);
  if (rest.n() + exact.n() == 0) {
    est.value = kNaN;
    return est;
  }
  if (exact.n() == 0) return FinalizeQuantileSample(rest, q, p, lo, hi, est);
  if (est.exact) {
    // Exact: select in the union (the exact rows appended to the copy of the sample).
    const int64_t rank = QuantileRank(q, rest.n() + exact.n());
    est.value = rest.Select(static_cast<size_t>(rank - 1), &exact);
    return est;
  }
  if (rest.n() == 0) {
    est.value = kNaN;
    est.std = kNaN;
    return est;
  }
  // Exact part ∪ rest. The population rank r = ⌈q·N⌉ splits into e exact values ≤ x_(r) and
  // r − e rows of the rest, so x_(r) is the rest's quantile at level (r − e) / N_rest, which
  // the sample estimates as usual (one selection, no sort). e depends on x_(r): start from the
  // exact values below the rest's range (the usual outliers of this very column) and correct
  // it once with the first estimate (exact values inside the rest's range are the outliers of
  // another column of the layout: few, so one correction suffices). When r falls among the
  // exact values below (or above) every possible rest value, x_(r) is that exact value.
  const std::vector<double>& fixed = exact.values;
  const int64_t m = exact.n();
  const double n_rest = est.N - static_cast<double>(m);
  const int64_t rank = QuantileRank(q, std::max<int64_t>(1, std::llround(est.N)));
  auto count_if = [&fixed](auto pred) {
    int64_t count = 0;
    for (double v : fixed) count += pred(v) ? 1 : 0;
    return count;
  };
  auto exact_kth = [&](int64_t k) {  // k-th smallest exact value, 1-based
    return exact.Select(static_cast<size_t>(k - 1));
  };
  const int64_t below = std::isfinite(lo) ? count_if([lo](double v) { return v < lo; }) : 0;
  const int64_t above = std::isfinite(hi) ? count_if([hi](double v) { return v > hi; }) : 0;
  if (rank <= below) {
    est.value = exact_kth(rank);  // below every rest value: exact
    return est;
  }
  if (static_cast<double>(rank - (m - above)) > std::round(n_rest)) {
    est.value = exact_kth(std::min<int64_t>(m, rank - std::llround(n_rest)));  // above: exact
    return est;
  }
  int64_t e = below;
  if (below + above < m) {
    const double level = std::clamp(static_cast<double>(rank - e) / n_rest, 0.0, 1.0);
    const int64_t k = QuantileRank(level, rest.n());
    const double first = rest.Select(static_cast<size_t>(k - 1));
    e = count_if([first](double v) { return v <= first; });
  }
  const double level = std::clamp(static_cast<double>(rank - e) / n_rest, 0.0, 1.0);
  return FinalizeQuantileSample(rest, level, p, lo, hi, est);
}

// Distinct values of a sorted list that do not occur in the sorted list `other` (d), and how
// many of them occur exactly once (f₁).
void CountDistinct(const std::vector<double>& sorted, const std::vector<double>& other,
                   int64_t* distinct, int64_t* singletons) {
  *distinct = 0;
  *singletons = 0;
  size_t j = 0;
  for (size_t begin = 0; begin < sorted.size();) {
    size_t end = begin + 1;
    while (end < sorted.size() && sorted[end] == sorted[begin]) ++end;
    while (j < other.size() && other[j] < sorted[begin]) ++j;
    const bool in_other = j < other.size() && other[j] == sorted[begin];
    if (!in_other) {
      ++*distinct;
      *singletons += end - begin == 1;
    }
    begin = end;
  }
}

Estimate FinalizeCountDistinct(const SampleState& rest, const SampleState& exact, double p,
                               int64_t rest_bound) {
  Estimate est = BaseEstimate(rest.n(), exact.n(), p);
  if (rest.n() + exact.n() == 0) return est;  // COUNT(DISTINCT) of nothing is 0
  const std::vector<double>& fixed = exact.SortedValues();
  int64_t exact_distinct = 0, unused = 0;
  CountDistinct(fixed, {}, &exact_distinct, &unused);
  // d = distinct values seen in the sample and not in the exact part, f1 = of them, seen once.
  int64_t distinct = 0, singletons = 0;
  CountDistinct(rest.SortedValues(), fixed, &distinct, &singletons);
  const double d = static_cast<double>(distinct);
  const double f1 = static_cast<double>(singletons);
  const double known = static_cast<double>(exact_distinct);
  if (est.exact) {
    est.value = known + d;
    return est;
  }
  // Envelope [d, U]. A value with c rows in the window is unseen with probability (1−p)^c
  // and seen exactly once with probability c·p·(1−p)^{c−1}, so for every frequency profile
  // E[unseen values] ≤ B = (1−p)/p·E[f₁]. With f₁⁺ the one-sided 95 % Poisson upper bound of
  // f₁'s mean (−ln 0.05 ≈ 3.0 for f₁ = 0: a sample without singletons does not prove that no
  // rare value exists) and a Poisson margin for the unseen count itself,
  // U = d + B⁺ + 1.645·√B⁺, B⁺ = (1−p)/p·f₁⁺, capped by the distinct values of the whole
  // key's rest (known at build time). The estimate is the envelope's midpoint and the std puts
  // 95 % of a normal inside it: std = (U − d)/(2z). (GEE, √(1/p)·f₁ + d − f₁, Charikar et al.
  // 2000, sits below the midpoint and is biased low exactly where unseen values are rare
  // singletons, the case that matters: there its normal left the truth outside too often.)
  const double f1_upper = boost::math::gamma_p_inv(f1 + 1.0, 0.95);
  const double unseen = (1.0 - p) / p * f1_upper;
  const double lower = known + d;
  double upper = lower + unseen + 1.645 * std::sqrt(unseen);
  if (rest_bound >= 0) {
    upper = std::max(lower, std::min(upper, known + static_cast<double>(rest_bound)));
  }
  est.value = 0.5 * (lower + upper);
  est.std = (upper - lower) / (2.0 * kZ95);
  return est;
}

// Reach U − t₁ of the rest's envelope (oriented: larger is more extreme).
template <bool kMax>
double ExtremeReach(const ExtremeState<kMax>& state, double p) {
  const int k = state.count - 1;
  const double top = state.top[0];
  const double threshold = state.top[k];
  // Pivotal bound: unseen rows above t₁ ~ Geometric(p) and k·(scale estimate)/scale ~
  // Gamma(k,1) give P(max > U) ≤ (1−p)/p·(1 + c/k)^{−k} = α ⇔ c = k·((α·p/(1−p))^{−1/k} − 1).
  const double c = std::max(0.0, k * (std::pow(kExtremeAlpha * p / (1.0 - p), -1.0 / k) - 1.0));
  if (threshold > 0.0) {
    // Pareto tail, Hill (1975): γ̂ = (1/k)Σ_{i≤k} ln(t_i/t_{k+1}); U = t₁·e^{c·γ̂}.
    double log_excess = 0;
    for (int slot = 0; slot < k; ++slot) log_excess += std::log(state.top[slot] / threshold);
    return top * std::expm1(c * log_excess / k);
  }
  // Exponential excesses: â = (1/k)Σ_{i≤k}(t_i − t_{k+1}); U = t₁ + c·â.
  double excess = 0;
  for (int slot = 0; slot < k; ++slot) excess += state.top[slot] - threshold;
  return c * excess / k;
}

template <bool kMax>
Estimate FinalizeExtreme(const ExtremeState<kMax>& rest, const ExtremeState<kMax>& exact,
                         double p, double lo, double hi) {
  Estimate est = BaseEstimate(rest.rows, exact.rows, p);
  if (rest.count == 0 && exact.count == 0) {
    est.value = kNaN;
    return est;
  }
  // Oriented: the most extreme value of each part, and the rest's bound (hi for max, −lo for
  // min; +inf when unknown).
  double bound = kMax ? (std::isfinite(hi) ? hi : INFINITY)
                      : (std::isfinite(lo) ? -lo : INFINITY);
  // A sampled value beyond the range proves the range out of date (rows were added since it
  // was read, e.g. into a database): it bounds nothing then.
  if (rest.count > 0 && rest.top[0] > bound) bound = INFINITY;
  double value = -INFINITY;
  if (rest.count > 0) value = rest.top[0];
  if (exact.count > 0) value = std::max(value, exact.top[0]);
  est.value = kMax ? value : -value;
  if (est.exact) return est;
  if (value >= bound) return est;  // nothing in the rest can beat it: exact
  if (rest.count == 0) {
    est.std = kNaN;
    return est;
  }
  // A sample holding one value shows no tail: the unseen rest may reach the bound.
  double reach = rest.count == 1 ? (std::isfinite(bound) ? bound - rest.top[0] : 0.0)
                                 : ExtremeReach(rest, p);
  const double envelope = std::min(rest.top[0] + std::min(reach, kMaxReach), bound);
  est.std = std::max(0.0, envelope - value) / kZ95;
  return est;
}

}  // namespace

Result<AggOp> ParseAggOp(std::string_view name) {
  for (const OpName& entry : kOpNames) {
    if (entry.name == name) return entry.op;
  }
  std::string message = "unknown aggregation operator '";
  message += name;
  message += "'; valid operators are:";
  for (size_t op_idx = 0; op_idx < kOpNames.size(); ++op_idx) {
    message += op_idx == 0 ? " " : ", ";
    message += kOpNames[op_idx].name;
  }
  return Status::InvalidArgument(std::move(message));
}

std::string_view AggOpName(AggOp op) {
  for (const OpName& entry : kOpNames) {
    if (entry.op == op) return entry.name;
  }
  return "unknown";
}

bool NeedsValues(AggOp op) {
  return op == AggOp::kMedian || op == AggOp::kQuantile || op == AggOp::kCountDistinct;
}

int64_t QuantileRank(double q, int64_t n) {
  APX_DCHECK(n >= 1);
  APX_DCHECK(q >= 0.0 && q <= 1.0);
  // ⌈q·n⌉ with a relative slack of 8 ulp for the rounding of q and of the product.
  const double product = q * static_cast<double>(n);
  const double rank = std::ceil(product - product * 8.0 * DBL_EPSILON);
  return std::clamp<int64_t>(static_cast<int64_t>(rank), 1, n);
}

Aggregator::State Aggregator::MakeState(AggOp op) {
  switch (op) {
    case AggOp::kCount:
      return CountState();
    case AggOp::kSum:
    case AggOp::kAvg:
      return MomentState<2>();
    case AggOp::kVar:
    case AggOp::kStd:
      return MomentState<4>();
    case AggOp::kMin:
      return ExtremeState<false>();
    case AggOp::kMax:
      return ExtremeState<true>();
    case AggOp::kMedian:
    case AggOp::kQuantile:
    case AggOp::kCountDistinct:
      return SampleState();
  }
  APX_CHECK(false);
  return CountState();
}

namespace {

[[maybe_unused]] bool AllFinite(std::span<const double> values) {
  return std::all_of(values.begin(), values.end(), [](double x) { return std::isfinite(x); });
}

}  // namespace

Aggregator::Aggregator(AggOp op, double q)
    : op_(op), q_(op == AggOp::kMedian ? 0.5 : q), range_lo_(kNaN), range_hi_(kNaN),
      state_(MakeState(op)), exact_(MakeState(op)) {
  APX_CHECK(q_ >= 0.0 && q_ <= 1.0);
}

void Aggregator::set_value_range(double lo, double hi) {
  range_lo_ = lo;
  range_hi_ = hi;
}

void Aggregator::Reset() {
  std::visit([](auto& state) { state.Reset(); }, state_);
  std::visit([](auto& state) { state.Reset(); }, exact_);
}

void Aggregator::ShareValuesWith(const Aggregator& owner) {
  APX_CHECK(NeedsValues(op_) && NeedsValues(owner.op_) && owner.values_from_ == nullptr &&
            &owner != this);
  values_from_ = &owner;
}

void Aggregator::Update(std::span<const double> values) {
  if (values_from_ != nullptr) return;
  APX_DCHECK(AllFinite(values));
  std::visit([values](auto& state) { state.UpdateBatch(values); }, state_);
}

void Aggregator::UpdateExact(std::span<const double> values) {
  if (values_from_ != nullptr) return;
  APX_DCHECK(AllFinite(values));
  std::visit([values](auto& state) { state.UpdateBatch(values); }, exact_);
}

bool PushesDown(AggOp op) {
  return op == AggOp::kCount || op == AggOp::kSum || op == AggOp::kAvg || op == AggOp::kVar ||
         op == AggOp::kStd;
}

void Aggregator::UpdatePartial(const PartialMoments& partial, bool exact) {
  APX_CHECK(PushesDown(op_));
  if (partial.rows <= 0) return;
  const double n = static_cast<double>(partial.rows);
  // Central sums of the batch from its power sums about the center c (d = x − c, mean of d
  // a = s1/n): m2 = s2 − n·a², m3 = s3 − 3a·s2 + 2n·a³, m4 = s4 − 4a·s3 + 6a²·s2 − 3n·a⁴.
  const double a = partial.s1 / n;
  const double m2 = std::max(0.0, partial.s2 - n * a * a);
  const double m3 = partial.s3 - 3 * a * partial.s2 + 2 * n * a * a * a;
  const double m4 =
      std::max(0.0, partial.s4 - 4 * a * partial.s3 + 6 * a * a * partial.s2 - 3 * n * a * a * a * a);
  State& target = exact ? exact_ : state_;
  std::visit(
      [&](auto& state) {
        using S = std::decay_t<decltype(state)>;
        if constexpr (std::is_same_v<S, CountState>) {
          state.rows += partial.rows;
        } else if constexpr (std::is_same_v<S, MomentState<2>> || std::is_same_v<S, MomentState<4>>) {
          state.Combine(partial.rows, partial.center + a, m2, m3, m4);
          state.lo = std::min(state.lo, partial.lo);
          state.hi = std::max(state.hi, partial.hi);
        }
      },
      target);
}

void Aggregator::Merge(const Aggregator& other) {
  APX_CHECK(&other != this);
  APX_CHECK(op_ == other.op_ && q_ == other.q_);
  std::visit(
      [&other](auto& state) {
        using S = std::decay_t<decltype(state)>;
        state.Merge(std::get<S>(other.state_));
      },
      state_);
  std::visit(
      [&other](auto& state) {
        using S = std::decay_t<decltype(state)>;
        state.Merge(std::get<S>(other.exact_));
      },
      exact_);
}

int64_t Aggregator::n() const {
  if (values_from_ != nullptr) return values_from_->n();
  return std::visit([](const auto& state) -> int64_t { return state.n(); }, state_);
}

int64_t Aggregator::exact_n() const {
  if (values_from_ != nullptr) return values_from_->exact_n();
  return std::visit([](const auto& state) -> int64_t { return state.n(); }, exact_);
}

size_t Aggregator::ValuesCapacityForTesting() const {
  const SampleState* sample = std::get_if<SampleState>(&state_);
  return sample == nullptr ? 0 : sample->values.capacity();
}

Estimate Aggregator::Finalize(double p) const {
  APX_CHECK(p > 0.0 && p <= 1.0);
  const double lo = range_lo_, hi = range_hi_;
  switch (op_) {
    case AggOp::kCount:
      return FinalizeCount(std::get<CountState>(state_), std::get<CountState>(exact_), p);
    case AggOp::kSum:
    case AggOp::kAvg:
      return FinalizeSumOrAvg(std::get<MomentState<2>>(state_), std::get<MomentState<2>>(exact_),
                              p, /*avg=*/op_ == AggOp::kAvg, lo, hi, population_known_);
    case AggOp::kVar:
    case AggOp::kStd:
      return FinalizeVarOrStd(std::get<MomentState<4>>(state_), std::get<MomentState<4>>(exact_),
                              p, /*take_sqrt=*/op_ == AggOp::kStd, lo, hi);
    case AggOp::kMin:
      return FinalizeExtreme(std::get<ExtremeState<false>>(state_),
                             std::get<ExtremeState<false>>(exact_), p, lo, hi);
    case AggOp::kMax:
      return FinalizeExtreme(std::get<ExtremeState<true>>(state_),
                             std::get<ExtremeState<true>>(exact_), p, lo, hi);
    case AggOp::kMedian:
    case AggOp::kQuantile:
      return FinalizeQuantile(Values().first, Values().second, q_, p, lo, hi);
    case AggOp::kCountDistinct:
      return FinalizeCountDistinct(Values().first, Values().second, p, distinct_bound_);
  }
  APX_CHECK(false);
  return Estimate();
}

}  // namespace apx::agg
