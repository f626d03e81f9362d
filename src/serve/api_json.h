// serve/api_json.h
//
// JSON shapes shared by the HTTP API and the command line (docs/api.md): a prediction, a
// request's serving options, errors.
//
// Thread safety: pure functions.
#ifndef APX_SERVE_API_JSON_H_
#define APX_SERVE_API_JSON_H_

#include <nlohmann/json.hpp>

#include <string>

#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "serve/service.h"

namespace apx::serve {

// {"pipeline", "prediction", "delta", "tau", "confidence", "meets_tau", "rounds", "exact",
//  "cut_over", "stopped", "rows_read", "rows_matching", "sample_ratios": {feature: ratio},
//  "latency_ms": {"total", "data", "model", "planner"}}.
nlohmann::json PredictionToJson(const pipeline::Pipeline& pipeline, const pipeline::Prediction& pred);

// A served answer: PredictionToJson plus "level", "planned_level", "degraded",
// "degraded_reason" and latency_ms.queue / latency_ms.total from admission.
nlohmann::json ServeResultToJson(const pipeline::Pipeline& pipeline, const ServeResult& result);

// Splits a request object into its fields and the serving options "delta", "tau",
// "deadline_ms" and "exact" (removed from `object`). InvalidArgument naming the key for a
// wrong type or value. The remaining fields are parsed by ParseRequestValue.
Status ExtractServeOptions(nlohmann::json& object, ServeRequest* out);

// {"error": {"status": http_status, "code": "...", "message": "..."}}, as a value and as text.
nlohmann::json ErrorValue(int http_status, std::string_view code, std::string_view message);
std::string ErrorJson(int http_status, std::string_view code, std::string_view message);

// The HTTP status for a Status code (400 InvalidArgument, 404 NotFound, 503 Unavailable, ...).
int HttpStatusOf(const Status& status);

}  // namespace apx::serve

#endif  // APX_SERVE_API_JSON_H_
