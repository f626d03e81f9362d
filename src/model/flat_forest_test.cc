#include "model/flat_forest.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "model/model_test_util.h"
#include "model/xgboost_model.h"

namespace apx::model {
namespace {

using test_util::EdgeRows;
using test_util::ExpectClose;
using test_util::ExpectIdentical;
using test_util::PredictAll;
using test_util::RandomRows;
using test_util::Thresholds;
using test_util::TrainSmall;

constexpr double kRelTol = 1e-5;

struct DiffCase {
  std::string booster;
  Task task;
};

class FlatForestDiffTest : public ::testing::TestWithParam<DiffCase> {};

TEST_P(FlatForestDiffTest, MatchesXGBoostOnRandomAndEdgeRows) {
  const DiffCase& c = GetParam();
  const size_t n_features = 6;
  auto trained = TrainSmall(c.booster, c.task, n_features, /*num_trees=*/25, /*max_depth=*/5);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok()) << json.status().ToString();

  std::vector<float> rows = RandomRows(1000, n_features, 99, 0.15);
  const std::vector<float> edge = EdgeRows(Thresholds(*json, n_features), n_features, 5);
  rows.insert(rows.end(), edge.begin(), edge.end());
  rows.insert(rows.end(), trained.rows.begin(), trained.rows.end());
  const std::vector<float> want = PredictAll(*trained.model, rows);

  for (const ForestKernel kernel : {ForestKernel::kAuto, ForestKernel::kGeneral,
                                    ForestKernel::kComplete, ForestKernel::kCompleteAvx512}) {
    if (kernel == ForestKernel::kCompleteAvx512 && !CpuHasAvx512()) continue;
    for (const int threads : {1, 2}) {
      // min_parallel_work 0: every call with 2+ blocks is shared with the helper.
      auto forest = CompileFlatForest(
          *json, c.task, {.kernel = kernel, .num_threads = threads, .min_parallel_work = 0});
      ASSERT_TRUE(forest.ok()) << forest.status().ToString();
      const std::vector<float> got = PredictAll(**forest, rows);
      ExpectClose(want, got, kRelTol, (*forest)->Describe());
      ExpectIdentical(want, got, (*forest)->Describe());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Boosters, FlatForestDiffTest,
    ::testing::Values(DiffCase{"gbtree", Task::kRegression}, DiffCase{"gbtree", Task::kBinary},
                      DiffCase{"rf", Task::kRegression}, DiffCase{"rf", Task::kBinary}),
    [](const auto& info) {
      return info.param.booster + (info.param.task == Task::kBinary ? "Binary" : "Regression");
    });

// ---------------------------------------------------------------------------------------------
// Hand-built models with known answers.

struct HandTree {
  std::vector<int> left, right, split_index;
  std::vector<float> split_condition;  // threshold, or leaf value for leaves
  std::vector<int> default_left;
};

std::string Join(const auto& values) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ", ";
    if constexpr (std::is_floating_point_v<std::decay_t<decltype(v)>>) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(v));
      out += buffer;
    } else {
      out += std::to_string(v);
    }
  }
  return out;
}

// An XGBoost 1.7-style JSON gbtree model.
std::string ForestJson(const std::vector<HandTree>& trees, const std::string& objective,
                       const std::string& base_score, int num_feature) {
  std::string tree_json;
  for (size_t tree_idx = 0; tree_idx < trees.size(); ++tree_idx) {
    const HandTree& t = trees[tree_idx];
    const size_t n = t.left.size();
    if (!tree_json.empty()) tree_json += ", ";
    tree_json +=
        R"({"base_weights": [)" + Join(std::vector<float>(n, 0.0f)) +
        R"(], "categories": [], "categories_nodes": [], "categories_segments": [],
        "categories_sizes": [], "default_left": [)" +
        Join(t.default_left) + R"(], "id": )" + std::to_string(tree_idx) +
        R"(, "left_children": [)" + Join(t.left) + R"(], "loss_changes": [)" +
        Join(std::vector<float>(n, 0.0f)) + R"(], "parents": [)" + Join(std::vector<int>(n, 0)) +
        R"(], "right_children": [)" + Join(t.right) + R"(], "split_conditions": [)" +
        Join(t.split_condition) + R"(], "split_indices": [)" + Join(t.split_index) +
        R"(], "split_type": [)" + Join(std::vector<int>(n, 0)) + R"(], "sum_hessian": [)" +
        Join(std::vector<float>(n, 1.0f)) +
        R"(], "tree_param": {"num_deleted": "0", "num_feature": ")" + std::to_string(num_feature) +
        R"(", "num_nodes": ")" + std::to_string(n) + R"(", "size_leaf_vector": "0"}})";
  }
  return R"({"learner": {"attributes": {}, "feature_names": [], "feature_types": [],
    "gradient_booster": {"model": {"gbtree_model_param": {"num_parallel_tree": "1",
      "num_trees": ")" +
         std::to_string(trees.size()) + R"(", "size_leaf_vector": "0"}, "tree_info": [)" +
         Join(std::vector<int>(trees.size(), 0)) + R"(], "trees": [)" + tree_json +
         R"(]}, "name": "gbtree"},
    "learner_model_param": {"base_score": ")" +
         base_score + R"(", "boost_from_average": "1", "num_class": "0", "num_feature": ")" +
         std::to_string(num_feature) + R"(", "num_target": "1"},
    "objective": {"name": ")" +
         objective + R"(", "reg_loss_param": {"scale_pos_weight": "1"}}},
    "version": [1, 7, 4]})";
}

// x1 < 0.5 ? -1 : 2, NaN to the right (default_left = 0).
HandTree Stump() { return {{1, -1, -1}, {2, -1, -1}, {1, 0, 0}, {0.5f, -1.0f, 2.0f}, {0, 0, 0}}; }

std::vector<ForestKernel> Kernels() {
  std::vector<ForestKernel> kernels = {ForestKernel::kGeneral, ForestKernel::kComplete};
  if (CpuHasAvx512()) kernels.push_back(ForestKernel::kCompleteAvx512);
  return kernels;
}

TEST(FlatForestTest, StumpHasKnownAnswers) {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const std::string json = ForestJson({Stump()}, "reg:squarederror", "2.5E-1", 2);
  // Feature 0 is never used; margin = 0.25 + leaf.
  const std::vector<float> rows = {9.0f, 0.49f,  // left
                                   9.0f, 0.5f,   // equal to the threshold: right
                                   9.0f, std::nextafter(0.5f, 0.0f),  // just below: left
                                   9.0f, kNan,                        // missing: default (right)
                                   kNan, -kInf,                       // left
                                   kNan, kInf};                       // right
  const std::vector<float> want = {-0.75f, 2.25f, -0.75f, 2.25f, -0.75f, 2.25f};
  for (const ForestKernel kernel : Kernels()) {
    auto forest = CompileFlatForest(json, Task::kRegression, {.kernel = kernel});
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    EXPECT_EQ((*forest)->num_features(), 2u);
    EXPECT_EQ(PredictAll(**forest, rows), want) << (*forest)->Describe();
  }
}

TEST(FlatForestTest, EmptyForestPredictsTheBaseScore) {
  const std::string regression = ForestJson({}, "reg:squarederror", "1.5E0", 3);
  const std::string binary = ForestJson({}, "binary:logistic", "2.5E-1", 3);
  const std::vector<float> rows = {1.0f, std::nanf(""), -2.0f};
  for (const ForestKernel kernel : Kernels()) {
    auto forest = CompileFlatForest(regression, Task::kRegression, {.kernel = kernel});
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    EXPECT_EQ(PredictAll(**forest, rows), std::vector<float>{1.5f});
    forest = CompileFlatForest(binary, Task::kBinary, {.kernel = kernel});
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    EXPECT_NEAR(PredictAll(**forest, rows)[0], 0.25f, 1e-7);
  }
}

TEST(FlatForestTest, DefaultLeftAndBinaryBaseScore) {
  HandTree stump = Stump();
  stump.default_left = {1, 0, 0};  // NaN now goes left
  // A single-leaf tree (depth 0) next to the stump exercises padding to a common depth.
  const HandTree leaf_only = {{-1}, {-1}, {0}, {0.125f}, {0}};
  const std::string json = ForestJson({stump, leaf_only}, "binary:logistic", "2E-1", 2);
  // base_score 0.2 is a probability: the margin starts at logit(0.2) = -log(4).
  const float base = -std::log(1.0f / 0.2f - 1.0f);
  auto sigmoid = [](float m) { return 1.0f / (1.0f + std::exp(-m)); };
  const std::vector<float> rows = {0.0f, 0.0f, 0.0f, std::nanf(""), 0.0f, 3.0f};
  const std::vector<float> want = {sigmoid(base - 1.0f + 0.125f), sigmoid(base - 1.0f + 0.125f),
                                   sigmoid(base + 2.0f + 0.125f)};
  for (const ForestKernel kernel : Kernels()) {
    auto forest = CompileFlatForest(json, Task::kBinary, {.kernel = kernel});
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    const std::vector<float> got = PredictAll(**forest, rows);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 1e-6) << "row " << i << " " << (*forest)->Describe();
    }
  }
}

TEST(FlatForestTest, BaseScoreMatchesXGBoost) {
  // Non-default base_score, written into a trained model, read by both XGBoost and us.
  for (const Task task : {Task::kRegression, Task::kBinary}) {
    auto trained = TrainSmall("gbtree", task, 4, 10, 3);
    ASSERT_NE(trained.model, nullptr);
    auto json = trained.model->ToJson();
    ASSERT_TRUE(json.ok());
    const std::string from = R"("base_score":"5E-1")";
    const size_t pos = json->find(from);
    ASSERT_NE(pos, std::string::npos);
    std::string edited = *json;
    edited.replace(
        pos, from.size(),
        task == Task::kBinary ? R"("base_score":"8.5E-1")" : R"("base_score":"-3.25E0")");
    auto xgboost = XGBoostModel::FromJson(edited, task);
    ASSERT_TRUE(xgboost.ok()) << xgboost.status().ToString();
    auto forest = CompileFlatForest(edited, task);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    const std::vector<float> rows = RandomRows(300, 4, 17, 0.1);
    const std::vector<float> want = PredictAll(**xgboost, rows);
    ExpectIdentical(want, PredictAll(**forest, rows), "edited base_score");
    EXPECT_NE(want, PredictAll(*trained.model, rows)) << "base_score edit had no effect";
  }
}

// Feature counts around the AVX-512 kernel's column-select variants: 1 column (plain load),
// non-powers of two, exactly 16 (4-bit blend tree) and beyond (gather).
class FlatForestFeaturesTest : public ::testing::TestWithParam<size_t> {};

TEST_P(FlatForestFeaturesTest, MatchesXGBoost) {
  const size_t n_features = GetParam();
  auto trained = TrainSmall("gbtree", Task::kRegression, n_features, 12, 5, 31, 500);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  std::vector<float> rows = RandomRows(333, n_features, 8, 0.1);
  const std::vector<float> edge = EdgeRows(Thresholds(*json, n_features), n_features, 9);
  rows.insert(rows.end(), edge.begin(), edge.end());
  const std::vector<float> want = PredictAll(*trained.model, rows);
  for (const ForestKernel kernel : Kernels()) {
    auto forest = CompileFlatForest(*json, Task::kRegression, {.kernel = kernel});
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    ExpectIdentical(want, PredictAll(**forest, rows), (*forest)->Describe());
  }
}

INSTANTIATE_TEST_SUITE_P(FeatureCounts, FlatForestFeaturesTest,
                         ::testing::Values(1, 2, 3, 5, 8, 16, 17, 40));

TEST(FlatForestTest, DeepTreesUseTheGeneralKernel) {
  // Depth-14 trees on 3000 noisy rows grow past kMaxCompleteDepth.
  auto trained = TrainSmall("gbtree", Task::kRegression, 6, 4, 14, 5, 3000);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  auto complete = CompileFlatForest(*json, Task::kRegression, {.kernel = ForestKernel::kComplete});
  ASSERT_EQ(complete.status().code(), StatusCode::kInvalidArgument)
      << "trees did not grow deeper than kMaxCompleteDepth";
  auto forest = CompileFlatForest(*json, Task::kRegression);
  ASSERT_TRUE(forest.ok()) << forest.status().ToString();
  EXPECT_NE((*forest)->Describe().find("general"), std::string::npos) << (*forest)->Describe();
  std::vector<float> rows = RandomRows(500, 6, 12, 0.1);
  const std::vector<float> edge = EdgeRows(Thresholds(*json, 6), 6, 13);
  rows.insert(rows.end(), edge.begin(), edge.end());
  ExpectIdentical(PredictAll(*trained.model, rows), PredictAll(**forest, rows), "deep");
}

TEST(FlatForestTest, ConcurrentCallersShareTheHelperThread) {
  auto trained = TrainSmall("gbtree", Task::kBinary, 6, 40, 5);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  auto forest = CompileFlatForest(*json, Task::kBinary, {.num_threads = 2, .min_parallel_work = 0});
  ASSERT_TRUE(forest.ok());
  const std::vector<float> rows = RandomRows(2000, 6, 14, 0.05);
  const std::vector<float> want = PredictAll(*trained.model, rows);
  std::vector<std::vector<float>> got(3);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 30; ++rep) g = PredictAll(**forest, rows);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) ExpectIdentical(want, g, "concurrent");
}

TEST(FlatForestTest, PredictChecksSizes) {
  auto forest =
      CompileFlatForest(ForestJson({Stump()}, "reg:squarederror", "0", 2), Task::kRegression);
  ASSERT_TRUE(forest.ok()) << forest.status().ToString();
  std::vector<float> out(3);
  EXPECT_EQ((*forest)->Predict(std::vector<float>(5), 3, out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*forest)->Predict(std::vector<float>(6), 3, std::span<float>(out).first(2)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE((*forest)->Predict({}, 0, {}).ok());
}

TEST(FlatForestTest, CompileErrors) {
  auto code = [](const std::string& json, Task task = Task::kRegression,
                 FlatForestOptions options = {}) {
    return CompileFlatForest(json, task, options).status().code();
  };
  const std::string good = ForestJson({Stump()}, "reg:squarederror", "5E-1", 2);
  ASSERT_EQ(code(good), StatusCode::kOk);
  EXPECT_EQ(code("{\"learner\": "), StatusCode::kDataLoss);            // corrupt JSON
  EXPECT_EQ(code("[]"), StatusCode::kDataLoss);                        // not a model
  EXPECT_EQ(code(good, Task::kBinary), StatusCode::kInvalidArgument);  // wrong task
  EXPECT_EQ(code(ForestJson({Stump()}, "binary:logistic", "5E-1", 2)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ForestJson({Stump()}, "multi:softprob", "5E-1", 2)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ForestJson({Stump()}, "binary:logistic", "1E0", 2), Task::kBinary),
            StatusCode::kInvalidArgument);  // base_score 1
  EXPECT_EQ(code(good, Task::kRegression, {.num_threads = 3}), StatusCode::kInvalidArgument);

  HandTree bad_feature = Stump();
  bad_feature.split_index[0] = 2;  // only features 0 and 1 exist
  EXPECT_EQ(code(ForestJson({bad_feature}, "reg:squarederror", "5E-1", 2)), StatusCode::kDataLoss);
  HandTree cycle = Stump();
  cycle.left[0] = 0;  // the root is its own child
  EXPECT_EQ(code(ForestJson({cycle}, "reg:squarederror", "5E-1", 2)), StatusCode::kDataLoss);
  HandTree one_child = Stump();
  one_child.right[0] = -1;
  EXPECT_EQ(code(ForestJson({one_child}, "reg:squarederror", "5E-1", 2)), StatusCode::kDataLoss);

  std::string categorical = good;
  const std::string split_type = R"("split_type": [0, 0, 0])";
  categorical.replace(categorical.find(split_type), split_type.size(),
                      R"("split_type": [1, 0, 0])");
  auto status = CompileFlatForest(categorical, Task::kRegression).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("categorical"), std::string::npos) << status.message();

  std::string truncated_array = good;
  const std::string conditions = R"("split_conditions": [0.5, -1, 2])";
  ASSERT_NE(truncated_array.find(conditions), std::string::npos);
  truncated_array.replace(truncated_array.find(conditions), conditions.size(),
                          R"("split_conditions": [0.5, -1])");
  status = CompileFlatForest(truncated_array, Task::kRegression).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("trees[0].split_conditions"), std::string::npos)
      << status.message();

  auto linear = TrainSmall("gblinear", Task::kRegression, 3, 2);
  ASSERT_NE(linear.model, nullptr);
  auto linear_json = linear.model->ToJson();
  ASSERT_TRUE(linear_json.ok());
  EXPECT_EQ(code(*linear_json), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apx::model
