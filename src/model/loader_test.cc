#include "model/loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/linear_model.h"
#include "model/model_test_util.h"
#include "model/xgboost_model.h"

namespace apx::model {
namespace {

using test_util::ExpectClose;
using test_util::ExpectIdentical;
using test_util::PredictAll;
using test_util::RandomRows;
using test_util::TrainSmall;

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("apx_loader_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct LoaderCase {
  std::string booster;
  Task task;
  std::string describe;  // expected in Describe() of the loaded model
};

class LoaderTest : public ::testing::TestWithParam<LoaderCase> {};

TEST_P(LoaderTest, LoadsTheFastestEquivalentModel) {
  const LoaderCase& c = GetParam();
  auto trained = TrainSmall(c.booster, c.task, 5, 15, 4);
  ASSERT_NE(trained.model, nullptr);
  const std::string path = TempPath(c.booster + ".json");
  ASSERT_TRUE(trained.model->Save(path).ok());
  auto model = LoadModel(path, c.task);
  std::filesystem::remove(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_NE((*model)->Describe().find(c.describe), std::string::npos) << (*model)->Describe();
  EXPECT_EQ((*model)->task(), c.task);
  EXPECT_EQ((*model)->num_features(), 5u);
  EXPECT_EQ((*model)->linear() != nullptr, c.booster == "gblinear");
  const std::vector<float> rows = RandomRows(700, 5, 6, 0.1);
  ExpectIdentical(PredictAll(*trained.model, rows), PredictAll(**model, rows), c.booster);
}

INSTANTIATE_TEST_SUITE_P(
    Boosters, LoaderTest,
    ::testing::Values(LoaderCase{"gbtree", Task::kRegression, "flat forest"},
                      LoaderCase{"gbtree", Task::kBinary, "flat forest"},
                      LoaderCase{"rf", Task::kBinary, "flat forest"},
                      LoaderCase{"gblinear", Task::kRegression, "linear model"},
                      LoaderCase{"gblinear", Task::kBinary, "linear model"}),
    [](const auto& info) { return info.param.booster + std::string(TaskName(info.param.task)); });

TEST(LoaderTest, DartFallsBackToXGBoost) {
  // A dart model in XGBoost 1.7's layout, made from a gbtree model with every tree weight 1,
  // so it must predict what the gbtree model does (up to float rounding: XGBoost's dart
  // predictor scales and sums each tree separately).
  auto trained = TrainSmall("gbtree", Task::kRegression, 4, 8, 3);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  nlohmann::json root = nlohmann::json::parse(*json);
  nlohmann::json gbtree = root["learner"]["gradient_booster"];
  const size_t num_trees = gbtree["model"]["trees"].size();
  root["learner"]["gradient_booster"] = {
      {"name", "dart"}, {"gbtree", gbtree}, {"weight_drop", std::vector<float>(num_trees, 1.0f)}};
  auto model = CompileModel(root.dump(), Task::kRegression);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_NE((*model)->Describe().find("xgboost dart"), std::string::npos) << (*model)->Describe();
  const std::vector<float> rows = RandomRows(200, 4, 2, 0.1);
  ExpectClose(PredictAll(*trained.model, rows), PredictAll(**model, rows), 1e-6, "dart");
}

TEST(LoaderTest, Errors) {
  const std::string missing = TempPath("missing.json");
  auto status = LoadModel(missing, Task::kRegression).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find(missing), std::string::npos) << status.message();

  const std::string corrupt = TempPath("corrupt.json");
  WriteFile(corrupt, "{\"learner\": {\"gradient_booster\": [1, 2");
  status = LoadModel(corrupt, Task::kRegression).status();
  std::filesystem::remove(corrupt);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find(corrupt), std::string::npos) << status.message();

  auto trained = TrainSmall("gbtree", Task::kBinary, 3, 3, 2);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(CompileModel(*json, Task::kRegression).status().code(), StatusCode::kInvalidArgument);

  nlohmann::json root = nlohmann::json::parse(*json);
  root["learner"]["gradient_booster"]["name"] = "gbforest";
  status = CompileModel(root.dump(), Task::kBinary).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("gbforest"), std::string::npos) << status.message();
}

// The least-squares and MLP formats store the feature names too (issue 9: only XGBoost
// models did, so an OLS or MLP model trained on other features of the same count loaded).
TEST(LoaderTest, ApxFormatsStoreTheirFeatureNames) {
  const std::string plain = LinearModelJson({.weights = {1.0, 2.0}, .bias = 0.5}, Task::kRegression);
  auto named = WithFeatureNames(plain, {"avg_delay", "count_7d"});
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  const std::string path = TempPath("linear.json");
  WriteFile(path, *named);
  auto names = ModelFeatureNames(path);
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  EXPECT_EQ(*names, (std::vector<std::string>{"avg_delay", "count_7d"}));
  auto model = LoadModel(path, Task::kRegression);  // the names do not disturb the model
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->num_features(), 2u);
  WriteFile(path, plain);  // older files: no names, accepted
  names = ModelFeatureNames(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
  // Only our own formats take them (XGBoost's live in learner.feature_names).
  EXPECT_EQ(WithFeatureNames(R"({"learner": {}})", {"a"}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apx::model
