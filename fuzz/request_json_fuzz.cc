// Fuzzes what an HTTP body or `predict -r` goes through: ParseJson, the serving options and
// the request fields of a fixed pipeline, and the error messages (DescribeJson/DumpJson).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/json.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"
#include "serve/api_json.h"

namespace {

constexpr char kSpec[] = R"(name: fuzz
task: regression
tables:
  flights:
    csv: flights.csv
    time_column: dep_time
    columns: {dep_time: timestamp, delay: double, distance: double, origin: string}
request:
  time: dep_time
  fields: {dep_time: timestamp, origin: string, distance: number}
features:
  - {name: distance, field: distance}
  - name: origin_7d
    table: flights
    column: delay
    keys: {origin: origin}
    window: {from: -7d, to: 0}
    aggs: [avg, p90]
model: {path: m.json}
train: {table: flights, from: 2001-01-01, to: 2001-02-01, n: 10}
test: {table: flights, from: 2001-02-01, to: 2001-03-01, n: 10}
label: {column: delay}
guarantee: {delta: 1.5, tau: 0.9}
)";

const apx::pipeline::PipelineSpec& Spec() {
  static const apx::pipeline::PipelineSpec spec = *apx::pipeline::ParseSpec(kSpec, "fuzz.yaml");
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = apx::ParseJson(text, "body");
  if (!parsed.ok()) {
    // The message goes into a JSON error body: it must serialise.
    (void)apx::serve::ErrorJson(400, "InvalidArgument", parsed.status().message());
    return 0;
  }
  (void)apx::DescribeJson(*parsed);
  (void)apx::DumpJson(*parsed);
  nlohmann::json object = *parsed;
  apx::serve::ServeRequest request;
  apx::Status s = apx::serve::ExtractServeOptions(object, &request);
  if (s.ok()) {
    auto r = apx::pipeline::ParseRequestValue(Spec(), object);
    if (!r.ok()) s = r.status();
  }
  (void)apx::serve::ErrorJson(400, "InvalidArgument", s.message());
  return 0;
}
