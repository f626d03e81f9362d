#include "model/xgboost_json_internal.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/json.h"

namespace apx::model::internal {
namespace {

using nlohmann::json;

// Builds the DOM like nlohmann's own parser, except that decimal numbers are rounded straight
// from their text to float (std::from_chars is correctly rounded and locale-independent).
// Deriving from the DOM builder is enough: sax_parse is a template over the handler type, so
// the members declared here hide the base ones statically.
class FloatExactSax : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  explicit FloatExactSax(json& root) : json_sax_dom_parser(root, /*allow_exceptions_=*/false) {}

  bool number_float(json::number_float_t value, const json::string_t& text) {
    float f = 0.0f;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), f);
    // Out of float range keeps the double; the later cast to float gives +-inf or 0 as
    // XGBoost's fallback strtof would.
    if (ec == std::errc() && end == text.data() + text.size()) value = f;
    return json_sax_dom_parser::number_float(value, text);
  }

  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    error_ = ex.what();
    return json_sax_dom_parser::parse_error(position, token, ex);
  }

  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

const char* LinkObjectives() {
  return "binary:logistic, reg:logistic, reg:squarederror, reg:squaredlogerror, "
         "reg:pseudohubererror, reg:absoluteerror";
}

}  // namespace

Result<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("model file '" + path + "' does not exist");
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Status::IoError("model path '" + path + "' is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::IoError("cannot open model file '" + path + "': " + std::strerror(errno));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::IoError("error reading model file '" + path + "'");
  return buffer.str();
}

Result<json> ParseJson(std::string_view text, std::string_view what) {
  json root;
  FloatExactSax sax(root);
  const bool ok = json::sax_parse(text.begin(), text.end(), &sax);
  if (!ok || root.is_discarded()) {
    return Status::DataLoss(std::string(what) + " is not valid JSON: " +
                            (sax.error().empty() ? "parse failed" : sax.error()));
  }
  return root;
}

const json* Find(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Result<long long> IntField(const json& obj, const char* key, std::string_view where) {
  const json* value = Find(obj, key);
  const std::string name = std::string(where) + "." + key;
  if (value == nullptr) return Status::DataLoss("missing field " + name);
  if (value->is_number_integer()) return value->get<long long>();
  if (value->is_string()) {
    const std::string& text = value->get_ref<const std::string&>();
    long long parsed = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc() && end == text.data() + text.size()) return parsed;
  }
  return Status::DataLoss("field " + name + " is not an integer: " + DescribeJson(*value));
}

Result<float> FloatField(const json& obj, const char* key, std::string_view where) {
  const json* value = Find(obj, key);
  const std::string name = std::string(where) + "." + key;
  if (value == nullptr) return Status::DataLoss("missing field " + name);
  if (value->is_number()) return static_cast<float>(value->get<double>());
  if (value->is_string()) {
    const std::string& text = value->get_ref<const std::string&>();
    float parsed = 0.0f;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc() && end == text.data() + text.size()) return parsed;
  }
  return Status::DataLoss("field " + name + " is not a number: " + DescribeJson(*value));
}

Result<float> ProbToMargin(Link link, float base_score) {
  if (link == Link::kIdentity) return base_score;
  if (!(base_score > 0.0f && base_score < 1.0f)) {
    return Status::InvalidArgument("base_score " + std::to_string(base_score) +
                                   " must be in (0, 1) for a logistic objective");
  }
  // xgboost 1.7 src/objective/regression_loss.h LogisticRegression::ProbToMargin.
  return -std::log(1.0f / base_score - 1.0f);
}

Result<LearnerInfo> ReadLearner(const json& root, Task task) {
  const json* learner = Find(root, "learner");
  if (learner == nullptr) return Status::DataLoss("not an XGBoost JSON model: no 'learner'");
  LearnerInfo info;

  const json* booster = Find(*learner, "gradient_booster");
  const json* booster_name = booster ? Find(*booster, "name") : nullptr;
  if (booster_name == nullptr || !booster_name->is_string()) {
    return Status::DataLoss("missing learner.gradient_booster.name");
  }
  info.booster = booster_name->get<std::string>();
  info.booster_model = Find(*booster, "model");

  const json* objective = Find(*learner, "objective");
  const json* objective_name = objective ? Find(*objective, "name") : nullptr;
  if (objective_name == nullptr || !objective_name->is_string()) {
    return Status::DataLoss("missing learner.objective.name");
  }
  info.objective = objective_name->get<std::string>();

  const std::string& obj = info.objective;
  if (task == Task::kBinary) {
    if (obj != "binary:logistic") {
      return Status::InvalidArgument("objective '" + obj +
                                     "' does not give probabilities for task binary "
                                     "(expected binary:logistic)");
    }
    info.link = Link::kSigmoid;
  } else if (obj == "reg:logistic") {
    info.link = Link::kSigmoid;
  } else if (obj == "reg:squarederror" || obj == "reg:squaredlogerror" ||
             obj == "reg:pseudohubererror" || obj == "reg:absoluteerror") {
    info.link = Link::kIdentity;
  } else {
    return Status::InvalidArgument(
        "objective '" + obj +
        "' is not supported for task regression (supported: " + LinkObjectives() + ")");
  }

  const json* param = Find(*learner, "learner_model_param");
  if (param == nullptr) return Status::DataLoss("missing learner.learner_model_param");
  constexpr std::string_view kWhere = "learner.learner_model_param";
  APX_ASSIGN_OR_RETURN(info.base_score, FloatField(*param, "base_score", kWhere));
  APX_ASSIGN_OR_RETURN(const long long num_feature, IntField(*param, "num_feature", kWhere));
  if (num_feature <= 0) {
    return Status::DataLoss("learner_model_param.num_feature must be positive, got " +
                            std::to_string(num_feature));
  }
  info.num_features = static_cast<size_t>(num_feature);
  if (Find(*param, "num_class") != nullptr) {
    APX_ASSIGN_OR_RETURN(const long long num_class, IntField(*param, "num_class", kWhere));
    if (num_class > 1) {
      return Status::InvalidArgument("multiclass models (num_class " + std::to_string(num_class) +
                                     ") are not supported");
    }
  }
  if (Find(*param, "num_target") != nullptr) {
    APX_ASSIGN_OR_RETURN(const long long num_target, IntField(*param, "num_target", kWhere));
    if (num_target > 1) {
      return Status::InvalidArgument("multi-target models (num_target " +
                                     std::to_string(num_target) + ") are not supported");
    }
  }
  APX_ASSIGN_OR_RETURN(info.base_margin, ProbToMargin(info.link, info.base_score));
  return info;
}

}  // namespace apx::model::internal
