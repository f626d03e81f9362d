// uq/propagation.cc
#include "uq/propagation.h"

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <cfloat>
#include <cmath>
#include <string>

#include "uq/sobol.h"

namespace apx::uq {
namespace {

// Boost.Math without exceptions: arguments are kept inside (0, 1) by construction.
using NoThrowPolicy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>>;
using StdNormal = boost::math::normal_distribution<double, NoThrowPolicy>;

// Half of the 2^-53 resolution of SobolPoints: u + kHalfCell is the centre of u's cell, so it
// is never 0 or 1 and Phi^{-1} stays finite.
constexpr double kHalfCell = 0x1p-54;
// Output variance below this fraction of the squared mean counts as zero (S1 = 0).
constexpr double kZeroVarianceRel = 1e-20;
// Guard against designs too large to index or allocate sensibly.
constexpr size_t kMaxDesignCells = size_t{1} << 31;
constexpr double kSqrt2 = 1.4142135623730951;

std::string FeatureName(size_t d) { return "feature " + std::to_string(d); }

// The Saltelli 2010 first-order estimator over raw output arrays; T = float (model outputs) or
// double. Writes num_groups indices to s1. See FirstOrderIndices in the header.
template <typename T>
void FirstOrderIndicesImpl(const T* __restrict y, size_t n_base, size_t num_groups,
                           double* __restrict s1) {
  const size_t stride = num_groups + 2;
  const size_t b_offset = num_groups + 1;
  std::fill(s1, s1 + num_groups, 0.0);

  double sum = 0;
  for (size_t i = 0; i < n_base; ++i) {
    const T* block = y + i * stride;
    sum += static_cast<double>(block[0]) + static_cast<double>(block[b_offset]);
  }
  const double mean = sum / static_cast<double>(2 * n_base);
  double sum_sq = 0;
  for (size_t i = 0; i < n_base; ++i) {
    const T* block = y + i * stride;
    const double a = static_cast<double>(block[0]) - mean;
    const double b = static_cast<double>(block[b_offset]) - mean;
    sum_sq += a * a + b * b;
  }
  const double var = sum_sq / static_cast<double>(2 * n_base);
  if (!std::isfinite(var)) {
    std::fill(s1, s1 + num_groups, var);  // NaN or inf in, NaN or inf out
    return;
  }
  if (var <= kZeroVarianceRel * std::max(mean * mean, DBL_MIN)) return;  // all zero

  for (size_t i = 0; i < n_base; ++i) {
    const T* block = y + i * stride;
    const double f_a = static_cast<double>(block[0]);
    const double f_b = static_cast<double>(block[b_offset]) - mean;
    for (size_t g = 0; g < num_groups; ++g) {
      s1[g] += f_b * (static_cast<double>(block[1 + g]) - f_a);
    }
  }
  const double denom = static_cast<double>(n_base) * var;
  for (size_t g = 0; g < num_groups; ++g) s1[g] = std::max(0.0, s1[g] / denom);
}

}  // namespace

double WilsonLower(double c, double m, double z) {
  if (!(z > 0) || !(m > 0)) return c;
  const double z2 = z * z;
  const double center = c + z2 / (2.0 * m);
  const double spread = z * std::sqrt(std::max(0.0, c * (1.0 - c)) / m + z2 / (4.0 * m * m));
  return std::clamp((center - spread) / (1.0 + z2 / m), 0.0, 1.0);
}

// ---------------------------------------------------------------------------------------------
// SaltelliDesign

Result<SaltelliDesign> SaltelliDesign::Build(std::span<const int> group_of, int num_groups,
                                             int n_base, uint64_t seed) {
  if (num_groups < 0) {
    return Status::InvalidArgument("SaltelliDesign: num_groups = " + std::to_string(num_groups) +
                                   " is negative");
  }
  if (n_base < 2) {
    return Status::InvalidArgument("SaltelliDesign: n_base = " + std::to_string(n_base) +
                                   " must be at least 2");
  }
  const size_t num_features = group_of.size();
  // col_of[d]: feature d's column among the grouped features (its Sobol' dimension in A; the
  // one in B is col + K), or -1.
  std::vector<int> col_of(num_features, -1);
  int num_grouped = 0;
  for (size_t d = 0; d < num_features; ++d) {
    const int g = group_of[d];
    if (g < -1 || g >= num_groups) {
      return Status::InvalidArgument("SaltelliDesign: " + FeatureName(d) + " has group " +
                                     std::to_string(g) + ", outside [-1, " +
                                     std::to_string(num_groups) + ")");
    }
    if (g >= 0) col_of[d] = num_grouped++;
  }
  if (2 * static_cast<int64_t>(num_grouped) > kMaxSobolDims) {
    return Status::InvalidArgument("SaltelliDesign: " + std::to_string(num_grouped) +
                                   " grouped features need " + std::to_string(2 * num_grouped) +
                                   " Sobol dimensions, more than " + std::to_string(kMaxSobolDims));
  }
  const size_t stride = static_cast<size_t>(num_groups) + 2;
  const size_t rows = static_cast<size_t>(n_base) * stride;
  if (num_features > 0 && rows > kMaxDesignCells / num_features) {
    return Status::InvalidArgument("SaltelliDesign: " + std::to_string(rows) + " rows x " +
                                   std::to_string(num_features) + " features is too large");
  }

  SaltelliDesign design;
  design.n_base_ = n_base;
  design.num_groups_ = num_groups;
  design.rows_ = rows;
  design.group_of_.assign(group_of.begin(), group_of.end());
  design.u_.assign(rows * num_features, 0.5);
  design.z_.assign(rows * num_features, 0.0f);
  if (num_grouped == 0) return design;

  const int dims = 2 * num_grouped;
  APX_ASSIGN_OR_RETURN(std::vector<double> points,
                       SobolPoints(dims, n_base, seed, Scrambling::kOwen));
  // Phi^{-1} once per Sobol' coordinate; each is copied into G + 1 design rows.
  std::vector<float> scores(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    scores[i] = static_cast<float>(boost::math::quantile(StdNormal(), points[i] + kHalfCell));
  }

  const size_t k_cols = static_cast<size_t>(num_grouped);
  for (size_t i = 0; i < static_cast<size_t>(n_base); ++i) {
    const size_t a_base = i * static_cast<size_t>(dims);
    const size_t b_base = a_base + k_cols;
    for (size_t k = 0; k < stride; ++k) {
      const size_t row = i * stride + k;
      double* u_row = design.u_.data() + row * num_features;
      float* z_row = design.z_.data() + row * num_features;
      for (size_t d = 0; d < num_features; ++d) {
        if (col_of[d] < 0) continue;
        const bool from_b =
            k == stride - 1 || (k >= 1 && static_cast<size_t>(group_of[d]) == k - 1);
        const size_t src = (from_b ? b_base : a_base) + static_cast<size_t>(col_of[d]);
        u_row[d] = points[src];
        z_row[d] = scores[src];
      }
    }
  }
  return design;
}

// ---------------------------------------------------------------------------------------------
// FirstOrderIndices

void FirstOrderIndices(std::span<const double> outputs, int n_base, int num_groups,
                       std::span<double> s1) {
  APX_CHECK(n_base >= 1 && num_groups >= 0);
  APX_CHECK(outputs.size() == static_cast<size_t>(n_base) * (static_cast<size_t>(num_groups) + 2));
  APX_CHECK(s1.size() == static_cast<size_t>(num_groups));
  FirstOrderIndicesImpl(outputs.data(), static_cast<size_t>(n_base),
                        static_cast<size_t>(num_groups), s1.data());
}

std::vector<double> FirstOrderIndices(std::span<const double> outputs, int n_base, int num_groups) {
  APX_CHECK(num_groups >= 0);
  std::vector<double> s1(static_cast<size_t>(num_groups));
  FirstOrderIndices(outputs, n_base, num_groups, s1);
  return s1;
}

// ---------------------------------------------------------------------------------------------
// Propagator

Propagator::Propagator(const SaltelliDesign& design, const model::Model& model)
    : design_(&design),
      model_(&model),
      binary_(model.task() == model::Task::kBinary),
      mean_(design.num_features()),
      scale_(design.num_features()),
      rows_(std::max<size_t>(design.rows(), 1) * design.num_features()),
      outputs_(std::max<size_t>(design.rows(), 1)),
      stage_rows_(std::max<size_t>(design.rows(), 1) * design.num_features()),
      stage_out_(std::max<size_t>(design.rows(), 1)),
      group_var_(static_cast<size_t>(design.num_groups())),
      partner_(design.num_features(), -1),
      rho_(design.num_features(), 0.0f) {}

Status Propagator::Prepare(std::span<const FeatureDist> features, double delta,
                           size_t* num_sampled) {
  const size_t num_features = design_->num_features();
  if (features.size() != num_features) {
    return Status::InvalidArgument("Propagator: got " + std::to_string(features.size()) +
                                   " features, the design has " + std::to_string(num_features));
  }
  if (model_->num_features() != num_features) {
    return Status::InvalidArgument("Propagator: the model takes " +
                                   std::to_string(model_->num_features()) +
                                   " features, the design has " + std::to_string(num_features));
  }
  if (!binary_ && (std::isnan(delta) || delta < 0)) {
    return Status::InvalidArgument("Propagator: delta = " + std::to_string(delta) +
                                   " must be >= 0");
  }
  const std::span<const int> group_of = design_->group_of();
  size_t sampled = 0;
  for (size_t d = 0; d < num_features; ++d) {
    const FeatureDist& f = features[d];
    mean_[d] = static_cast<float>(f.mean);
    scale_[d] = 0.0f;
    if (f.fixed) continue;
    if (!std::isfinite(f.mean)) {
      return Status::InvalidArgument("Propagator: " + FeatureName(d) + " has mean " +
                                     std::to_string(f.mean) + "; a sampled feature must be finite");
    }
    if (!std::isfinite(f.std) || f.std < 0) {
      return Status::InvalidArgument("Propagator: " + FeatureName(d) + " has std " +
                                     std::to_string(f.std) + "; it must be finite and >= 0");
    }
    if (f.std == 0) continue;  // exact after all
    if (group_of[d] < 0) {
      return Status::InvalidArgument("Propagator: " + FeatureName(d) +
                                     " is in no group of the design, so it must be fixed");
    }
    scale_[d] = static_cast<float>(f.std);
    ++sampled;
  }
  // Correlations: only between two sampled features, partner first.
  for (size_t d = 0; d < num_features; ++d) {
    const FeatureDist& f = features[d];
    partner_[d] = -1;
    rho_[d] = 0.0f;
    if (scale_[d] == 0.0f || f.partner < 0 || !(f.rho > 0)) continue;
    if (static_cast<size_t>(f.partner) >= d || !(f.rho < 1)) {
      return Status::InvalidArgument("Propagator: " + FeatureName(d) + " has partner " +
                                     std::to_string(f.partner) + " and rho " +
                                     std::to_string(f.rho) +
                                     "; the partner must come earlier and 0 <= rho < 1");
    }
    if (scale_[f.partner] == 0.0f) continue;
    partner_[d] = f.partner;
    rho_[d] = static_cast<float>(f.rho);
  }
  *num_sampled = sampled;
  return Status::Ok();
}

Status Propagator::Run(std::span<const FeatureDist> features, double delta,
                       PropagationResult* out, const RunOptions& options) {
  APX_CHECK(out != nullptr);
  size_t num_sampled = 0;
  APX_RETURN_IF_ERROR(Prepare(features, delta, &num_sampled));
  out->s1.assign(static_cast<size_t>(design_->num_groups()), 0.0);
  out->analytic = false;
  out->s1_valid = true;
  if (num_sampled == 0) return RunAllFixed(out);
  if (const model::LinearForm* linear = model_->linear(); linear != nullptr) {
    return RunAnalytic(*linear, features, delta, out);
  }
  return RunSampled(delta, options, out);
}

Status Propagator::RunAllFixed(PropagationResult* out) {
  const size_t num_features = design_->num_features();
  std::copy(mean_.begin(), mean_.end(), rows_.begin());
  const Status predicted = model_->Predict(std::span<const float>(rows_.data(), num_features), 1,
                                           std::span<float>(outputs_.data(), 1));
  if (!predicted.ok()) return predicted.WithPrefix("uq: model predict");
  const double y = outputs_[0];
  if (!std::isfinite(y)) return Status::Internal("uq: the model returned a non-finite output");
  out->y_hat = binary_ ? (y >= 0.5 ? 1.0 : 0.0) : y;
  out->confidence = 1.0;
  out->confidence_lower = 1.0;
  out->output_std = 0.0;
  out->mean_output = y;
  out->model_rows = 1;
  return Status::Ok();
}

Status Propagator::RunAnalytic(const model::LinearForm& linear,
                               std::span<const FeatureDist> features, double delta,
                               PropagationResult* out) {
  const size_t num_features = design_->num_features();
  if (linear.weights.size() != num_features) {
    return Status::Internal("uq: the linear model has " + std::to_string(linear.weights.size()) +
                            " weights for " + std::to_string(num_features) + " features");
  }
  const std::span<const int> group_of = design_->group_of();
  std::fill(group_var_.begin(), group_var_.end(), 0.0);
  double mu = linear.bias;
  double var = 0;
  for (size_t d = 0; d < num_features; ++d) {
    const double w = linear.weights[d];
    const FeatureDist& f = features[d];
    if (w == 0 || std::isnan(f.mean)) continue;  // missing contributes 0 (gblinear)
    mu += w * f.mean;
    if (scale_[d] > 0) {  // sampled: Prepare checked it has a group
      const double v = w * w * f.std * f.std;
      group_var_[static_cast<size_t>(group_of[d])] += v;
      var += v;
    }
  }
  // Correlated pairs add 2·w_d·w_p·ρ·σ_d·σ_p (attributed to d's group).
  for (size_t d = 0; d < num_features; ++d) {
    if (partner_[d] < 0) continue;
    const size_t p = static_cast<size_t>(partner_[d]);
    const double cov = 2.0 * linear.weights[d] * linear.weights[p] * rho_[d] *
                       features[d].std * features[p].std;
    var += cov;
    group_var_[static_cast<size_t>(group_of[d])] += cov;
  }
  var = std::max(var, 0.0);
  if (!std::isfinite(mu) || !std::isfinite(var)) {
    return Status::Internal("uq: the linear model's margin is not finite");
  }
  const double sigma = std::sqrt(var);
  if (binary_) {
    out->y_hat = mu >= 0 ? 1.0 : 0.0;
    // P(margin keeps its sign) = Phi(|mu| / sigma).
    out->confidence = sigma > 0 ? 0.5 * std::erfc(-std::abs(mu) / (sigma * kSqrt2)) : 1.0;
  } else {
    out->y_hat = mu;
    // P(|N(0, var)| <= delta) = 2 Phi(delta / sigma) - 1 = erf(delta / (sigma sqrt 2)).
    out->confidence = sigma > 0 ? std::erf(delta / (sigma * kSqrt2)) : 1.0;
  }
  out->confidence_lower = out->confidence;  // closed form: no Monte Carlo error
  if (var > 0) {
    for (size_t g = 0; g < group_var_.size(); ++g) out->s1[g] = group_var_[g] / var;
  }
  out->output_std = sigma;
  out->mean_output = mu;
  out->model_rows = 0;
  out->analytic = true;
  return Status::Ok();
}

void Propagator::Summarize(const float* y, size_t n, double delta, size_t cluster,
                           double margin_z, double center, PropagationResult* out) const {
  const double inv_n = 1.0 / static_cast<double>(n);
  double sum = 0;
  size_t ones = 0;
  for (size_t row_idx = 0; row_idx < n; ++row_idx) {
    sum += y[row_idx];
    ones += y[row_idx] >= 0.5f ? 1 : 0;
  }
  const double mean_y = sum * inv_n;
  const bool centered = std::isfinite(center);
  // A tie goes to class 0, like argmax(bincount).
  const bool mode_is_one = centered ? center >= 0.5 : 2 * ones > n;
  const double answer = centered ? center : mean_y;
  // One pass for the spread and the hits (binary: the mode's class; regression: within δ of
  // the mean), summed per base point (`cluster` consecutive outputs) for the design effect.
  double sum_sq = 0, hit_share_sum = 0, hit_share_sq = 0;
  size_t hits = 0;
  const size_t clusters = n / cluster;
  for (size_t j = 0; j < clusters; ++j) {
    size_t cluster_hits = 0;
    for (size_t row_idx = j * cluster; row_idx < (j + 1) * cluster; ++row_idx) {
      const double dev = static_cast<double>(y[row_idx]) - mean_y;
      sum_sq += dev * dev;
      cluster_hits += binary_ ? ((y[row_idx] >= 0.5f) == mode_is_one)
                              : std::abs(static_cast<double>(y[row_idx]) - answer) <= delta;
    }
    hits += cluster_hits;
    const double share = static_cast<double>(cluster_hits) / static_cast<double>(cluster);
    hit_share_sum += share;
    hit_share_sq += share * share;
  }
  out->y_hat = binary_ ? (mode_is_one ? 1.0 : 0.0) : answer;
  out->confidence = static_cast<double>(hits) * inv_n;
  out->output_std = std::sqrt(sum_sq * inv_n);
  out->mean_output = mean_y;
  // Effective sample size: the per-base-point hit shares are independent; their variance
  // against the binomial one is the design effect.
  const double c = out->confidence;
  const double lo = static_cast<double>(clusters), hi = static_cast<double>(n);
  const double var_cluster =
      clusters > 1 ? std::max(0.0, (hit_share_sq - hit_share_sum * hit_share_sum / lo) / (lo - 1)) : 0.0;
  out->effective_points =
      var_cluster > 0 ? std::clamp(lo * c * (1.0 - c) / var_cluster, lo, hi) : hi;
  out->confidence_lower = WilsonLower(c, out->effective_points, margin_z);
}

Status Propagator::RunSampled(double delta, const RunOptions& options, PropagationResult* out) {
  const size_t num_features = design_->num_features();
  const size_t rows = design_->rows();
  const size_t n_base = static_cast<size_t>(design_->n_base());
  const size_t per_base = static_cast<size_t>(design_->num_groups()) + 2;  // A, AB_0.., B

  // x = mean + std * z; fixed features have scale 0 (and z is finite, so NaN/inf stay as is).
  {
    const float* __restrict z = design_->z().data();
    const float* __restrict mean = mean_.data();
    const float* __restrict scale = scale_.data();
    float* __restrict x = rows_.data();
    for (size_t row_idx = 0; row_idx < rows; ++row_idx) {
      const float* z_row = z + row_idx * num_features;
      float* x_row = x + row_idx * num_features;
      for (size_t d = 0; d < num_features; ++d) x_row[d] = mean[d] + scale[d] * z_row[d];
    }
    // Correlated pairs: x_d = mean_d + std_d·(ρ·u_p + √(1 − ρ²)·z_d), u_p the partner's
    // standard score (already final: partners come first).
    for (size_t d = 0; d < num_features; ++d) {
      if (partner_[d] < 0) continue;
      const size_t p = static_cast<size_t>(partner_[d]);
      const float rho = rho_[d];
      const float rest = std::sqrt(1.0f - rho * rho);
      const float inv_scale_p = 1.0f / scale[p];
      for (size_t row_idx = 0; row_idx < rows; ++row_idx) {
        float* x_row = x + row_idx * num_features;
        const float u = (x_row[p] - mean[p]) * inv_scale_p;
        x_row[d] = mean[d] + scale[d] * (rho * u + rest * z[row_idx * num_features + d]);
      }
    }
  }
  // Predicts the design rows selected by `take(position in block)`, gathered into one batch,
  // and scatters the outputs back to their design positions.
  auto predict_stage = [&](bool ab_blocks) -> Status {
    size_t count = 0;
    for (size_t i = 0; i < n_base; ++i) {
      for (size_t k = 0; k < per_base; ++k) {
        const bool is_ab = k != 0 && k != per_base - 1;
        if (is_ab != ab_blocks) continue;
        std::copy_n(rows_.data() + (i * per_base + k) * num_features, num_features,
                    stage_rows_.data() + count * num_features);
        ++count;
      }
    }
    const Status predicted =
        model_->Predict(std::span<const float>(stage_rows_.data(), count * num_features), count,
                        std::span<float>(stage_out_.data(), count));
    if (!predicted.ok()) return predicted.WithPrefix("uq: model predict");
    size_t next = 0;
    for (size_t i = 0; i < n_base; ++i) {
      for (size_t k = 0; k < per_base; ++k) {
        const bool is_ab = k != 0 && k != per_base - 1;
        if (is_ab == ab_blocks) outputs_[i * per_base + k] = stage_out_[next++];
      }
    }
    for (size_t j = 0; j < count; ++j) {
      if (!std::isfinite(stage_out_[j])) {
        return Status::Internal("uq: the model returned a non-finite output");
      }
    }
    out->model_rows += count;
    return Status::Ok();
  };

  out->model_rows = 0;
  if (options.stop_confidence >= 0 && per_base > 2) {
    APX_RETURN_IF_ERROR(predict_stage(/*ab_blocks=*/false));
    // stage_out_ holds the 2N outputs of the A and B blocks.
    Summarize(stage_out_.data(), 2 * n_base, delta, 2, options.margin_z, options.center, out);
    if (out->confidence_lower >= options.stop_confidence) {
      out->s1_valid = false;
      return Status::Ok();
    }
    APX_RETURN_IF_ERROR(predict_stage(/*ab_blocks=*/true));
  } else {
    const Status predicted =
        model_->Predict(std::span<const float>(rows_.data(), rows * num_features), rows,
                        std::span<float>(outputs_.data(), rows));
    if (!predicted.ok()) return predicted.WithPrefix("uq: model predict");
    for (size_t j = 0; j < rows; ++j) {
      if (!std::isfinite(outputs_[j])) {
        return Status::Internal("uq: the model returned a non-finite output");
      }
    }
    out->model_rows = rows;
  }
  Summarize(outputs_.data(), rows, delta, per_base, options.margin_z, options.center, out);
  FirstOrderIndicesImpl(outputs_.data(), n_base, static_cast<size_t>(design_->num_groups()),
                        out->s1.data());
  return Status::Ok();
}

}  // namespace apx::uq
