#include "serve/api_json.h"

#include <cmath>
#include <limits>

#include "common/json.h"

namespace apx::serve {

nlohmann::json PredictionToJson(const pipeline::Pipeline& pipeline, const pipeline::Prediction& pred) {
  const pipeline::PipelineSpec& spec = pipeline.spec();
  nlohmann::json ratios = nlohmann::json::object();
  for (size_t q = 0; q < pipeline.queries().size() && q < pred.sample_ratio.size(); ++q) {
    const pipeline::FeatureSpec& f = spec.features[pipeline.queries()[q].spec_index];
    for (const pipeline::AggSpec& a : f.aggs) ratios[a.feature] = pred.sample_ratio[q];
  }
  return {{"pipeline", spec.name},
          {"prediction", pred.y},
          {"delta", pred.delta},
          {"tau", pred.tau},
          {"confidence", pred.confidence},
          {"meets_tau", pred.confidence >= pred.tau},
          {"rounds", pred.rounds},
          {"exact", pred.exact},
          {"cut_over", pred.cut_over},
          {"stopped", pipeline::StopReasonName(pred.stopped)},
          {"rows_read", pred.rows_read},
          {"rows_matching", pred.rows_matching},
          {"sample_ratios", ratios},
          {"latency_ms",
           {{"total", pred.total_ms},
            {"data", pred.data_ms},
            {"model", pred.model_ms},
            {"planner", pred.planner_ms}}}};
}

nlohmann::json ServeResultToJson(const pipeline::Pipeline& pipeline, const ServeResult& result) {
  nlohmann::json j = PredictionToJson(pipeline, result.prediction);
  j["level"] = LevelName(result.level);
  j["planned_level"] = LevelName(result.planned_level);
  j["degraded"] = result.outcome == Outcome::kDegraded;
  j["degraded_reason"] = result.reason.empty() ? nlohmann::json() : nlohmann::json(result.reason);
  j["latency_ms"]["queue"] = result.queue_ms;
  j["latency_ms"]["service"] = result.prediction.total_ms;
  j["latency_ms"]["total"] = result.total_ms;
  return j;
}

Status ExtractServeOptions(nlohmann::json& object, ServeRequest* out) {
  if (!object.is_object()) return Status::InvalidArgument("request must be a JSON object");
  auto number = [&](const char* key, double* value, double lo, double hi, const char* range) -> Status {
    auto it = object.find(key);
    if (it == object.end()) return Status::Ok();
    if (!it->is_number()) {
      return Status::InvalidArgument(std::string("'") + key + "' must be a number, got " + DescribeJson(*it));
    }
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) {
      return Status::InvalidArgument(std::string("'") + key + "' must be " + range + ", got " + DescribeJson(*it));
    }
    *value = v;
    object.erase(it);
    return Status::Ok();
  };
  APX_RETURN_IF_ERROR(number("delta", &out->delta, 0, std::numeric_limits<double>::max(),
                             "a finite number >= 0 (> 0 for regression)"));
  APX_RETURN_IF_ERROR(number("tau", &out->tau, 1e-9, 1 - 1e-9, "in (0, 1)"));
  APX_RETURN_IF_ERROR(number("deadline_ms", &out->deadline_ms, 1e-3, 600'000, "in [0.001, 600000]"));
  if (auto it = object.find("exact"); it != object.end()) {
    if (!it->is_boolean()) return Status::InvalidArgument("'exact' must be true or false, got " + DescribeJson(*it));
    out->exact = it->get<bool>();
    object.erase(it);
  }
  return Status::Ok();
}

nlohmann::json ErrorValue(int http_status, std::string_view code, std::string_view message) {
  return {{"error", {{"status", http_status}, {"code", code}, {"message", message}}}};
}

std::string ErrorJson(int http_status, std::string_view code, std::string_view message) {
  return DumpJson(ErrorValue(http_status, code, message));
}

int HttpStatusOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

}  // namespace apx::serve
