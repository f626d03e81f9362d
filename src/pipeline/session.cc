// pipeline/session.cc: the request executor (exact and approximate paths).
#include "pipeline/session.h"

#include <algorithm>
#include <limits>
#include <chrono>
#include <cmath>

#include <boost/math/distributions/normal.hpp>

namespace apx::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

// A round whose planned rows reach this share of what is left to read cuts over to exact.
constexpr double kCutOverShare = 0.5;
// Exact statements timed before their fitted cost bounds a cut-over's statement (a few: the
// first ones include connection set-up and cold caches).
constexpr int64_t kMinExactStatements = 3;

// Correlations of features that share sampled rows are capped here (the propagator needs
// ρ < 1; at 0.95 the pair is already almost one feature).
constexpr double kMaxCorrelation = 0.95;

// The jump planner aims the output std at this fraction of δ / z, leaving room for the noise
// of the S1 and variance estimates so that one jump usually suffices.
constexpr double kJumpSafety = 0.8;

// Rounds a request spends only on reading again strata a late shard missed (re-reads also
// go with every round that reads new strata).
constexpr int kMaxRereadRounds = 2;

// Queries matching fewer rows than this are not capped by PredictOptions::max_sample_ratio.
constexpr int64_t kCapMinRows = 2000;

// Φ⁻¹(p), with p kept inside (0, 1): strict mode's per-round targets approach 1 after many
// rounds, where the exact quantile overflows.
double NormalQuantile(double p) {
  return boost::math::quantile(boost::math::normal_distribution<double>(),
                               std::clamp(p, 1e-15, 1.0 - 1e-15));
}

double NsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

// A request time (epoch seconds) as the model feature `transform` asks for.
double TransformTime(double seconds, Transform transform) {
  const int64_t t = static_cast<int64_t>(seconds);
  const int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  switch (transform) {
    case Transform::kNone: return seconds;
    case Transform::kHourOfDay: return static_cast<double>((t - days * 86400) / 3600);
    case Transform::kDayOfWeek: return static_cast<double>(((days + 3) % 7 + 7) % 7);  // Monday = 0
    case Transform::kDayOfYear: {
      const std::chrono::sys_days d{std::chrono::days{days}};
      const std::chrono::year_month_day ymd{d};
      const std::chrono::sys_days jan1{ymd.year() / std::chrono::January / 1};
      return static_cast<double>((d - jan1).count());
    }
  }
  return seconds;
}

}  // namespace

Session::Session(const Pipeline& pipeline) : pipeline_(pipeline) {
  const PipelineSpec& spec = pipeline.spec();
  for (const CompiledQuery& q : pipeline.queries()) {
    QueryRun run;
    for (const AggSpec& a : spec.features[q.spec_index].aggs) {
      run.aggs.emplace_back(a.op, a.q);
    }
    run.estimates.resize(run.aggs.size());
    runs_.push_back(std::move(run));
  }
  for (QueryRun& run : runs_) {
    // Aggregates that keep the sampled values (quantiles, count_distinct) share one buffer and
    // one selection pass per query: the first one owns the values, only it is fed.
    agg::Aggregator* values_owner = nullptr;
    for (agg::Aggregator& a : run.aggs) {
      if (agg::NeedsValues(a.op())) {
        if (values_owner != nullptr) {
          a.ShareValuesWith(*values_owner);
          continue;
        }
        values_owner = &a;
      }
      run.agg_ptrs.push_back(&a);
    }
  }
  features_.resize(pipeline.num_features());
  row_.resize(pipeline.num_features());
  views_.resize(runs_.size());
  target_.resize(runs_.size());
  if (pipeline.has_model()) {
    propagator_ = std::make_unique<uq::Propagator>(pipeline.design(), pipeline.model());
  }
}

Status Session::Bind(const Request& request) {
  const PipelineSpec& spec = pipeline_.spec();
  if (request.numbers.size() != spec.request_fields.size() ||
      request.strings.size() != spec.request_fields.size()) {
    return Status::InvalidArgument("request does not match the pipeline's request fields");
  }
  // Request features are exact.
  for (const CompiledRequestFeature& rf : pipeline_.request_features()) {
    features_[rf.slot] = {.mean = TransformTime(request.numbers[rf.field], rf.transform),
                          .std = 0,
                          .fixed = true};
  }
  const double now = pipeline_.time_field() >= 0 ? request.numbers[pipeline_.time_field()] : 0.0;
  std::string_view keys[store::kMaxKeyColumns];
  for (size_t q = 0; q < runs_.size(); ++q) {
    const CompiledQuery& cq = pipeline_.queries()[q];
    for (size_t k = 0; k < cq.key_fields.size(); ++k) keys[k] = request.strings[cq.key_fields[k]];
    int64_t t0 = INT64_MIN, t1 = INT64_MAX;
    if (cq.has_window) {
      t0 = cq.window_from == kWindowUnbounded ? INT64_MIN
                                              : static_cast<int64_t>(now) + cq.window_from;
      t1 = static_cast<int64_t>(now) + cq.window_to;
    }
    QueryRun& run = runs_[q];
    APX_RETURN_IF_ERROR(pipeline_.backend().Bind(
        cq.shape, std::span<const std::string_view>(keys, cq.key_fields.size()), t0, t1, &run.bound));
    // What the store knew before sampling: the rest's range near the window (NaN only when
    // the key has no sampled rows, which are then never estimated) and its distinct values.
    for (agg::Aggregator& a : run.aggs) {
      a.Reset();
      a.set_value_range(run.bound.rest_min, run.bound.rest_max);
      a.set_distinct_bound(run.bound.rest_distinct);
      a.set_population_known(run.bound.rows_known);
    }
    run.strata = 0;
    run.strata_read = 0;
    run.missed.reset();
    run.rows_read = 0;
    run.rest_read = 0;
    run.cost_ns = 0;
    run.cost_rows = 0;
    run.dirty = true;
    // The exact part (the store's outlier index) is read whole, once per request.
    if (run.bound.exact_rows > 0) {
      const auto start = Clock::now();
      APX_ASSIGN_OR_RETURN(int64_t rows, pipeline_.backend().ReadExact(run.bound, run.agg_ptrs));
      run.cost_ns += NsSince(start);
      run.rows_read += rows;
      run.cost_rows += rows;
    }
  }
  // Sampled rows shared with an earlier query of the same rows (for the correlation of their
  // errors, Estimate): fixed once the windows are bound.
  for (size_t q = 0; q < runs_.size(); ++q) {
    const int partner = pipeline_.queries()[q].partner_query;
    runs_[q].shared_rows =
        partner < 0 ? 0 : pipeline_.backend().SharedSampledRows(runs_[partner].bound, runs_[q].bound);
  }
  return Status::Ok();
}

backend::StrataSet Session::Missed() const {
  backend::StrataSet missed;
  for (const QueryRun& run : runs_) missed |= run.missed;
  return missed;
}

bool Session::CanReread() const {
  const backend::StrataSet missed = Missed();
  return missed.any() && (missed & pipeline_.backend().ReadableStrata()).any();
}

int Session::NextBranches() const {
  const backend::StrataSet readable = Missed().any() ? pipeline_.backend().ReadableStrata() : backend::StrataSet();
  int branches = 0;
  for (size_t q = 0; q < runs_.size(); ++q) {
    if (target_[q] > runs_[q].strata || (runs_[q].missed & readable).any()) ++branches;
  }
  return branches;
}

Status Session::ReadRound() {
  read_ops_.clear();
  read_query_.clear();
  // Strata a shard missed before, on the shards readable now: read again with this round.
  const backend::StrataSet readable = Missed().any() ? pipeline_.backend().ReadableStrata() : backend::StrataSet();
  bool news = false;
  for (size_t q = 0; q < runs_.size(); ++q) {
    QueryRun& run = runs_[q];
    const backend::StrataSet again = run.missed & readable;
    if (target_[q] <= run.strata && again.none()) continue;
    news = news || target_[q] > run.strata;
    read_ops_.push_back({.query = &run.bound,
                         .s_begin = run.strata,
                         .s_end = std::max(run.strata, target_[q]),
                         .reread = again,
                         .aggs = run.agg_ptrs});
    read_query_.push_back(q);
  }
  if (!read_ops_.empty() && !news) ++reread_rounds_;
  if (read_ops_.empty()) return Status::Ok();
  branches_read_ += static_cast<int>(read_ops_.size());
  const auto start = Clock::now();
  round_.shards = round_.shards_answered = 0;
  APX_RETURN_IF_ERROR(pipeline_.backend().ReadMany(read_ops_, &round_));
  if (round_.shards > 0) shards_ = std::max(shards_, round_.shards);
  // A round that lost a shard took its timeout: not what a round costs.
  if (pipeline_.backend().ComputesExact() && round_.shards_answered == round_.shards) {
    int64_t rows = 0;
    for (const backend::ReadOp& op : read_ops_) rows += op.rows;
    pipeline_.RecordRemoteRound(static_cast<int>(read_ops_.size()), rows, NsSince(start));
  }
  for (size_t i = 0; i < read_ops_.size(); ++i) {
    const backend::ReadOp& op = read_ops_[i];
    QueryRun& run = runs_[read_query_[i]];
    run.cost_ns += op.ns;
    run.rows_read += op.rows;
    run.cost_rows += op.rows;
    run.rest_read += op.rows;
    run.strata = op.s_end;
    run.strata_read += op.strata_read;
    strata_reread_ += static_cast<int>((op.reread & ~op.missed).count());
    run.missed = (run.missed & ~op.reread) | op.missed;
    run.dirty = true;
    if (!run.bound.rows_known && run.strata_read > 0) {
      // N estimated from the sample: k strata hold each row with probability k / kNumStrata.
      run.bound.matching_rows =
          run.bound.exact_rows +
          (run.strata_read >= planner::kNumStrata
               ? run.rest_read
               : std::llround(static_cast<double>(run.rest_read) * planner::kNumStrata / run.strata_read));
    }
  }
  return Status::Ok();
}

bool Session::WidenUnusable() {
  for (size_t q = 0; q < runs_.size(); ++q) {
    const QueryRun& run = runs_[q];
    const CompiledQuery& cq = pipeline_.queries()[q];
    const double p = static_cast<double>(run.strata_read) / planner::kNumStrata;
    // The rest's range, or where the backend's stats lack a shard, the range on the others
    // (these answers never claim tau).
    const bool known = std::isfinite(run.bound.rest_min) && std::isfinite(run.bound.rest_max);
    const double lo = known ? run.bound.rest_min : run.bound.seen_min;
    const double hi = known ? run.bound.rest_max : run.bound.seen_max;
    const bool ranged = std::isfinite(lo) && std::isfinite(hi) && hi >= lo;
    for (size_t a = 0; a < run.aggs.size(); ++a) {
      const agg::Estimate& e = run.estimates[a];
      if (e.usable || e.exact) continue;
      // Not the estimator's own error: on so few rows it is not to be used (Estimate::usable).
      // Half the rest's range for a value (or a spread), the estimate itself for a count.
      const double half = ranged ? (hi - lo) / 2 : std::nan("");
      double mean = e.value, std = half;
      switch (run.aggs[a].op()) {
        case agg::AggOp::kAvg:
        case agg::AggOp::kMin:
        case agg::AggOp::kMax:
        case agg::AggOp::kMedian:
        case agg::AggOp::kQuantile:
          // Inside the rest's range (the exact part's rows are among the extremes it bounds).
          if (ranged) mean = std::isfinite(mean) ? std::clamp(mean, lo, hi) : lo + half;
          break;
        case agg::AggOp::kStd:
          if (ranged) mean = std::isfinite(mean) ? std::clamp(mean, 0.0, half) : half / 2;
          break;
        case agg::AggOp::kVar:
          if (ranged) mean = std::isfinite(mean) ? std::clamp(mean, 0.0, half * half) : half * half / 4;
          std = half * half;
          break;
        case agg::AggOp::kCount:
        case agg::AggOp::kSum:
        case agg::AggOp::kCountDistinct:
          // Horvitz-Thompson's value, as uncertain as it is large (at least one row: 1 / p).
          if (!(p > 0)) return false;
          std = std::max(std::abs(mean), 1.0 / p);
          break;
      }
      if (!std::isfinite(mean) || !std::isfinite(std)) return false;
      features_[cq.feature_slots[a]] = {.mean = mean, .std = std, .fixed = std == 0};
    }
  }
  return true;
}

Status Session::ExactFromBackend() {
  exact_ops_.clear();
  for (QueryRun& run : runs_) {
    run.all_aggs.clear();
    for (agg::Aggregator& a : run.aggs) run.all_aggs.push_back(&a);
    run.exact_values.assign(run.aggs.size(), 0.0);
    exact_ops_.push_back({.query = &run.bound, .aggs = run.all_aggs, .values = run.exact_values});
  }
  const auto start = Clock::now();
  const Status exact = pipeline_.backend().ExactAggregates(exact_ops_, exact_deadline_);
  if (exact.code() == StatusCode::kDeadlineExceeded) {
    // Cut short: it took at least this long, which the cost model should know (a pipeline
    // whose exact statements got slower stops cutting over, instead of timing out again).
    int64_t matching = 0;
    for (const QueryRun& run : runs_) matching += run.bound.matching_rows;
    pipeline_.RecordExactStatement(NsSince(start), matching);
  }
  APX_RETURN_IF_ERROR(exact);
  // The statement's time per matching row prices the exact path for the cut-over (apart from
  // the sampled reads' cost per row, which it says nothing about).
  int64_t rows = 0;
  for (const backend::ExactOp& op : exact_ops_) rows += op.rows;
  pipeline_.RecordExactStatement(NsSince(start), rows);
  for (size_t q = 0; q < runs_.size(); ++q) {
    QueryRun& run = runs_[q];
    const CompiledQuery& cq = pipeline_.queries()[q];
    run.bound.matching_rows = run.bound.exact_rows + exact_ops_[q].rows;
    run.rows_read = run.bound.matching_rows;
    run.rest_read = exact_ops_[q].rows;
    run.strata = run.strata_read = planner::kNumStrata;
    run.missed.reset();
    run.dirty = false;
    for (size_t a = 0; a < run.aggs.size(); ++a) {
      const double v = run.exact_values[a];
      run.estimates[a] = {.value = v, .std = 0, .n = run.rows_read,
                          .N = static_cast<double>(run.rows_read), .exact = true, .usable = true};
      features_[cq.feature_slots[a]] = {.mean = v, .std = 0.0, .fixed = true};
    }
  }
  return Status::Ok();
}

bool Session::Estimate(bool* all_exact) {
  bool usable = true;
  *all_exact = true;
  for (size_t q = 0; q < runs_.size(); ++q) {
    QueryRun& run = runs_[q];
    const CompiledQuery& cq = pipeline_.queries()[q];
    const int64_t matching = run.bound.matching_rows;
    const int64_t sampled = run.bound.sampled_rows();
    const bool known = run.bound.rows_known;
    const bool exact = run.strata_read >= planner::kNumStrata || (known && run.rest_read >= sampled);
    // The store knows the matching rows of the sampled rest exactly, so the realised fraction
    // n / N_rest is the sampling ratio (finite-population correction with the true N). A
    // backend that does not count takes the design's inclusion probability k / kNumStrata.
    const double p = exact ? 1.0
                     : known ? (sampled == 0 ? 1.0 : static_cast<double>(run.rest_read) / sampled)
                             : static_cast<double>(run.strata_read) / planner::kNumStrata;
    const auto start = Clock::now();
    for (size_t a = 0; a < run.aggs.size(); ++a) {
      if (run.dirty) {
        // No row read yet (the first strata of a small window can be empty): nothing to
        // estimate from, the sample must grow.
        agg::Estimate e = p > 0 ? run.aggs[a].Finalize(p)
                                : agg::Estimate{.value = std::nan(""), .usable = false};
        if (run.aggs[a].op() == agg::AggOp::kCount && known) {
          e = {.value = static_cast<double>(matching), .std = 0, .n = run.rows_read,
               .N = static_cast<double>(matching), .exact = true, .usable = true};
        }
        run.estimates[a] = e;
      }
      const agg::Estimate& e = run.estimates[a];
      const bool fixed = e.exact || e.std == 0;
      features_[cq.feature_slots[a]] = {.mean = e.value, .std = fixed ? 0.0 : e.std, .fixed = fixed};
      usable = usable && (e.usable || e.exact);
      *all_exact = *all_exact && e.exact;
      // A NaN estimate of a sampled feature cannot be propagated: treat as unusable.
      if (!fixed && !std::isfinite(e.value)) usable = false;
    }
    // Finalizing (e.g. selecting a quantile) is part of what a row costs.
    if (run.dirty) run.cost_ns += NsSince(start);
    run.dirty = false;
  }
  // Correlated errors of queries that share sampled rows. Two estimates over windows A and B
  // of one key, sampled by strata prefixes at ratios p_a, p_b, linearise to means of
  // (I_i/p − 1)·(influence of row i); Cov(I_i/p_a, I_i/p_b) = 1/max(p_a, p_b) − 1 for rows
  // in both windows, so with similar per-row spread
  //   ρ = N_ab/√(N_a·N_b) · (1/max(p_a, p_b) − 1) / √((1/p_a − 1)(1/p_b − 1)),
  // N_ab = sampled rows in both windows (the store counts them per stratum).
  for (size_t q = 0; q < runs_.size(); ++q) {
    const CompiledQuery& cq = pipeline_.queries()[q];
    for (int slot : cq.feature_slots) {
      features_[slot].partner = -1;
      features_[slot].rho = 0;
    }
    if (cq.partner_query < 0) continue;
    const QueryRun& a = runs_[cq.partner_query];
    const QueryRun& b = runs_[q];
    const int64_t n_a = a.bound.sampled_rows(), n_b = b.bound.sampled_rows();
    if (n_a == 0 || n_b == 0 || a.rest_read >= n_a || b.rest_read >= n_b) continue;
    const double p_a = static_cast<double>(a.rest_read) / n_a;
    const double p_b = static_cast<double>(b.rest_read) / n_b;
    if (!(p_a > 0 && p_b > 0)) continue;
    const double shared = static_cast<double>(b.shared_rows);
    const double rho = shared / std::sqrt(static_cast<double>(n_a) * n_b) *
                       (1.0 / std::max(p_a, p_b) - 1.0) /
                       std::sqrt((1.0 / p_a - 1.0) * (1.0 / p_b - 1.0));
    if (!(rho > 0)) continue;
    const CompiledQuery& pa = pipeline_.queries()[cq.partner_query];
    for (size_t j = 0; j < cq.feature_slots.size(); ++j) {
      const int i = cq.partner_agg[j];
      if (i < 0) continue;
      const int slot = cq.feature_slots[j];
      const int partner_slot = pa.feature_slots[i];
      if (partner_slot >= slot || features_[partner_slot].fixed || features_[slot].fixed) continue;
      features_[slot].partner = partner_slot;
      features_[slot].rho = std::min(rho, kMaxCorrelation);
    }
  }
  return usable;
}

Status Session::PredictExactFeatures(Prediction* out) {
  for (size_t i = 0; i < features_.size(); ++i) row_[i] = static_cast<float>(features_[i].mean);
  float y = 0;
  APX_RETURN_IF_ERROR(pipeline_.model().Predict(row_, 1, std::span<float>(&y, 1)));
  out->y = pipeline_.spec().task == model::Task::kBinary ? (y >= 0.5f ? 1.0 : 0.0) : y;
  out->confidence = 1.0;
  out->exact = true;
  return Status::Ok();
}

bool Session::PlanJumpRound(double delta, double tau) {
  const bool binary = pipeline_.spec().task == model::Task::kBinary;
  if (binary && result_.analytic) return false;
  // Attribute the output variance to the queries by their first-order indices (interactions
  // spread proportionally), then ask the planner for the cheapest sample that brings the
  // output std below kJumpSafety times the allowed spread.
  const double var = result_.output_std * result_.output_std;
  double s1_sum = 0;
  size_t open = 0;
  for (size_t q = 0; q < runs_.size(); ++q) {
    if (runs_[q].strata < planner::kNumStrata) {
      s1_sum += std::max(result_.s1[q], 0.0);
      ++open;
    }
  }
  if (open == 0 || !(var > 0)) return false;
  for (size_t q = 0; q < runs_.size(); ++q) {
    const bool is_open = runs_[q].strata < planner::kNumStrata;
    views_[q].variance = !is_open ? 0.0
                         : s1_sum > 0 ? var * std::max(result_.s1[q], 0.0) / s1_sum
                                      : var / static_cast<double>(open);
  }
  if (binary) {
    // The class flips when the probability crosses 0.5: with p ~ N(mean, σ²) the answer keeps
    // its class with probability Φ(|mean − 0.5| / σ) >= τ, so σ <= |mean − 0.5| / Φ⁻¹(τ).
    // Near the boundary the target is ~0 and the plan reads everything (exact is the answer).
    const double target_std =
        kJumpSafety * std::abs(result_.mean_output - 0.5) / NormalQuantile(tau);
    planner::PlanJump(views_, target_std * target_std, target_);
    return true;
  }
  const double z = NormalQuantile((1.0 + tau) / 2.0);
  const double target_std = kJumpSafety * delta / z;
  planner::PlanJump(views_, target_std * target_std, target_);
  return true;
}

Status Session::ExactFeatures(const Request& request, std::span<float> features) {
  if (features.size() != features_.size()) return Status::InvalidArgument("feature buffer size");
  APX_RETURN_IF_ERROR(Bind(request));
  round_ = {};
  exact_deadline_ = Clock::time_point::max();
  if (pipeline_.backend().ComputesExact()) {
    APX_RETURN_IF_ERROR(ExactFromBackend());
  } else {
    std::fill(target_.begin(), target_.end(), planner::kNumStrata);
    APX_RETURN_IF_ERROR(ReadRound());
    bool all_exact = false;
    Estimate(&all_exact);
  }
  for (size_t i = 0; i < features_.size(); ++i) features[i] = static_cast<float>(features_[i].mean);
  return Status::Ok();
}

std::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kNone: return "none";
    case StopReason::kDeadline: return "deadline";
    case StopReason::kSampleCap: return "sample_cap";
    case StopReason::kShardsOut: return "shards_out";
  }
  return "none";
}

Status Session::ResolveOptions(const PredictOptions& options, Prediction* out,
                               planner::PlannerOptions* popts) const {
  const PipelineSpec& spec = pipeline_.spec();
  if (!pipeline_.has_model()) return Status::FailedPrecondition("pipeline has no model loaded");
  *out = Prediction();
  out->delta = options.delta >= 0 ? options.delta : spec.guarantee.delta;
  out->tau = options.tau >= 0 ? options.tau : spec.guarantee.tau;
  if (!std::isfinite(out->delta) || (spec.task == model::Task::kRegression && out->delta <= 0)) {
    return Status::InvalidArgument("delta must be a finite number > 0");
  }
  if (!(out->tau > 0 && out->tau < 1)) return Status::InvalidArgument("tau must be in (0, 1)");
  *popts = {.alpha = options.alpha >= 0 ? options.alpha : spec.guarantee.alpha,
            .gamma = options.gamma >= 0 ? options.gamma : spec.guarantee.gamma};
  APX_RETURN_IF_ERROR(planner::Validate(*popts));
  if (!(options.max_sample_ratio > 0 && options.max_sample_ratio <= 1)) {
    return Status::InvalidArgument("max_sample_ratio must be in (0, 1]");
  }
  return Status::Ok();
}

double Session::ExactCostNs(double read_rest_ns) const {
  if (!pipeline_.backend().ComputesExact()) return read_rest_ns;
  double rows = 0;
  for (const QueryRun& run : runs_) rows += static_cast<double>(run.bound.matching_rows);
  return rows * pipeline_.exact_statement_ns_per_row();
}

Session::ExactFinish Session::CheapestExactFinish(double read_rest_ns) const {
  const double statement = ExactCostNs(read_rest_ns);
  const std::string& reads = pipeline_.spec().backend.cut_over_reads;
  if (!pipeline_.backend().ComputesExact() || reads == "statement") return {.ns = statement, .sampled = false};
  // One round over every query with strata not read yet: its rows at the rounds' price, its
  // statement and a branch per query.
  int branches = 0;
  for (const QueryRun& run : runs_) branches += run.strata < planner::kNumStrata ? 1 : 0;
  const double sampled = read_rest_ns + pipeline_.remote_round_cost().Of(branches, 0);
  if (reads == "sampled" || sampled < statement) return {.ns = sampled, .sampled = true};
  return {.ns = statement, .sampled = false};
}

bool Session::PlanRoundZero(const planner::PlannerOptions& popts, double ns_left,
                            Prediction* out) {
  // The exact part is already read; what is left to choose is how much of the rest. A request
  // reads everything right away when its exact cost is below what approximating is expected
  // to cost: the rows this pipeline's approximate answers have read on average (at least
  // round 0's) and its average number of propagation rounds.
  // On a remote backend every round also pays its statement's fixed cost.
  const bool remote = pipeline_.backend().ComputesExact();
  const Pipeline::RoundCost rc = remote ? pipeline_.remote_round_cost() : Pipeline::RoundCost{};
  double sampled_cost = 0, round0_cost = 0;
  for (size_t q = 0; q < runs_.size(); ++q) {
    target_[q] = planner::InitialStrata(runs_[q].bound.sampled_rows(), popts);
    const double rows = static_cast<double>(runs_[q].bound.sampled_rows());
    const double ns_per_row = remote ? rc.ns_per_row : pipeline_.query_ns_per_row(q);
    sampled_cost += rows * ns_per_row;
    round0_cost += rows * std::min(1.0, static_cast<double>(target_[q]) / planner::kNumStrata) * ns_per_row;
  }
  const ExactFinish finish = CheapestExactFinish(sampled_cost);
  const double exact_cost = finish.ns;
  const double rounds = std::max(1.0, pipeline_.average_rounds());
  // Round 0 reads every query; the rounds after it, those that still need rows.
  const double branches = std::max(static_cast<double>(runs_.size()), pipeline_.average_branches());
  const double expected_approx =
      std::max(round0_cost + rc.Of(static_cast<int>(runs_.size()), 0),
               sampled_cost * pipeline_.average_fraction() + rounds * rc.fixed_ns + branches * rc.ns_per_branch) +
      rounds * pipeline_.round_overhead_ns();
  if (!pipeline_.spec().guarantee.cut_over || out->exact_unavailable || exact_cost > expected_approx ||
      exact_cost > ns_left) {
    return false;
  }
  // Every kProbeEvery-th request that would cut over up front approximates anyway (when its
  // deadline leaves room for twice the exact cost), so that the averages keep learning: a
  // pipeline whose data became cheap to approximate does not stay exact.
  if (pipeline_.TakeProbe() && 2.0 * exact_cost <= ns_left) return false;
  out->cut_over = true;
  finish_sampled_ = finish.sampled;
  return true;
}

void Session::Finish(double total_ns, double data_ns, double model_ns, Prediction* out) {
  if (out->rounds > 0) {
    int64_t rest_read = 0, rest_rows = 0;
    for (const QueryRun& run : runs_) {
      rest_read += run.rest_read;
      rest_rows += run.bound.sampled_rows();
    }
    pipeline_.RecordApproximate(
        out->rounds, rest_rows > 0 ? static_cast<double>(rest_read) / rest_rows : 0.0, branches_read_);
  }
  out->sample_ratio.resize(runs_.size());
  out->query_rows.resize(runs_.size());
  for (size_t q = 0; q < runs_.size(); ++q) {
    const QueryRun& run = runs_[q];
    if (run.cost_rows >= 1000) pipeline_.RecordQueryCost(q, run.cost_ns / run.cost_rows);
    out->rows_read += run.rows_read;
    out->query_rows[q] = run.bound.matching_rows;
    out->sample_ratio[q] = run.bound.matching_rows == 0
                               ? 1.0
                               : static_cast<double>(run.rows_read) / run.bound.matching_rows;
  }
  out->total_ms = total_ns / 1e6;
  out->data_ms = data_ns / 1e6;
  out->model_ms = model_ns / 1e6;
  out->planner_ms = std::max(0.0, out->total_ms - out->data_ms - out->model_ms);
}

Status Session::Predict(const Request& request, const PredictOptions& options, Prediction* out) {
  const auto start = Clock::now();
  const PipelineSpec& spec = pipeline_.spec();
  planner::PlannerOptions popts;
  APX_RETURN_IF_ERROR(ResolveOptions(options, out, &popts));
  const bool has_deadline = options.deadline != Clock::time_point::max();
  // Nanoseconds left before the deadline (a very large number without one).
  auto ns_left = [&] {
    return has_deadline ? static_cast<double>(
                              std::chrono::duration_cast<std::chrono::nanoseconds>(options.deadline - Clock::now())
                                  .count())
                        : 1e18;
  };
  // The sample cap: strata per query (queries matching few rows are cheap and not capped).
  const int cap = options.exact ? planner::kNumStrata
                                : std::clamp(static_cast<int>(std::ceil(
                                                 options.max_sample_ratio * planner::kNumStrata - 1e-9)),
                                             1, planner::kNumStrata);
  auto cap_strata = [&](size_t q) {
    return runs_[q].bound.matching_rows >= kCapMinRows ? cap : planner::kNumStrata;
  };

  APX_RETURN_IF_ERROR(Bind(request));
  round_ = {.deadline = options.deadline};
  shards_ = 0;
  strata_reread_ = 0;
  reread_rounds_ = 0;
  branches_read_ = 0;
  finish_sampled_ = false;
  // A shard known to be late or down: no exact statement (it would wait for it) unless asked.
  if (!options.exact && !pipeline_.backend().ExactAvailable()) out->exact_unavailable = true;
  double data_ns = 0, model_ns = 0;
  for (const QueryRun& run : runs_) out->rows_matching += run.bound.matching_rows;

  // Round 0 targets: everything for the exact path and for requests cut over up front.
  const bool go_exact = options.exact || PlanRoundZero(popts, ns_left(), out);
  for (size_t q = 0; q < runs_.size(); ++q) target_[q] = std::min(target_[q], cap_strata(q));
  planned_ = target_;
  if (go_exact) std::fill(target_.begin(), target_.end(), planner::kNumStrata);

  while (true) {
    const auto read_start = Clock::now();
    if (!options.exact && !pipeline_.backend().ExactAvailable()) out->exact_unavailable = true;
    if (pipeline_.backend().ComputesExact() && !out->exact_unavailable && !finish_sampled_ &&
        std::all_of(target_.begin(), target_.end(), [](int t) { return t >= planner::kNumStrata; })) {
      // Exact (asked for, or cut over): the backend's own exact statement, one per request.
      exact_deadline_ = options.deadline;
      if (!options.exact && pipeline_.backend().num_shards() > 1) {
        if (has_deadline) exact_deadline_ = Clock::now() + (options.deadline - Clock::now()) / 2;
        // A cut-over's statement gets late_factor times its predicted cost: one that a slow
        // shard holds up longer falls back to the shards' own reads below.
        const double factor = spec.backend.late_factor;
        if (factor > 0 && pipeline_.exact_statements() >= kMinExactStatements) {
          // Its rows' cost and a statement's fixed cost (the rounds' fit: a small statement
          // is mostly that).
          const double budget_ns = factor * (ExactCostNs(0) + pipeline_.remote_round_cost().Of(static_cast<int>(runs_.size()), 0)) +
                                   spec.backend.late_slack_ms * 1e6;
          exact_deadline_ = std::min(exact_deadline_,
                                     Clock::now() + std::chrono::nanoseconds(static_cast<int64_t>(budget_ns)));
        }
      }
      const Status exact = ExactFromBackend();
      // On a backend read shard by shard, any failure of the exact statement (a hung shard
      // times it out; a dead one makes the Distributed table answer 500) falls back.
      const bool sharded = pipeline_.backend().num_shards() > 1;
      if (exact.ok() || options.exact || !sharded) {
        APX_RETURN_IF_ERROR(exact);
        shards_ = pipeline_.backend().num_shards() > 1 ? pipeline_.backend().num_shards() : 0;
        data_ns += NsSince(read_start);
        const auto model_start = Clock::now();
        APX_RETURN_IF_ERROR(PredictExactFeatures(out));
        model_ns += NsSince(model_start);
        break;
      }
      // A cut-over whose exact statement cannot run (a shard is down) or ran out of its
      // budget (a shard is slow): go on sampling from the shards that answer, with the rounds
      // planned before the cut-over, and say so.
      out->exact_unavailable = true;
      out->cut_over = false;
      target_ = planned_;
    }
    APX_RETURN_IF_ERROR(ReadRound());
    bool all_exact = false;
    const bool usable = Estimate(&all_exact);
    data_ns += NsSince(read_start);
    if (all_exact) {
      const auto model_start = Clock::now();
      APX_RETURN_IF_ERROR(PredictExactFeatures(out));
      model_ns += NsSince(model_start);
      break;
    }
    const bool remote = pipeline_.backend().ComputesExact();
    const Pipeline::RoundCost rc = remote ? pipeline_.remote_round_cost() : Pipeline::RoundCost{};
    for (size_t q = 0; q < runs_.size(); ++q) {
      const QueryRun& run = runs_[q];
      views_[q] = {.strata = run.strata,
                   .matching_rows = run.bound.sampled_rows(),
                   .s1 = 0,
                   .usable = true,
                   .ns_per_row = remote                ? rc.ns_per_row
                                 : run.cost_rows > 0 ? std::max(run.cost_ns / run.cost_rows, 0.05)
                                                     : pipeline_.query_ns_per_row(q)};
      for (const agg::Estimate& e : run.estimates) views_[q].usable = views_[q].usable && (e.usable || e.exact);
    }
    if (usable) {
      const auto model_start = Clock::now();
      // Strict mode spends the failure probability 1 − τ across rounds (1/2, 1/4, ... of it),
      // so that checking after every round cannot erode the guarantee (optional stopping).
      const double required =
          spec.guarantee.strict ? 1.0 - (1.0 - out->tau) * std::ldexp(1.0, -(out->rounds + 1))
                                : out->tau;
      // Two-stage: if the A/B rows alone already give the required confidence, the answer is
      // ready and the AB blocks (only needed for S1, i.e. for planning) are skipped.
      APX_RETURN_IF_ERROR(propagator_->Run(
          features_, out->delta, &result_,
          {.stop_confidence = required, .margin_z = spec.guarantee.confidence_margin}));
      const double round_ns = NsSince(model_start);
      model_ns += round_ns;
      pipeline_.RecordRoundOverhead(round_ns);
      ++out->rounds;
      out->y = result_.y_hat;
      // The confidence reported and compared with τ is the lower bound for the Monte Carlo
      // error of the propagation: never a confidence the design did not establish.
      out->confidence = result_.confidence_lower;
      if (result_.confidence_lower >= required) break;
      for (size_t q = 0; q < runs_.size(); ++q) views_[q].s1 = result_.s1[q];
    }
    const double next_required =
        spec.guarantee.strict ? 1.0 - (1.0 - out->tau) * std::ldexp(1.0, -(out->rounds + 1))
                              : out->tau;
    if (!usable || !PlanJumpRound(out->delta, next_required)) {
      planner::PlanNextRound(views_, popts, target_);
    }
    // Serving limits: the sample cap bounds every target; a request that cannot grow any
    // query, or has no time left for another round, answers with the confidence it has.
    bool grows = false;
    for (size_t q = 0; q < runs_.size(); ++q) {
      target_[q] = std::min(target_[q], cap_strata(q));
      grows = grows || target_[q] > runs_[q].strata;
    }
    // Strata a late shard missed are read again while it answers (a few rounds of them alone
    // at most: a shard that stays slow costs confidence, not time).
    grows = grows || (reread_rounds_ < kMaxRereadRounds && CanReread());
    // The next round: its rows, its statement's fixed cost and a branch per query it reads
    // (remote backends), a propagation.
    const double next_read = planner::PlanCost(views_, target_) + rc.Of(NextBranches(), 0);
    const double next_round = next_read + pipeline_.round_overhead_ns();
    // Finishing exactly from here (the statement re-reads every matching row, a round of the
    // sampled layouts only the strata not read yet).
    const ExactFinish finish = CheapestExactFinish(planner::ExactRemainingCost(views_));
    const double exact_rest = finish.ns;
    const double left = ns_left();
    if (out->rounds > 0 && usable) {
      if (!grows) {
        bool missing = false;
        for (const QueryRun& run : runs_) missing = missing || run.strata_read < run.strata;
        out->stopped = missing && out->exact_unavailable ? StopReason::kShardsOut : StopReason::kSampleCap;
        break;
      }
      if (next_round > left && !(spec.guarantee.cut_over && !out->exact_unavailable && exact_rest <= left)) {
        out->stopped = StopReason::kDeadline;
        break;
      }
    } else if (!grows && out->exact_unavailable) {
      // Not enough rows for some feature on the shards that answer, and no exact statement:
      // those features get wide distributions and the answer the confidence they leave
      // (low: degraded, below tau); with nothing at all to go on, no answer rather than a
      // made-up one.
      if (WidenUnusable()) {
        // The answer is the model at the point estimates (the widened errors would drag the
        // outputs' mean); the confidence is the share of outputs within delta of it.
        const auto model_start = Clock::now();
        std::vector<uq::FeatureDist> point(features_);
        for (uq::FeatureDist& f : point) {
          f.std = 0;
          f.fixed = true;
          f.partner = -1;
          f.rho = 0;
        }
        APX_RETURN_IF_ERROR(propagator_->Run(point, out->delta, &result_));
        const double center = result_.y_hat;
        APX_RETURN_IF_ERROR(propagator_->Run(features_, out->delta, &result_,
                                             {.margin_z = spec.guarantee.confidence_margin, .center = center}));
        model_ns += NsSince(model_start);
        ++out->rounds;
        out->y = result_.y_hat;
        // The widened errors are no guarantee: the answer never claims tau.
        out->confidence = std::min(result_.confidence_lower, std::nextafter(out->tau, 0.0));
        bool missing = false;
        for (const QueryRun& run : runs_) missing = missing || run.strata_read < run.strata;
        out->stopped = missing ? StopReason::kShardsOut : StopReason::kSampleCap;
        break;
      }
      return Status::Unavailable("no usable sample: no exact statement (a shard is out) and the shards that answer (" +
                                 std::to_string(shards_ > 0 ? shards_ - pipeline_.backend().ShardsHolding(Missed()) : 0) + " of " + std::to_string(shards_) +
                                 ") hold too few rows");
    } else if (!grows) {
      // Nothing usable yet and the cap allows no more rows: only exact features can answer.
      planned_ = target_;
      std::fill(target_.begin(), target_.end(), planner::kNumStrata);
      out->cut_over = true;
      finish_sampled_ = false;
      continue;
    }
    // Cut-over: finish exactly when reading everything that is left costs no more than the
    // next round (its rows plus one propagation), or — ski rental — once approximating has
    // already cost as much as finishing exactly would: a request then never costs much more
    // than twice the exact path, however long its confidence hovers below τ. Never past the
    // deadline when an answer is already at hand.
    // Also when the next round alone would read at least kCutOverShare of what is left: the
    // plan aims at the target with little slack, so the round after it would read the rest
    // anyway, and reading most rows in rounds (strata by strata, with a propagation each) is
    // slower than one exact pass.
    // A cut-over's exact statement gets half of what is left on a sharded backend (a round
    // of the sampled layouts is read shard by shard and keeps what arrives: all of it).
    const double exact_budget = pipeline_.backend().num_shards() > 1 && !finish.sampled ? left / 2 : left;
    const bool fits = exact_rest <= exact_budget || out->rounds == 0;
    const bool cheaper = exact_rest <= next_round ||
                         next_read >= kCutOverShare * exact_rest ||
                         NsSince(start) >= exact_rest;
    if (spec.guarantee.cut_over && !out->exact_unavailable && fits && cheaper) {
      planned_ = target_;
      std::fill(target_.begin(), target_.end(), planner::kNumStrata);
      out->cut_over = !out->exact_unavailable;
      finish_sampled_ = finish.sampled;
    }
  }

  out->shards = shards_;
  out->shards_answered = shards_ > 0 ? shards_ - pipeline_.backend().ShardsHolding(Missed()) : 0;
  out->strata_reread = strata_reread_;
  Finish(NsSince(start), data_ns, model_ns, out);
  return Status::Ok();
}

}  // namespace apx::pipeline
