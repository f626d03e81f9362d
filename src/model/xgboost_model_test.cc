#include "model/xgboost_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "model/model_test_util.h"

namespace apx::model {
namespace {

using test_util::Labels;
using test_util::PredictAll;
using test_util::RandomRows;
using test_util::TrainSmall;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            (std::string("apx_model_") + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }
  size_t NumEntries() const {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(path_),
                                             std::filesystem::directory_iterator()));
  }

 private:
  std::filesystem::path path_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(XGBoostModelTest, RegressionLearnsTheSignal) {
  auto trained = TrainSmall("gbtree", Task::kRegression);
  ASSERT_NE(trained.model, nullptr);
  EXPECT_EQ(trained.model->num_features(), 6u);
  EXPECT_EQ(trained.model->task(), Task::kRegression);
  EXPECT_EQ(trained.model->booster_name(), "gbtree");
  const std::vector<float> y = Labels(trained.rows, 6, Task::kRegression, 8);
  const std::vector<float> pred = PredictAll(*trained.model, trained.rows);
  double mean = 0, var = 0, mse = 0;
  for (float v : y) mean += v / y.size();
  for (size_t i = 0; i < y.size(); ++i) {
    var += (y[i] - mean) * (y[i] - mean);
    mse += (y[i] - pred[i]) * (y[i] - pred[i]);
  }
  EXPECT_LT(mse, 0.3 * var);
}

TEST(XGBoostModelTest, BinaryOutputsProbabilities) {
  auto trained = TrainSmall("gbtree", Task::kBinary);
  ASSERT_NE(trained.model, nullptr);
  const std::vector<float> y = Labels(trained.rows, 6, Task::kBinary, 8);
  const std::vector<float> pred = PredictAll(*trained.model, trained.rows);
  size_t correct = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_GE(pred[i], 0.0f);
    ASSERT_LE(pred[i], 1.0f);
    correct += (pred[i] >= 0.5f) == (y[i] == 1.0f);
  }
  EXPECT_GT(correct, y.size() * 8 / 10);
}

TEST(XGBoostModelTest, RandomForestAndLinearBoostersTrain) {
  auto rf = TrainSmall("rf", Task::kRegression);
  ASSERT_NE(rf.model, nullptr);
  EXPECT_EQ(rf.model->booster_name(), "gbtree");  // rf is gbtree with num_parallel_tree
  auto json = rf.model->ToJson();
  ASSERT_TRUE(json.ok());
  EXPECT_NE(json->find("\"num_parallel_tree\":\"20\""), std::string::npos);

  auto linear = TrainSmall("gblinear", Task::kBinary);
  ASSERT_NE(linear.model, nullptr);
  EXPECT_EQ(linear.model->booster_name(), "gblinear");
  EXPECT_NE(linear.model->Describe().find("gblinear"), std::string::npos);
}

TEST(XGBoostModelTest, SaveLoadRoundTripGivesIdenticalPredictions) {
  TempDir dir;
  for (const std::string booster : {"gbtree", "rf", "gblinear"}) {
    for (const Task task : {Task::kRegression, Task::kBinary}) {
      SCOPED_TRACE(booster + " " + std::string(TaskName(task)));
      auto trained = TrainSmall(booster, task, 5, 10, 4);
      ASSERT_NE(trained.model, nullptr);
      const std::string path = dir.File(booster + "_" + std::string(TaskName(task)) + ".json");
      ASSERT_TRUE(trained.model->Save(path).ok());
      std::ifstream in(path);
      ASSERT_EQ(in.peek(), '{') << "saved model is not JSON";

      auto loaded = XGBoostModel::Load(path, task);
      ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
      EXPECT_EQ((*loaded)->num_features(), 5u);
      const std::vector<float> rows = RandomRows(300, 5, 3, 0.2);
      EXPECT_EQ(PredictAll(*trained.model, rows), PredictAll(**loaded, rows));

      auto json = trained.model->ToJson();
      ASSERT_TRUE(json.ok());
      auto from_json = XGBoostModel::FromJson(*json, task);
      ASSERT_TRUE(from_json.ok()) << from_json.status().ToString();
      EXPECT_EQ(PredictAll(*trained.model, rows), PredictAll(**from_json, rows));
    }
  }
  EXPECT_EQ(dir.NumEntries(), 6u) << "temporary files left behind";
}

TEST(XGBoostModelTest, SaveOverwritesAModelAtomicallyAndNothingElse) {
  TempDir dir;
  const std::string path = dir.File("model.json");
  auto trained = TrainSmall("gbtree", Task::kRegression, 4, 5, 3);
  ASSERT_NE(trained.model, nullptr);
  ASSERT_TRUE(trained.model->Save(path).ok());
  ASSERT_TRUE(trained.model->Save(path).ok());  // a model file is replaced
  EXPECT_TRUE(XGBoostModel::Load(path, Task::kRegression).ok());
  EXPECT_EQ(dir.NumEntries(), 1u);
  // A file that is not a model (a user's file at the model path) is never replaced.
  const std::string users = dir.File("notes.json");
  WriteFile(users, "old contents");
  const Status refused = trained.model->Save(users);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  std::ifstream in(users);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), "old contents");
}

TEST(XGBoostModelTest, SaveUnderAFileIsIoError) {
  TempDir dir;
  WriteFile(dir.File("plain"), "x");
  auto trained = TrainSmall("gbtree", Task::kRegression, 4, 5, 3);
  ASSERT_NE(trained.model, nullptr);
  const Status status = trained.model->Save(dir.File("plain") + "/model.json");
  EXPECT_EQ(status.code(), StatusCode::kIoError) << status.ToString();
}

TEST(XGBoostModelTest, LoadErrors) {
  TempDir dir;
  auto missing = XGBoostModel::Load(dir.File("nope.json"), Task::kRegression);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.json"), std::string::npos);

  const std::string corrupt = dir.File("corrupt.json");
  WriteFile(corrupt, "{\"learner\": {\"attributes\": ");
  auto bad = XGBoostModel::Load(corrupt, Task::kRegression);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("corrupt.json"), std::string::npos);

  const std::string not_model = dir.File("array.json");
  WriteFile(not_model, "[1, 2, 3]");
  EXPECT_EQ(XGBoostModel::Load(not_model, Task::kRegression).status().code(),
            StatusCode::kDataLoss);

  // Well-formed JSON with a 'learner' XGBoost cannot use.
  const std::string hollow = dir.File("hollow.json");
  WriteFile(hollow, R"({"learner": {"gradient_booster": {}}, "version": [1, 7, 4]})");
  EXPECT_EQ(XGBoostModel::Load(hollow, Task::kRegression).status().code(), StatusCode::kDataLoss);

  // A truncated real model.
  auto trained = TrainSmall("gbtree", Task::kBinary, 4, 5, 3);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  const std::string truncated = dir.File("truncated.json");
  WriteFile(truncated, json->substr(0, json->size() / 2));
  EXPECT_EQ(XGBoostModel::Load(truncated, Task::kBinary).status().code(), StatusCode::kDataLoss);

  // A binary:logistic model does not serve a regression task, and vice versa.
  const std::string binary = dir.File("binary.json");
  ASSERT_TRUE(trained.model->Save(binary).ok());
  auto wrong_task = XGBoostModel::Load(binary, Task::kRegression);
  EXPECT_EQ(wrong_task.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_task.status().message().find("binary:logistic"), std::string::npos);

  EXPECT_EQ(XGBoostModel::Load(dir.File(""), Task::kRegression).status().code(),
            StatusCode::kIoError);  // a directory
}

TEST(XGBoostModelTest, TrainingInputErrors) {
  const size_t n_rows = 20, n_features = 3;
  std::vector<float> X = RandomRows(n_rows, n_features, 1, 0.1);
  std::vector<float> y(n_rows, 1.0f);
  const TrainOptions options{.num_trees = 2};
  auto expect_invalid = [&](std::span<const float> x, size_t rows, size_t cols,
                            std::span<const float> labels, const TrainOptions& opts,
                            const std::string& needle) {
    auto model = TrainXGBoost(x, rows, cols, labels, opts);
    ASSERT_FALSE(model.ok()) << needle;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument) << model.status().ToString();
    EXPECT_NE(model.status().message().find(needle), std::string::npos) << model.status().message();
  };
  expect_invalid(X, n_rows + 1, n_features, y, options, "expected");
  expect_invalid(X, n_rows, n_features, std::span<const float>(y).first(n_rows - 1), options,
                 "labels");
  expect_invalid({}, 0, n_features, {}, options, "at least one row");

  std::vector<float> nan_label = y;
  nan_label[3] = kNan;
  expect_invalid(X, n_rows, n_features, nan_label, options, "row 3");
  std::vector<float> inf_label = y;
  inf_label[7] = std::numeric_limits<float>::infinity();
  expect_invalid(X, n_rows, n_features, inf_label, options, "row 7");
  std::vector<float> two = y;
  two[5] = 2.0f;
  expect_invalid(X, n_rows, n_features, two, {.task = Task::kBinary}, "row 5");

  std::vector<float> inf_x = X;
  inf_x[4 * n_features + 2] = -std::numeric_limits<float>::infinity();
  expect_invalid(inf_x, n_rows, n_features, y, options, "row 4 feature 2");

  expect_invalid(X, n_rows, n_features, y, {.booster = "dart"}, "unknown booster");
  expect_invalid(X, n_rows, n_features, y, {.num_trees = 0}, "num_trees");
  expect_invalid(X, n_rows, n_features, y, {.max_depth = 0}, "max_depth");
  expect_invalid(X, n_rows, n_features, y, {.eta = 0.0}, "eta");
  expect_invalid(X, n_rows, n_features, y, {.nthread = 0}, "nthread");
}

TEST(XGBoostModelTest, PredictChecksSizes) {
  auto trained = TrainSmall("gbtree", Task::kRegression, 4, 3, 2);
  ASSERT_NE(trained.model, nullptr);
  std::vector<float> rows(4 * 10, 0.5f);
  std::vector<float> out(10);
  EXPECT_EQ(trained.model->Predict(rows, 11, out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(trained.model->Predict(rows, 10, std::span<float>(out).first(9)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(trained.model->Predict(rows, 0, {}).ok());
  EXPECT_TRUE(trained.model->Predict(rows, 10, out).ok());
}

TEST(XGBoostModelTest, GblinearRefusesInfiniteInputs) {
  auto trained = TrainSmall("gblinear", Task::kRegression, 3, 3);
  ASSERT_NE(trained.model, nullptr);
  std::vector<float> rows = {1.0f, std::numeric_limits<float>::infinity(), 0.0f};
  std::vector<float> out(1);
  EXPECT_EQ(trained.model->Predict(rows, 1, out).code(), StatusCode::kInvalidArgument);
}

TEST(XGBoostModelTest, ConcurrentPredictMatchesSequential) {
  auto trained = TrainSmall("gbtree", Task::kBinary, 6, 20, 4);
  ASSERT_NE(trained.model, nullptr);
  const std::vector<float> rows = RandomRows(500, 6, 21, 0.1);
  const std::vector<float> want = PredictAll(*trained.model, rows);
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) g = PredictAll(*trained.model, rows);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

}  // namespace
}  // namespace apx::model
