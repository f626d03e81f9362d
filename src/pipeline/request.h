// pipeline/request.h
//
// A request: one value per request field of the pipeline spec (numbers and timestamps as
// doubles, strings as strings), parsed from JSON with errors that name the offending key.
//
// Thread safety: plain values and pure functions.
#ifndef APX_PIPELINE_REQUEST_H_
#define APX_PIPELINE_REQUEST_H_

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "common/status.h"
#include "pipeline/spec.h"

namespace apx::pipeline {

struct Request {
  std::vector<double> numbers;       // per request field (kNumber, kTimestamp: seconds)
  std::vector<std::string> strings;  // per request field (kString)
};

// Parses one JSON object, e.g. {"dep_time": "2001-06-03 14:05", "origin": "ORD", ...}.
// Errors: not an object, unknown key, missing field, wrong type, NaN/inf, bad timestamp —
// each naming the key. Timestamps may be strings or epoch seconds.
Result<Request> ParseRequestJson(const PipelineSpec& spec, const std::string& json_text);

// As ParseRequestJson, from an already parsed JSON value.
Result<Request> ParseRequestValue(const PipelineSpec& spec, const nlohmann::json& value);

// The request as JSON text (timestamps formatted), for printing request sets.
std::string RequestToJson(const PipelineSpec& spec, const Request& request);

}  // namespace apx::pipeline

#endif  // APX_PIPELINE_REQUEST_H_
