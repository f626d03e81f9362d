// uq/propagation.h
//
// Uncertainty propagation through a model with a quasi-Monte Carlo Saltelli design, and
// first-order Sobol' sensitivity per group of features (one group per aggregation query).
//
// Maths.
//  * Inputs: feature d is either fixed (exact) or X_d ~ N(mean_d, std_d^2), independent.
//  * Design (SaltelliDesign): K = features that belong to a group. An Owen-scrambled Sobol'
//    point set U of n_base points in [0,1)^{2K} (uq/sobol.h) is split into A = U[:, :K] and
//    B = U[:, K:], as SALib's saltelli.sample does. For base point i the design emits G + 2
//    rows, in this order (row index = i * (G + 2) + k):
//        k = 0          A_i
//        k = 1 + g      AB_{g,i}: A_i with the columns of group g's features taken from B_i
//        k = G + 1      B_i
//    z = Phi^{-1}(u) (Boost.Math normal quantile) maps each row to standard-normal scores;
//    the propagator maps them to x_d = mean_d + std_d * z_d.
//  * Prediction: regression y_hat = mean of the outputs, confidence = fraction of outputs with
//    |y - y_hat| <= delta; binary y_hat = mode of the classes (p >= 0.5), confidence =
//    fraction equal to the mode (biathlon-spec B.6).
//  * Sensitivity: first-order index of group g by the estimator of Saltelli et al. 2010
//    (see FirstOrderIndices).
//  * Linear models (model::Model::linear() != nullptr) are propagated analytically, without
//    sampling: the margin is N(mu, Var) with mu = bias + sum_i w_i mean_i and
//    Var = sum_i w_i^2 std_i^2.
//
// Thread safety: SaltelliDesign is immutable after Build(); share one per pipeline shape among
// all threads. A Propagator owns mutable scratch: one per request or per thread, never shared
// without external synchronisation. FirstOrderIndices is a pure function.
#ifndef APX_UQ_PROPAGATION_H_
#define APX_UQ_PROPAGATION_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "common/status.h"
#include "model/model.h"

namespace apx::uq {

// The uncertainty of one feature. fixed => `mean` is the exact value and is never sampled
// (it may be NaN, which tree models read as "missing"); otherwise the feature is
// N(mean, std^2) and both must be finite, std >= 0 (std == 0 behaves like fixed).
// A sampled feature may be correlated with ONE earlier sampled feature (`partner` < its own
// index): features estimated from the same sampled rows (nested windows of one key on one
// layout) have correlated errors. The propagator then draws
//   x = mean + std·(ρ·u_partner + √(1 − ρ²)·z),  u_partner = the partner's standard score,
// so that corr(x, x_partner) = ρ and each keeps its own marginal N(mean, std²).
struct FeatureDist {
  double mean = 0;
  double std = 0;
  bool fixed = true;
  int partner = -1;   // earlier feature this one's error is correlated with, or -1
  double rho = 0;     // the correlation, in [0, 1)
};

// Default number of Saltelli base points (biathlon-spec B.5 uses 128).
inline constexpr int kDefaultSaltelliBase = 128;

// A Saltelli design over G groups, built once per pipeline shape and reused by every request
// and round. Immutable, so it may be read from any number of threads. Copyable and movable.
class SaltelliDesign {
 public:
  // group_of[d] = the group (aggregation query) of feature d in [0, num_groups), or -1 for a
  // feature that is always exact (a request field); such features get z = 0, u = 0.5 and no
  // Sobol' dimension. A group may have no features (its index is then always 0).
  // n_base = base points N (rows = N * (G + 2)); a power of two keeps the Sobol' net balance.
  // seed selects the Owen scrambling (same arguments => bit-identical design).
  // Errors: InvalidArgument if num_groups < 0, n_base < 2, a group_of entry is outside
  // [-1, num_groups) (the message names the feature), or the design needs more than
  // kMaxSobolDims (uq/sobol.h) Sobol' dimensions (2 per grouped feature).
  static Result<SaltelliDesign> Build(std::span<const int> group_of, int num_groups,
                                      int n_base = kDefaultSaltelliBase, uint64_t seed = 0);

  int n_base() const { return n_base_; }
  int num_groups() const { return num_groups_; }
  size_t num_features() const { return group_of_.size(); }
  // n_base * (num_groups + 2).
  size_t rows() const { return rows_; }
  // Group of every feature, as given to Build().
  std::span<const int> group_of() const { return group_of_; }

  // rows() x num_features() standard-normal scores z = Phi^{-1}(u), row-major, in the row order
  // of the header comment. Valid as long as the design. u is taken at the centre of its
  // 2^-53 cell, so z is always finite (|z| < 8.3).
  std::span<const float> z() const { return z_; }
  // The same points before Phi^{-1}: uniform scores in [0, 1), same layout.
  std::span<const double> u() const { return u_; }

 private:
  SaltelliDesign() = default;

  int n_base_ = 0;
  int num_groups_ = 0;
  size_t rows_ = 0;
  std::vector<int> group_of_;
  std::vector<double> u_;
  std::vector<float> z_;
};

// First-order Sobol' index of every group from model outputs ordered like the design's rows
// (outputs.size() == n_base * (num_groups + 2)). Estimator of A. Saltelli et al., "Variance
// based sensitivity analysis of model output. Design and estimator for the total sensitivity
// index", Comput. Phys. Commun. 181 (2010) 259-270, Table 2 (b), as in SALib:
//     S1_g = mean_i[ f(B)_i * (f(AB_g)_i - f(A)_i) ] / Var([f(A); f(B)])
// with f(B) centred on the mean of [f(A); f(B)] (the same estimator in expectation, lower
// variance) and Var the population variance of the 2N outputs of A and B.
// A group whose numerator is negative gets 0 (noise clipping); when the output variance is
// zero (relative to the squared mean, below 1e-20) every index is 0, never NaN. Non-finite
// outputs give non-finite indices.
// REQUIRES: n_base >= 1, num_groups >= 0, outputs.size() == n_base * (num_groups + 2)
// (checked; aborts otherwise).
std::vector<double> FirstOrderIndices(std::span<const double> outputs, int n_base, int num_groups);
// Same, writing into s1 (s1.size() == num_groups) without allocating.
void FirstOrderIndices(std::span<const double> outputs, int n_base, int num_groups,
                       std::span<double> s1);

struct PropagationResult {
  double y_hat = 0;        // regression: mean output (analytic: f(means)); binary: 0 or 1
  double confidence = 0;   // estimated Pr(|y_hat - y_exact| <= delta) or Pr(y_hat == y_exact)
  // One-sided lower confidence bound of `confidence` for its own Monte Carlo error: the Wilson
  // score bound at RunOptions::margin_z with the design's effective sample size. The outputs
  // of one base point (its A, B and AB rows) are correlated (the AB rows re-use A's and B's
  // columns), the base points independent: m = N·c(1−c) / Var(per-base-point mean), the design
  // effect measured on the outputs themselves, between N and the number of outputs. Equal to
  // `confidence` when nothing was sampled (every feature fixed, or the analytic linear form).
  double confidence_lower = 0;
  double effective_points = 0;  // the m of confidence_lower (0: nothing sampled)
  std::vector<double> s1;  // first-order index per group (size num_groups)
  double output_std = 0;   // std of the outputs (binary: of the probabilities; analytic
                           // binary: of the margin)
  double mean_output = 0;  // mean of the outputs (binary: mean probability; analytic: f(means),
                           // binary analytic: the mean margin)
  size_t model_rows = 0;   // rows given to model.Predict this run (0 when analytic)
  bool analytic = false;   // true when the linear closed form was used
  bool s1_valid = true;    // false when the run stopped after the A/B rows (s1 all 0)
};

// Per-run options.
struct RunOptions {
  // Two-stage propagation. When >= 0, the 2N rows of the A and B blocks (each an independent
  // QMC sample of the full input distribution) are predicted first; if their confidence
  // already reaches `stop_confidence`, the run ends there: y_hat, confidence and output_std
  // come from those 2N outputs and S1 is not computed (s1_valid = false). The request is
  // answered, so S1 would not be used anyway. Otherwise the AB blocks are predicted and the
  // result is that of a full run. < 0: always a full run.
  double stop_confidence = -1;
  // z of the one-sided lower bound confidence_lower (0: no margin). The two-stage stop
  // compares confidence_lower with stop_confidence.
  double margin_z = 0;
  // Finite: the answer is this value (regression) or class (binary) instead of the outputs'
  // mean or mode, and the confidence is the share of outputs within delta of it (or of its
  // class). For an answer given at the point estimates (a degraded answer whose features
  // carry wide, widened errors). The analytic linear form ignores it (its answer is f(means)).
  double center = std::numeric_limits<double>::quiet_NaN();
};

// Wilson score lower bound of a proportion c observed on m independent draws, one-sided at
// z (Wilson 1927): (c + z²/2m − z·√(c(1−c)/m + z²/4m²)) / (1 + z²/m). z = 0 gives c.
double WilsonLower(double c, double m, double z);

// Runs one propagation round for one request. Owns scratch buffers (the rows x features input
// matrix, the outputs) allocated once in the constructor and reused by every Run(): Run()
// itself does not allocate, except to grow out->s1 the first time a PropagationResult is used
// (reuse the same result object across rounds to avoid even that).
// Thread safety: not thread-safe (mutable scratch); use one per request or thread. The design
// and the model are only read, so many propagators may share them.
class Propagator {
 public:
  // Both must outlive the propagator.
  Propagator(const SaltelliDesign& design, const model::Model& model);

  Propagator(const Propagator&) = delete;
  Propagator& operator=(const Propagator&) = delete;
  Propagator(Propagator&&) = default;
  Propagator& operator=(Propagator&&) = default;

  // Propagates `features` (size design.num_features()) through the model.
  //  * Every feature fixed (or std == 0): one single-row Predict, confidence = 1, s1 = 0.
  //  * Linear model: analytic, no Predict. Regression: y_hat = mu, confidence =
  //    P(|N(0, Var)| <= delta) = 2 Phi(delta / sigma) - 1. Binary: y_hat = (mu >= 0),
  //    confidence = P(margin keeps its sign) = Phi(|mu| / sigma). S1_g = sum_{i in g}
  //    w_i^2 std_i^2 / Var (0 when Var = 0). A fixed NaN (missing) feature contributes 0 to
  //    the margin, as XGBoost's gblinear does for missing values.
  //  * Otherwise: x = mean + std * z over the whole design, ONE batched Predict of
  //    design.rows() rows, then y_hat / confidence / s1 as in the header comment (binary:
  //    S1 computed on the probabilities). Binary ties (as many 0s as 1s) give y_hat = 0, as
  //    numpy's argmax(bincount) does.
  // delta: the regression error bound (>= 0, +inf allowed); ignored for binary models.
  // Errors: InvalidArgument when features.size() or model.num_features() differs from
  // design.num_features(), when delta is NaN or negative (regression), or when a sampled
  // (non-fixed) feature has a non-finite mean or std, a negative std, or std > 0 while the
  // design puts it in no group (the message names the feature index). Internal when the model
  // fails, returns non-finite outputs, or its LinearForm has the wrong number of weights.
  // On error *out is unspecified.
  Status Run(std::span<const FeatureDist> features, double delta, PropagationResult* out,
             const RunOptions& options = {});

 private:
  // Fills mean_/scale_ from features; counts the sampled ones.
  Status Prepare(std::span<const FeatureDist> features, double delta, size_t* num_sampled);
  Status RunAllFixed(PropagationResult* out);
  Status RunAnalytic(const model::LinearForm& linear, std::span<const FeatureDist> features,
                     double delta, PropagationResult* out);
  Status RunSampled(double delta, const RunOptions& options, PropagationResult* out);
  // Mean, confidence and std of outputs y[0..n) into *out; confidence_lower with
  // clusters of `cluster` consecutive outputs (one base point's) and margin z.
  void Summarize(const float* y, size_t n, double delta, size_t cluster, double margin_z, double center,
                 PropagationResult* out) const;

  const SaltelliDesign* design_;
  const model::Model* model_;
  bool binary_;
  std::vector<float> mean_;        // per feature: the value used (mean, or the fixed value)
  std::vector<float> scale_;       // per feature: std when sampled, else 0
  std::vector<float> rows_;        // design.rows() x num_features model input
  std::vector<float> outputs_;     // design.rows() model outputs
  std::vector<float> stage_rows_;  // gathered rows of one stage (A/B, or the AB blocks)
  std::vector<float> stage_out_;   // their outputs
  std::vector<double> group_var_;  // per group: analytic variance share
  std::vector<int> partner_;       // per feature: correlated earlier feature, or -1
  std::vector<float> rho_;         // per feature: its correlation with the partner
};

}  // namespace apx::uq

#endif  // APX_UQ_PROPAGATION_H_
