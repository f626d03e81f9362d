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

// Rows for POST /v1/tables/{table}/rows as a table of `schema`: CSV with a header line when
// `content_type` starts with text/csv (store::ParseCsv's checks), else JSON lines: one object
// per line holding exactly the schema's columns (numbers for int64/double, a string for
// string columns, a string "YYYY-MM-DD[ HH:MM[:SS]]" or epoch seconds for timestamps).
// InvalidArgument naming the line and column for anything else (unknown or missing column,
// NaN, a wrong type, invalid UTF-8, more than max_rows rows, no row at all).
Result<std::unique_ptr<store::Table>> ParseRowsBody(std::string_view body, std::string_view content_type,
                                                    const store::TableSchema& schema, int64_t max_rows = 1000000);

// The HTTP status for a Status code (400 InvalidArgument, 404 NotFound, 503 Unavailable, ...).
int HttpStatusOf(const Status& status);

}  // namespace apx::serve

#endif  // APX_SERVE_API_JSON_H_
