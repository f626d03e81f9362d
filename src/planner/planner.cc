#include "planner/planner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace apx::planner {

Status Validate(const PlannerOptions& o) {
  if (!(o.alpha > 0 && o.alpha <= 1)) {
    return Status::InvalidArgument("alpha must be in (0, 1], got " + std::to_string(o.alpha));
  }
  if (!(o.gamma > 0 && o.gamma <= kNumStrata)) {
    return Status::InvalidArgument("gamma must be in (0, 100], got " + std::to_string(o.gamma));
  }
  if (o.min_support < 1) return Status::InvalidArgument("min_support must be >= 1");
  return Status::Ok();
}

int SupportStrata(int64_t matching_rows, const PlannerOptions& options) {
  if (matching_rows <= options.exact_below_rows || matching_rows <= options.min_support) {
    return kNumStrata;
  }
  // Expected rows in k strata: matching_rows * k / kNumStrata >= min_support, with 20 % slack
  // for the binomial spread of the strata sizes.
  const double k = std::ceil(1.2 * static_cast<double>(options.min_support) * kNumStrata /
                             static_cast<double>(matching_rows));
  // Past half the rows, sampling saves too little to be worth its uncertainty.
  return k > kNumStrata / 2 ? kNumStrata : std::max(1, static_cast<int>(k));
}

int InitialStrata(int64_t matching_rows, const PlannerOptions& options) {
  const int alpha_strata =
      std::clamp(static_cast<int>(std::ceil(options.alpha * kNumStrata - 1e-9)), 1, kNumStrata);
  return std::max(alpha_strata, SupportStrata(matching_rows, options));
}

void PlanNextRound(std::span<const QueryView> queries, const PlannerOptions& options,
                   std::span<int> target) {
  APX_CHECK(queries.size() == target.size());
  bool bumped = false;
  for (size_t q = 0; q < queries.size(); ++q) {
    target[q] = queries[q].strata;
    if (!queries[q].usable && queries[q].strata < kNumStrata) {
      // Not enough rows for an estimate: grow to the support (at least double).
      const int need = SupportStrata(queries[q].matching_rows, options);
      target[q] = std::min(kNumStrata, std::max({need, 2 * queries[q].strata, queries[q].strata + 1}));
      bumped = true;
    }
  }
  if (bumped) return;

  int budget = std::max(1, static_cast<int>(std::lround(options.gamma * static_cast<double>(queries.size()))));
  std::vector<size_t> order(queries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::vector<double> priority(queries.size(), 0.0);
  for (size_t q = 0; q < queries.size(); ++q) {
    const QueryView& v = queries[q];
    if (v.strata >= kNumStrata) {
      priority[q] = -1;  // nothing left to read
      continue;
    }
    const double remaining = 1.0 - static_cast<double>(v.strata) / kNumStrata;
    const double weight =
        std::max(1.0, static_cast<double>(v.matching_rows) * std::max(v.ns_per_row, 1e-3));
    priority[q] = std::max(v.s1, 0.0) / (weight * remaining);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return priority[a] > priority[b]; });
  // When no query has influence (every S1 is 0), spread the budget evenly instead of giving it
  // to whichever query sorts first.
  const bool no_signal = std::all_of(priority.begin(), priority.end(), [](double p) { return p <= 0; });
  if (no_signal) {
    for (size_t q = 0; q < queries.size() && budget > 0; ++q) {
      if (target[q] < kNumStrata) {
        ++target[q];
        --budget;
      }
    }
    // Leftover budget (more budget than open queries) goes round-robin.
    for (size_t q = 0; budget > 0; q = (q + 1) % queries.size()) {
      if (target[q] < kNumStrata) {
        ++target[q];
        --budget;
      } else if (std::all_of(target.begin(), target.end(), [](int t) { return t >= kNumStrata; })) {
        break;
      }
    }
    return;
  }
  for (size_t idx : order) {
    if (budget <= 0 || priority[idx] < 0) break;
    const int give = std::min(budget, kNumStrata - target[idx]);
    target[idx] += give;
    budget -= give;
  }
}

bool PlanJump(std::span<const QueryView> queries, double target_variance, std::span<int> target) {
  APX_CHECK(queries.size() == target.size());
  const size_t n = queries.size();
  std::vector<double> a(n, 0.0), c(n, 0.0), p(n, 1.0);
  std::vector<bool> free(n, false);
  for (size_t q = 0; q < n; ++q) {
    const QueryView& v = queries[q];
    target[q] = v.strata;
    p[q] = static_cast<double>(v.strata) / kNumStrata;
    if (v.strata >= kNumStrata || v.variance <= 0) continue;
    a[q] = v.variance / (1.0 / p[q] - 1.0);
    c[q] = std::max(1.0, static_cast<double>(v.matching_rows) * std::max(v.ns_per_row, 1e-3));
    free[q] = true;
  }
  bool feasible = target_variance > 0;
  for (size_t iter = 0; iter <= n && feasible; ++iter) {
    double fixed_var = 0, free_a = 0, free_sqrt = 0;
    for (size_t q = 0; q < n; ++q) {
      if (a[q] == 0) continue;
      if (free[q]) {
        free_a += a[q];
        free_sqrt += std::sqrt(a[q] * c[q]);
      } else {
        fixed_var += a[q] * (1.0 / p[q] - 1.0);
      }
    }
    if (free_sqrt == 0) break;
    const double budget = target_variance - fixed_var + free_a;  // Σ_free a_q / p_q <= budget
    if (budget <= free_a) {
      feasible = false;
      break;
    }
    bool changed = false;
    for (size_t q = 0; q < n; ++q) {
      if (!free[q]) continue;
      const double want = std::sqrt(a[q] / c[q]) * free_sqrt / budget;
      const double now = static_cast<double>(queries[q].strata) / kNumStrata;
      if (want <= now) {
        p[q] = now;
        free[q] = false;
        changed = true;
      } else if (want >= 1.0) {
        p[q] = 1.0;
        free[q] = false;
        changed = true;
      } else {
        p[q] = want;
      }
    }
    if (!changed) break;
  }
  bool grew = false;
  for (size_t q = 0; q < n; ++q) {
    if (queries[q].strata >= kNumStrata) continue;
    const int k = feasible ? static_cast<int>(std::ceil(p[q] * kNumStrata - 1e-9)) : kNumStrata;
    target[q] = std::clamp(k, queries[q].strata, kNumStrata);
    grew = grew || target[q] > queries[q].strata;
  }
  if (!grew) {
    // Rounding left everything in place: grow the query with the largest variance share.
    size_t best = n;
    for (size_t q = 0; q < n; ++q) {
      if (queries[q].strata < kNumStrata && (best == n || queries[q].variance > queries[best].variance)) best = q;
    }
    if (best < n) target[best] = std::min(kNumStrata, queries[best].strata + 1);
  }
  return feasible;
}

double ExactRemainingCost(std::span<const QueryView> queries) {
  double cost = 0;
  for (const QueryView& v : queries) {
    cost += static_cast<double>(v.matching_rows) * (1.0 - static_cast<double>(v.strata) / kNumStrata) *
            v.ns_per_row;
  }
  return cost;
}

double PlanCost(std::span<const QueryView> queries, std::span<const int> target) {
  double cost = 0;
  for (size_t q = 0; q < queries.size(); ++q) {
    cost += static_cast<double>(queries[q].matching_rows) *
            static_cast<double>(target[q] - queries[q].strata) / kNumStrata * queries[q].ns_per_row;
  }
  return cost;
}

}  // namespace apx::planner
