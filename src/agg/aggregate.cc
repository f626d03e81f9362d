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

// Fields every estimator shares: n, N, exact, usable.
Estimate BaseEstimate(int64_t n, double p) {
  Estimate est;
  est.n = n;
  est.exact = p == 1.0;
  est.N = est.exact ? static_cast<double>(n) : static_cast<double>(n) / p;
  est.usable = est.exact || n >= kMinSupport;
  return est;
}

Estimate FinalizeCount(const CountState& state, double p) {
  Estimate est = BaseEstimate(state.rows, p);
  const double n = static_cast<double>(state.rows);
  // Horvitz–Thompson under Bernoulli(p): N̂ = n/p, Var(N̂) = N(1−p)/p, estimated by n(1−p)/p².
  est.value = n / p;
  est.std = est.exact ? 0.0 : std::sqrt(n * (1.0 - p)) / p;
  return est;
}

// The standard error a constant sample of n rows (value v) is given when the column's values
// lie in [lo, hi] (see Aggregator::set_value_range): at most 3/n of the rows differ from v
// (rule of three, 95 %), each by at most R, so the mean is within 3R/n of v; as a normal
// standard error, (3R/n)/1.96, with the finite-population correction. 0 when the range is
// unknown or degenerate.
// How far an unseen row can lie from a constant sample's value v (NaN when unknown).
double UnseenRange(double v, double lo, double hi) { return std::max(hi - v, v - lo); }

double ConstantSampleMeanSe(double v, int64_t n, double p, double lo, double hi) {
  const double range = UnseenRange(v, lo, hi);
  if (!(range > 0) || n <= 0) return 0.0;
  return 3.0 * range / (1.96 * static_cast<double>(n)) * std::sqrt(1.0 - p);
}

Estimate FinalizeSum(const MomentState<2>& state, double p, double lo, double hi) {
  Estimate est = BaseEstimate(state.rows, p);
  const double n = static_cast<double>(state.rows);
  const double sum = n * state.mean;
  const double sum_sq = state.m2 + n * state.mean * state.mean;
  // Horvitz–Thompson under Bernoulli(p): Ŝ = Σx/p, Var(Ŝ) = (1−p)/p·Σ_pop x², est. (1−p)/p²·Σx².
  est.value = sum / p;
  est.std = est.exact ? 0.0 : std::sqrt((1.0 - p) * sum_sq) / p;
  if (!est.exact && state.m2 == 0.0) {
    est.std = std::max(est.std, est.N * ConstantSampleMeanSe(state.mean, state.rows, p, lo, hi));
  }
  return est;
}

Estimate FinalizeAvg(const MomentState<2>& state, double p, double lo, double hi) {
  Estimate est = BaseEstimate(state.rows, p);
  const int64_t n = state.rows;
  est.value = n > 0 ? state.mean : kNaN;
  if (est.exact) return est;
  // CLT with finite-population correction: se(x̄) = s/√n·√(1 − n/N), n/N ≈ p.
  est.std =
      n >= 2 ? std::sqrt(state.m2 / static_cast<double>(n - 1) / static_cast<double>(n) * (1.0 - p))
             : kNaN;
  if (n >= 2 && state.m2 == 0.0) est.std = ConstantSampleMeanSe(state.mean, n, p, lo, hi);
  return est;
}

// Sample variance s² (ddof 1) and the delta-method variance of s².
struct VarianceParts {
  double s2;
  double var_s2;
};

VarianceParts Variance(const MomentState<4>& state, double p) {
  const double n = static_cast<double>(state.rows);
  const double s2 = state.m2 / (n - 1.0);
  const double m4 = state.m4 / n;  // plug-in 4th central moment
  // Delta method: Var(s²) ≈ (m₄ − (n−3)/(n−1)·s⁴)/n, times the FPC (1 − p).
  const double var_s2 = (m4 - (n - 3.0) / (n - 1.0) * s2 * s2) / n * (1.0 - p);
  return {s2, std::max(0.0, var_s2)};
}

Estimate FinalizeVarOrStd(const MomentState<4>& state, double p, bool take_sqrt, double lo,
                          double hi) {
  Estimate est = BaseEstimate(state.rows, p);
  if (state.rows < 2) {  // ddof = 1 needs two rows
    est.value = kNaN;
    est.std = est.exact ? 0.0 : kNaN;
    return est;
  }
  const VarianceParts parts = Variance(state, p);
  // A constant sample: at most f = 3/n of the rows differ (by at most R), so the variance is
  // at most f·R² and the std at most √f·R; those bounds / 1.96 are the standard errors.
  const bool constant = !est.exact && state.m2 == 0.0;
  const double range = UnseenRange(state.mean, lo, hi);
  const double f = 3.0 / static_cast<double>(state.rows);
  const double fpc = std::sqrt(1.0 - p);
  if (!take_sqrt) {
    est.value = parts.s2;
    est.std = est.exact ? 0.0 : std::sqrt(parts.var_s2);
    if (constant && range > 0) est.std = f * range * range / 1.96 * fpc;
    return est;
  }
  est.value = std::sqrt(parts.s2);
  // Delta method for s = √s²: Var(s) ≈ Var(s²)/(4s²).
  est.std = (est.exact || parts.s2 <= 0.0) ? 0.0 : std::sqrt(parts.var_s2 / (4.0 * parts.s2));
  if (constant && range > 0) est.std = std::sqrt(f) * range / 1.96 * fpc;
  return est;
}

// value = x_(r) with r = QuantileRank(q, n). Reorders `scratch` (a copy of the sample) with
// SelectNth (an nth_element without branch mispredictions), never a full sort.
Estimate FinalizeQuantile(const SampleState& state, double q, double p) {
  Estimate est = BaseEstimate(state.n(), p);
  const int64_t n = state.n();
  if (n == 0) {
    est.value = kNaN;
    return est;
  }
  std::vector<double>& scratch = state.scratch;
  scratch.assign(state.values.begin(), state.values.end());
  const int64_t rank = QuantileRank(q, n);
  double* const data = scratch.data();
  SelectNth(data, scratch.size(), static_cast<size_t>(rank - 1));
  est.value = data[rank - 1];
  if (est.exact) return est;
  // Order-statistic (binomial) interval (Woodruff 1952): ranks l,u = n·q ∓ z·√(n·q(1−q)),
  // interval [x_(l), x_(u)]; half-width × √(1−p) (FPC); std = half-width / z.
  const double nd = static_cast<double>(n);
  const double center = nd * q;
  const double spread = kZ95 * std::sqrt(nd * q * (1.0 - q));
  const int64_t lower_rank =
      std::clamp<int64_t>(static_cast<int64_t>(std::floor(center - spread)), 1, n);
  const int64_t upper_rank =
      std::clamp<int64_t>(static_cast<int64_t>(std::ceil(center + spread)), 1, n);
  // After the selection everything left of x_(r) is ≤ it and everything right is ≥ it, so the
  // other two order statistics are selected in the two halves without a full sort.
  double lower = est.value;
  if (lower_rank < rank) {
    SelectNth(data, static_cast<size_t>(rank - 1), static_cast<size_t>(lower_rank - 1));
    lower = data[lower_rank - 1];
  }
  double upper = est.value;
  if (upper_rank > rank) {
    SelectNth(data + rank, static_cast<size_t>(n - rank),
              static_cast<size_t>(upper_rank - rank - 1));
    upper = data[upper_rank - 1];
  }
  double z = kZ95;
  if (upper == lower && n > 1) {
    // Discrete data can make the 95 % interval collapse to one value (x_(l) == x_(u)), which
    // would read as certainty; it only means "this value with probability >= 95 %". Widen to
    // the 99.9 % interval (z = 3.2905) so that the spread reflects the remaining risk; for
    // two-point data near a tie this is the distance between the two values.
    constexpr double kZ999 = 3.2905;
    z = kZ999;
    const double wide = kZ999 * std::sqrt(nd * q * (1.0 - q));
    const int64_t wide_lower =
        std::clamp<int64_t>(static_cast<int64_t>(std::floor(center - wide)), 1, n);
    const int64_t wide_upper =
        std::clamp<int64_t>(static_cast<int64_t>(std::ceil(center + wide)), 1, n);
    // Everything left of x_(lower_rank) is <= it and everything right of x_(upper_rank) is
    // >= it, so the wider order statistics are selected in those parts.
    if (wide_lower < lower_rank) {
      SelectNth(data, static_cast<size_t>(lower_rank - 1), static_cast<size_t>(wide_lower - 1));
      lower = data[wide_lower - 1];
    }
    if (wide_upper > upper_rank) {
      SelectNth(data + upper_rank, static_cast<size_t>(n - upper_rank),
                static_cast<size_t>(wide_upper - upper_rank - 1));
      upper = data[wide_upper - 1];
    }
  }
  const double half_width = 0.5 * (upper - lower) * std::sqrt(1.0 - p);
  est.std = half_width / z;
  return est;
}

Estimate FinalizeCountDistinct(const SampleState& state, double p) {
  Estimate est = BaseEstimate(state.n(), p);
  const int64_t n = state.n();
  if (n == 0) return est;  // COUNT(DISTINCT) of nothing is 0
  const std::vector<double>& sorted = state.SortedValues();
  // d = distinct values seen, f1 = values seen exactly once.
  int64_t distinct = 0;
  int64_t singletons = 0;
  for (size_t begin = 0; begin < sorted.size();) {
    size_t end = begin + 1;
    while (end < sorted.size() && sorted[end] == sorted[begin]) ++end;
    ++distinct;
    singletons += end - begin == 1;
    begin = end;
  }
  const double d = static_cast<double>(distinct);
  const double f1 = static_cast<double>(singletons);
  if (est.exact) {
    est.value = d;
    return est;
  }
  // GEE (Charikar et al. 2000): D̂ = √(1/p)·f₁ + Σ_{j≥2} f_j = √(1/p)·f₁ + (d − f₁).
  est.value = f1 / std::sqrt(p) + (d - f1);
  // Envelope [d, U], U = f₁/p + (d − f₁) + z·√(f₁(1−p))/p; U − D̂ ≥ D̂ − d, so std = (U − D̂)/z.
  const double upper = f1 / p + (d - f1) + kZ95 * std::sqrt(f1 * (1.0 - p)) / p;
  est.std = (upper - est.value) / kZ95;
  return est;
}

template <bool kMax>
Estimate FinalizeExtreme(const ExtremeState<kMax>& state, double p) {
  Estimate est = BaseEstimate(state.rows, p);
  if (state.count == 0) {
    est.value = kNaN;
    return est;
  }
  est.value = state.Extreme();
  if (est.exact || state.count == 1) return est;  // exact, or no spread seen: std 0
  const int k = state.count - 1;
  const double top = state.top[0];
  const double threshold = state.top[k];
  // Pivotal bound: unseen rows above t₁ ~ Geometric(p) and k·(scale estimate)/scale ~
  // Gamma(k,1) give P(max > U) ≤ (1−p)/p·(1 + c/k)^{−k} = α ⇔ c = k·((α·p/(1−p))^{−1/k} − 1).
  const double c = std::max(0.0, k * (std::pow(kExtremeAlpha * p / (1.0 - p), -1.0 / k) - 1.0));
  double reach = 0;  // U − t₁
  if (threshold > 0.0) {
    // Pareto tail, Hill (1975): γ̂ = (1/k)Σ_{i≤k} ln(t_i/t_{k+1}); U = t₁·e^{c·γ̂}.
    double log_excess = 0;
    for (int slot = 0; slot < k; ++slot) log_excess += std::log(state.top[slot] / threshold);
    reach = top * std::expm1(c * log_excess / k);
  } else {
    // Exponential excesses: â = (1/k)Σ_{i≤k}(t_i − t_{k+1}); U = t₁ + c·â.
    double excess = 0;
    for (int slot = 0; slot < k; ++slot) excess += state.top[slot] - threshold;
    reach = c * excess / k;
  }
  reach = std::min(reach, kMaxReach);
  est.std = reach / kZ95;
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
      state_(MakeState(op)) {
  APX_CHECK(q_ >= 0.0 && q_ <= 1.0);
}

void Aggregator::set_value_range(double lo, double hi) {
  range_lo_ = lo;
  range_hi_ = hi;
}

void Aggregator::Reset() {
  std::visit([](auto& state) { state.Reset(); }, state_);
}

void Aggregator::Update(std::span<const double> values) {
  APX_DCHECK(AllFinite(values));
  std::visit([values](auto& state) { state.UpdateBatch(values); }, state_);
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
}

int64_t Aggregator::n() const {
  return std::visit([](const auto& state) -> int64_t { return state.n(); }, state_);
}

size_t Aggregator::ValuesCapacityForTesting() const {
  const SampleState* sample = std::get_if<SampleState>(&state_);
  return sample == nullptr ? 0 : sample->values.capacity();
}

Estimate Aggregator::Finalize(double p) const {
  APX_CHECK(p > 0.0 && p <= 1.0);
  switch (op_) {
    case AggOp::kCount:
      return FinalizeCount(std::get<CountState>(state_), p);
    case AggOp::kSum:
      return FinalizeSum(std::get<MomentState<2>>(state_), p, range_lo_, range_hi_);
    case AggOp::kAvg:
      return FinalizeAvg(std::get<MomentState<2>>(state_), p, range_lo_, range_hi_);
    case AggOp::kVar:
      return FinalizeVarOrStd(std::get<MomentState<4>>(state_), p, /*take_sqrt=*/false, range_lo_,
                              range_hi_);
    case AggOp::kStd:
      return FinalizeVarOrStd(std::get<MomentState<4>>(state_), p, /*take_sqrt=*/true, range_lo_,
                              range_hi_);
    case AggOp::kMin:
      return FinalizeExtreme(std::get<ExtremeState<false>>(state_), p);
    case AggOp::kMax:
      return FinalizeExtreme(std::get<ExtremeState<true>>(state_), p);
    case AggOp::kMedian:
    case AggOp::kQuantile:
      return FinalizeQuantile(std::get<SampleState>(state_), q_, p);
    case AggOp::kCountDistinct:
      return FinalizeCountDistinct(std::get<SampleState>(state_), p);
  }
  APX_CHECK(false);
  return Estimate();
}

}  // namespace apx::agg
