// model/model_test_util.h
//
// Test-only helpers shared by the model/ tests: seeded random data, small XGBoost models, the
// edge-case rows every compiled evaluator is checked on, and output comparison.
// Header-only; never linked into apx_model.
#ifndef APX_MODEL_MODEL_TEST_UTIL_H_
#define APX_MODEL_MODEL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/xgboost_json_internal.h"
#include "model/xgboost_model.h"

namespace apx::model::test_util {

// n_rows x n_features standard normal values; each value is NaN with probability nan_fraction.
inline std::vector<float> RandomRows(size_t n_rows, size_t n_features, uint64_t seed,
                                     double nan_fraction = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<float> rows(n_rows * n_features);
  for (float& x : rows) {
    x = normal(rng);
    if (uniform(rng) < nan_fraction) x = std::numeric_limits<float>::quiet_NaN();
  }
  return rows;
}

// Labels with some signal in the first features (NaN features count as 0); binary labels are
// 0/1 from the sign of the same score plus noise.
inline std::vector<float> Labels(const std::vector<float>& rows, size_t n_features, Task task,
                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  const size_t n_rows = rows.size() / n_features;
  std::vector<float> y(n_rows);
  for (size_t row_idx = 0; row_idx < n_rows; ++row_idx) {
    float score = 0.5f;
    for (size_t col_idx = 0; col_idx < n_features && col_idx < 4; ++col_idx) {
      const float x = rows[row_idx * n_features + col_idx];
      if (!std::isnan(x)) score += (col_idx % 2 == 0 ? 1.0f : -0.7f) * x * (col_idx + 1);
    }
    score += noise(rng);
    y[row_idx] = task == Task::kBinary ? (score > 0.5f ? 1.0f : 0.0f) : score;
  }
  return y;
}

struct TrainedModel {
  std::vector<float> rows;  // the training rows
  std::unique_ptr<XGBoostModel> model;
};

// Trains a small model on seeded random data (10% NaN).
inline TrainedModel TrainSmall(const std::string& booster, Task task, size_t n_features = 6,
                               int num_trees = 20, int max_depth = 4, uint64_t seed = 7,
                               size_t n_rows = 400) {
  TrainedModel trained;
  trained.rows = RandomRows(n_rows, n_features, seed, 0.1);
  const std::vector<float> y = Labels(trained.rows, n_features, task, seed + 1);
  TrainOptions options;
  options.task = task;
  options.booster = booster;
  options.num_trees = num_trees;
  options.max_depth = max_depth;
  options.eta = booster == "gblinear" ? 0.5 : 0.3;
  options.seed = seed;
  options.nthread = 1;  // OpenMP barriers crawl on a busy 2-core machine
  auto model = TrainXGBoost(trained.rows, n_rows, n_features, y, options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (model.ok()) trained.model = std::move(model).value();
  return trained;
}

// Every split threshold in an XGBoost JSON gbtree model, per feature.
inline std::vector<std::set<float>> Thresholds(const std::string& json_text, size_t n_features) {
  std::vector<std::set<float>> thresholds(n_features);
  auto parsed = internal::ParseJson(json_text, "model");  // exact float thresholds
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (!parsed.ok()) return thresholds;
  const nlohmann::json& root = *parsed;
  for (const auto& tree : root["learner"]["gradient_booster"]["model"]["trees"]) {
    const auto& left = tree["left_children"];
    for (size_t node_idx = 0; node_idx < left.size(); ++node_idx) {
      if (left[node_idx].get<int>() == -1) continue;
      const size_t feature = tree["split_indices"][node_idx].get<size_t>();
      thresholds[feature].insert(
          static_cast<float>(tree["split_conditions"][node_idx].get<double>()));
    }
  }
  return thresholds;
}

// Edge rows: all NaN; each feature exactly at a threshold (and its float neighbours) with
// others random or NaN; +-inf; huge; signed zeros and denormals.
inline std::vector<float> EdgeRows(const std::vector<std::set<float>>& thresholds,
                                   size_t n_features, uint64_t seed) {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kMax = std::numeric_limits<float>::max();
  const float specials[] = {kNan,   kInf, -kInf, kMax,   -kMax,  1e30f,
                            -1e30f, 0.0f, -0.0f, 1e-40f, -1e-40f};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> rows;
  auto add_row = [&](auto value_of) {
    for (size_t col_idx = 0; col_idx < n_features; ++col_idx) rows.push_back(value_of(col_idx));
  };
  for (const float special : specials) {
    add_row([&](size_t) { return special; });                              // all same
    add_row([&](size_t col) { return col % 2 ? special : normal(rng); });  // half
    add_row([&](size_t col) { return col % 2 ? normal(rng) : special; });
  }
  for (size_t feature = 0; feature < n_features; ++feature) {
    for (const float t : thresholds[feature]) {
      for (const float value : {t, std::nextafter(t, -kInf), std::nextafter(t, kInf)}) {
        add_row([&](size_t col) { return col == feature ? value : normal(rng); });
        add_row([&](size_t col) { return col == feature ? value : kNan; });
      }
    }
    // Every feature at one of its thresholds at once.
    add_row([&](size_t col) {
      if (thresholds[col].empty()) return normal(rng);
      auto it = thresholds[col].begin();
      std::advance(it, rng() % thresholds[col].size());
      return *it;
    });
  }
  return rows;
}

// Expects got == want within a relative tolerance (NaN equals NaN); reports the first rows.
inline void ExpectClose(const std::vector<float>& want, const std::vector<float>& got,
                        double rel_tol, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool both_nan = std::isnan(want[i]) && std::isnan(got[i]);
    const double tol = rel_tol * std::fabs(static_cast<double>(want[i]));
    if (both_nan || want[i] == got[i] || std::fabs(static_cast<double>(want[i]) - got[i]) <= tol) {
      continue;
    }
    ADD_FAILURE() << what << ": row " << i << " want " << want[i] << " got " << got[i];
    if (++failures >= 5) return;
  }
}

// Expects got to be bit-identical to want (NaN equals NaN); reports the first rows.
inline void ExpectIdentical(const std::vector<float>& want, const std::vector<float>& got,
                            const std::string& what) {
  ExpectClose(want, got, 0.0, what + " (bit-identical)");
}

// Runs model.Predict over `rows`, asserting success.
inline std::vector<float> PredictAll(const Model& model, const std::vector<float>& rows) {
  const size_t n_rows = rows.size() / model.num_features();
  std::vector<float> out(n_rows, -12345.0f);
  const Status status = model.Predict(rows, n_rows, out);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return out;
}

}  // namespace apx::model::test_util

#endif  // APX_MODEL_MODEL_TEST_UTIL_H_
