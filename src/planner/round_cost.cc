// planner/round_cost.cc
#include "planner/round_cost.h"

#include <algorithm>
#include <cmath>

namespace apx::planner {

void RoundCostFit::Add(int branches, int64_t rows, double ns) {
  if (!std::isfinite(ns) || ns < 0 || branches < 0 || rows < 0) return;
  const double x[3] = {1.0, static_cast<double>(branches), static_cast<double>(rows)};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) s_[i][j] = keep_ * s_[i][j] + x[i] * x[j];
    sy_[i] = keep_ * sy_[i] + x[i] * ns;
  }
  syy_ = keep_ * syy_ + ns * ns;
}

RoundCost RoundCostFit::Get() const {
  if (s_[0][0] < 1.5) {
    // One round: all of it per row (as the rows-only fit did), or the default before any.
    if (s_[0][0] <= 0 || s_[0][2] <= 0) return {.ns_per_row = default_ns_per_row_};
    return {.ns_per_row = sy_[0] / s_[0][2]};
  }
  // Every subset of the regressors: its least-squares coefficients, kept when all are ≥ 0 and
  // the subset's equations are well posed; the kept one with the smallest residual is the
  // non-negative least-squares fit.
  double best_rss = INFINITY;
  double best[3] = {0, 0, 0};
  for (int mask = 1; mask < 8; ++mask) {
    int idx[3], k = 0;
    for (int i = 0; i < 3; ++i) {
      if (mask & (1 << i)) idx[k++] = i;
    }
    // The subset's normal equations, scaled to a unit diagonal (rows are ~1e5 times branches).
    double a[3][4];
    double scale[3];
    bool ok = true;
    for (int r = 0; r < k; ++r) {
      scale[r] = std::sqrt(s_[idx[r]][idx[r]]);
      ok = ok && scale[r] > 0;
    }
    if (!ok) continue;
    for (int r = 0; r < k; ++r) {
      for (int c = 0; c < k; ++c) a[r][c] = s_[idx[r]][idx[c]] / (scale[r] * scale[c]);
      a[r][k] = sy_[idx[r]] / scale[r];
    }
    // Gaussian elimination with partial pivoting; a pivot under 1e-6 means the regressors
    // are (nearly) collinear on these rounds: the subset cannot tell its parts apart.
    for (int c = 0; c < k && ok; ++c) {
      int p = c;
      for (int r = c + 1; r < k; ++r) {
        if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
      }
      if (std::abs(a[p][c]) < 1e-6) {
        ok = false;
        break;
      }
      if (p != c) {
        for (int j = 0; j <= k; ++j) std::swap(a[p][j], a[c][j]);
      }
      for (int r = 0; r < k; ++r) {
        if (r == c) continue;
        const double f = a[r][c] / a[c][c];
        for (int j = c; j <= k; ++j) a[r][j] -= f * a[c][j];
      }
    }
    if (!ok) continue;
    double beta[3] = {0, 0, 0};
    for (int r = 0; r < k; ++r) {
      beta[idx[r]] = a[r][k] / a[r][r] / scale[r];
      ok = ok && beta[idx[r]] >= 0 && std::isfinite(beta[idx[r]]);
    }
    if (!ok) continue;
    // Residual: Σy² − 2 β·Σxy + βᵀ Σxxᵀ β.
    double rss = syy_;
    for (int i = 0; i < 3; ++i) {
      rss -= 2 * beta[i] * sy_[i];
      for (int j = 0; j < 3; ++j) rss += beta[i] * s_[i][j] * beta[j];
    }
    if (rss < best_rss) {
      best_rss = rss;
      for (int i = 0; i < 3; ++i) best[i] = beta[i];
    }
  }
  if (!std::isfinite(best_rss)) return {.ns_per_row = default_ns_per_row_};
  // Rows are never free (as in the rows-only fit before): a round that would read most of the
  // data still prices its rows when the recent rounds could not tell them apart.
  constexpr double kMinNsPerRow = 0.05;
  return {.fixed_ns = best[0], .ns_per_branch = best[1], .ns_per_row = std::max(best[2], kMinNsPerRow)};
}

}  // namespace apx::planner
