// model/xgboost_json_internal.h
//
// Internal to model/: reading XGBoost's JSON model format (xgboost >= 1.0 `save_model` with a
// .json name, or XGBoosterSaveModelToBuffer with {"format":"json"}) with nlohmann::json.
// Shared by the adapter (xgboost_model.cc), the compilers (flat_forest.cc, linear_model.cc)
// and the loader. Never throws: nlohmann errors become Status values here.
//
// The parts of the format used (XGBoost 1.7.4):
//   {"learner": {
//      "learner_model_param": {"base_score": "5E-1", "num_feature": "8", "num_class": "0", ...},
//      "objective": {"name": "binary:logistic", ...},
//      "gradient_booster": {"name": "gbtree" | "gblinear" | "dart", "model": {...}}},
//    "version": [1, 7, 4]}
// Numbers inside learner_model_param are strings.
//
// Thread safety: free functions on values; safe to call concurrently.
#ifndef APX_MODEL_XGBOOST_JSON_INTERNAL_H_
#define APX_MODEL_XGBOOST_JSON_INTERNAL_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/model.h"

namespace apx::model::internal {

// Reads the whole file. Errors: NotFound (no such file), IoError (cannot be read).
Result<std::string> ReadFile(const std::string& path);

// Parses JSON text. Every non-integer number is rounded to the nearest float from its decimal
// text, as XGBoost's own reader does (XGBoost stores all model numbers as float32), so that
// static_cast<float>(value.get<double>()) is exactly XGBoost's value; parsing to double first
// and then rounding to float could differ in the last bit (double rounding).
// Errors: DataLoss naming `what` and the parser's message (byte offset included).
Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what);

// Output transformation applied to the summed margin.
enum class Link {
  kIdentity,  // reg:squarederror, reg:squaredlogerror, reg:pseudohubererror, reg:absoluteerror
  kSigmoid,   // binary:logistic, reg:logistic
};

// What every compiled model needs from "learner".
struct LearnerInfo {
  std::string booster;    // learner.gradient_booster.name
  std::string objective;  // learner.objective.name
  Link link = Link::kIdentity;
  float base_score = 0.5f;   // as stored: a probability for logistic objectives
  float base_margin = 0.5f;  // base_score moved to margin space exactly as XGBoost 1.7 does
  size_t num_features = 0;
  const nlohmann::json* booster_model = nullptr;  // learner.gradient_booster.model (or null)
};

// Extracts and checks LearnerInfo from a parsed model. The objective must fit `task`
// (binary: binary:logistic; regression: one of the reg:* objectives listed under Link) and the
// model must have a single output (num_class <= 1, num_target <= 1).
// Errors: DataLoss when a field is missing or malformed, InvalidArgument for an objective that
// does not fit `task` or a multi-output model.
Result<LearnerInfo> ReadLearner(const nlohmann::json& root, Task task);

// XGBoost 1.7's ObjFunction::ProbToMargin for the objective's link, in float arithmetic:
// identity for kIdentity, -log(1/p - 1) for kSigmoid (requires 0 < p < 1).
// Errors: InvalidArgument when p is outside (0, 1) for kSigmoid.
Result<float> ProbToMargin(Link link, float base_score);

// XGBoost 1.7's common::Sigmoid (src/common/math.h), bit for bit, in float: the exponent is
// clamped at 88.7 (so a margin of -1e30 gives 3.0e-39, not 0) and a 1e-16 guards the division.
inline float Sigmoid(float x) {
  constexpr float kEps = 1e-16f;
  const float exponent = std::min(-x, 88.7f);  // NaN stays NaN, as with XGBoost's std::min
  const float denominator = std::exp(exponent) + 1.0f + kEps;
  return 1.0f / denominator;
}

// Reads an integer or a decimal string ("8") at obj[key]; `where` names obj in errors.
Result<long long> IntField(const nlohmann::json& obj, const char* key, std::string_view where);
// Reads a number or a decimal string ("5E-1") at obj[key], rounded to float like XGBoost.
Result<float> FloatField(const nlohmann::json& obj, const char* key, std::string_view where);
// Returns obj[key] if obj is an object holding key, else null.
const nlohmann::json* Find(const nlohmann::json& obj, const char* key);

}  // namespace apx::model::internal

#endif  // APX_MODEL_XGBOOST_JSON_INTERNAL_H_
