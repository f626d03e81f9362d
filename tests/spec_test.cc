// Pipeline spec parsing: every error names the file, the line and the field.
#include <gtest/gtest.h>

#include "pipeline/request.h"
#include "pipeline/spec.h"

namespace apx::pipeline {
namespace {

constexpr char kGood[] = R"(name: t
task: regression
tables:
  flights:
    csv: flights.csv
    time_column: dep_time
    columns: {dep_time: timestamp, delay: double, origin: string}
request:
  time: dep_time
  fields: {dep_time: timestamp, origin: string}
features:
  - {name: hour, field: dep_time, transform: hour_of_day}
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

// Replaces the first occurrence of `from` in kGood with `to`.
std::string Edit(const std::string& from, const std::string& to) {
  std::string s = kGood;
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

void ExpectError(const std::string& yaml, const std::string& needle) {
  auto spec = ParseSpec(yaml, "specs/t.yaml");
  ASSERT_FALSE(spec.ok()) << "expected an error mentioning: " << needle;
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(needle), std::string::npos)
      << spec.status().message() << "\n  should mention: " << needle;
}

TEST(SpecTest, GoodSpecParses) {
  auto spec = ParseSpec(kGood, "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "t");
  EXPECT_EQ(spec->tables[0].csv, "specs/flights.csv");
  EXPECT_EQ(spec->tables[0].snapshot, "specs/flights.csv.apxsnap");
  EXPECT_EQ(spec->FeatureNames(), (std::vector<std::string>{"hour", "origin_7d_avg", "origin_7d_p90"}));
  EXPECT_EQ(spec->features[1].window_from, -7 * 86400);
  EXPECT_EQ(spec->features[1].aggs[1].op, agg::AggOp::kQuantile);
  EXPECT_DOUBLE_EQ(spec->features[1].aggs[1].q, 0.9);
  EXPECT_DOUBLE_EQ(spec->guarantee.tau, 0.9);
  EXPECT_DOUBLE_EQ(spec->guarantee.alpha, 0.05);
  EXPECT_DOUBLE_EQ(spec->guarantee.confidence_margin, pipeline::kDefaultConfidenceMargin);
}

TEST(SpecTest, UnboundedWindowStart) {
  auto spec = ParseSpec(Edit("window: {from: -7d, to: 0}", "window: {from: -inf, to: -1h}"),
                        "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->features[1].window_from, kWindowUnbounded);
  EXPECT_EQ(spec->features[1].window_to, -3600);
  ExpectError(Edit("window: {from: -7d, to: 0}", "window: {from: inf, to: 0}"),
              "or -inf (no lower bound)");
}

TEST(SpecTest, ErrorsNameFileLineAndField) {
  ExpectError(Edit("aggs: [avg, p90]", "aggs: [avgg, p90]"), "specs/t.yaml:18: features[1].aggs[0]");
  ExpectError(Edit("aggs: [avg, p90]", "aggs: [avgg, p90]"), "unknown aggregation");
  ExpectError(Edit("window: {from: -7d, to: 0}", "window: {from: -7d}"),
              "features[1].window: a window needs `to`");
  ExpectError(Edit("window: {from: -7d, to: 0}", "window: {from: -7d, to: 1h}"),
              "features[1].window.to: a window must not look past the request time");
  ExpectError(Edit("window: {from: -7d, to: 0}", "window: {from: -7 days, to: 0}"), "features[1].window.from");
  ExpectError(Edit("column: delay\n", "column: dleay\n"), "features[1].column: table 'flights' has no column 'dleay'");
  ExpectError(Edit("keys: {origin: origin}", "keys: {origin: airport}"), "'airport' is not a request field");
  ExpectError(Edit("table: flights\n    column", "table: trips\n    column"), "unknown table 'trips'");
  ExpectError(Edit("task: regression", "task: ranking"), "task: unknown task 'ranking'");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {delta: 1.5, tau: 1.9}"),
              "guarantee.tau: must be in (0, 1)");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {tau: 0.9}"), "guarantee.delta");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {delta: .nan, tau: 0.9}"),
              "guarantee.delta: expected a finite number");
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, colour: red}"),
              "model.colour: unknown field");
  ExpectError(Edit("name: t\n", "name: t\nextra: 1\n"), "spec.extra: unknown field");
  ExpectError(Edit("origin: string}\nrequest", "origin: str}\nrequest"), "unknown column type 'str'");
  ExpectError(Edit("label: {column: delay}", "label: {column: delay, greater_than: 15}"),
              "label.greater_than is only for binary tasks");
  ExpectError(Edit("model: {path: m.json}", ""), "model: required field is missing");
  ExpectError(Edit("  - {name: hour, field: dep_time, transform: hour_of_day}",
                   "  - {name: hour, field: dep_time, transform: minute}"),
              "features[0].transform: unknown transform 'minute'");
  ExpectError(Edit("aggs: [avg, p90]", "aggs: [avg, p900]"), "bad quantile 'p900'");
  ExpectError(std::string(kGood) + "  - {name: hour, field: dep_time}\n", "");  // syntax: wrong place
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {delta: 1.5, strict: maybe}"),
              "guarantee.strict: expected true or false");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}",
                   "guarantee: {delta: 1.5, confidence_margin: -1}"),
              "guarantee.confidence_margin: must be in [0, 5]");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}",
                   "guarantee: {delta: 1.5, confidence_margin: .nan}"),
              "guarantee.confidence_margin");
  {
    std::string binary_ols = Edit("model: {path: m.json}", "model: {path: m.json, booster: ols}");
    binary_ols.replace(binary_ols.find("task: regression"), 16, "task: binary");
    binary_ols.replace(binary_ols.find("label: {column: delay}"), 22,
                       "label: {column: delay, greater_than: 1}");
    ExpectError(binary_ols, "ols (least squares) is for regression tasks");
  }
  ExpectError(Edit("    csv: flights.csv\n", "    csv: flights.csv\n    generator: {name: bearing, table: signals}\n"),
              "either csv: or generator:");
  ExpectError("name: [unclosed", "specs/t.yaml:1: YAML syntax error");
  ExpectError("just a string", "expected a YAML mapping");
}

TEST(SpecTest, DuplicateFeatureNamesAreRejected) {
  std::string s = Edit("  - name: origin_7d", "  - {name: origin_7d_avg, field: dep_time}\n  - name: origin_7d");
  ExpectError(s, "duplicate feature name 'origin_7d_avg'");
}

TEST(SpecTest, MlpBooster) {
  auto spec = ParseSpec(Edit("model: {path: m.json}", "model: {path: m.json, booster: mlp}"),
                        "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->model.booster, "mlp");
  EXPECT_EQ(spec->model.hidden, (std::vector<int>{100, 100}));
  EXPECT_DOUBLE_EQ(spec->model.eta, 0.01);  // sklearn's learning_rate_init, not XGBoost's 0.1
  spec = ParseSpec(Edit("model: {path: m.json}",
                        "model: {path: m.json, booster: mlp, hidden: [64, 32, 8], eta: 0.003}"),
                   "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->model.hidden, (std::vector<int>{64, 32, 8}));
  EXPECT_DOUBLE_EQ(spec->model.eta, 0.003);
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, booster: mpl}"),
              "model.booster: unknown booster 'mpl' (expected gbtree, rf, gblinear, ols or mlp)");
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, booster: mlp, hidden: [100, 0]}"),
              "model.hidden[1]: expected a layer width in 1..100000, got '0'");
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, booster: mlp, hidden: 100}"),
              "model.hidden: expected a list of layer widths");
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, hidden: [10]}"),
              "model.hidden: only for booster mlp");
}

// `predict -r` and the HTTP API parse requests with the same code: ~80,000 nested brackets
// once overflowed the stack (the error message dumped the value recursively), and duplicate
// keys were accepted with the last one winning.
TEST(RequestJsonTest, HostileRequestsAreClearErrors) {
  auto spec = ParseSpec(kGood, "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const std::string deep = R"({"dep_time": "2001-02-10 08:30", "origin": )" +
                           std::string(80'000, '[') + std::string(80'000, ']') + "}";
  auto r = ParseRequestJson(*spec, deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper than"), std::string::npos) << r.status().message();
  r = ParseRequestJson(*spec, R"({"dep_time": "2001-02-10 08:30", "origin": [[[["ORD"]]]]})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'origin' must be a string, got an array of 1 elements"),
            std::string::npos) << r.status().message();
  r = ParseRequestJson(*spec, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "origin": "LAX"})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("duplicate key 'origin'"), std::string::npos) << r.status().message();
  r = ParseRequestJson(*spec, "{\"dep_time\": \"2001-02-10 08:30\", \"origin\": \"\xff\"}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseRequestJson(*spec, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD"})").ok());
}

// `snapshot:` equal to `csv:` once destroyed the source CSV on the first load.
TEST(SpecTest, SnapshotMayNotBeTheCsv) {
  ExpectError(Edit("    csv: flights.csv\n", "    csv: flights.csv\n    snapshot: ./flights.csv\n"),
              "snapshot: is the CSV itself");
}

// Silently accepted before (issue 9): duplicate keys (one of them ignored), test.n 1e10 (an
// undefined cast, "0 requests"), seed -1 (wrapped), absurd network sizes, deep flow nesting.
TEST(SpecTest, SilentlyAcceptedValuesAreErrors) {
  ExpectError(Edit("name: t\n", "name: t\nname: u\n"), "duplicate key");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {delta: 1.5, tau: 0.9, tau: 0.5}"),
              "duplicate key");
  ExpectError(Edit("n: 10}\nlabel", "n: 1e10}\nlabel"), "test.n: expected an integer in 1..10000000");
  ExpectError(Edit("to: 2001-02-01, n: 10}", "to: 2001-02-01, n: 10, seed: -1}"), "train.seed: expected an integer");
  ExpectError(Edit("guarantee: {delta: 1.5, tau: 0.9}", "guarantee: {delta: 1.5, tau: 0.9, seed: 0.5}"),
              "guarantee.seed: expected an integer");
  ExpectError(Edit("model: {path: m.json}", "model: {path: m.json, booster: mlp, hidden: [100000, 100000]}"),
              "at most 20,000,000");
  ExpectError(Edit("label: {column: delay}", "label: {column: delay}\nx: " + std::string(100, '[') +
                                                 std::string(100, ']')),
              "nested deeper than 64 levels");
  ExpectError(Edit("window: {from: -7d, to: 0}", "window: {from: -9999999999d, to: 0}"), "10,000 years");
  ExpectError(Edit("keys: {origin: origin}", "keys: {origin: dep_time}"), "keys pair a string column with a string request field");
}

TEST(SpecTest, ShardReplicas) {
  const std::string backend =
      "backend: {type: clickhouse, cluster: apx, shards: [http://a:1, [http://b:1, http://c:1]], replica_reads: all}\n";
  auto spec = ParseSpec(Edit("label: {column: delay}\n", "label: {column: delay}\n" + backend), "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->backend.shards.size(), 2u);
  EXPECT_EQ(spec->backend.shards[0], "http://a:1");
  EXPECT_EQ(spec->backend.shards[1], "http://b:1|http://c:1");
  EXPECT_EQ(spec->backend.replica_reads, "all");
  auto with = [&](const std::string& b) { return Edit("label: {column: delay}\n", "label: {column: delay}\nbackend: " + b + "\n"); };
  ExpectError(with("{type: clickhouse, cluster: apx, shards: [[]]}"), "expected a url or a list of a shard's replicas' urls");
  ExpectError(with("{type: clickhouse, cluster: apx, shards: [[http://a:1, [http://b:1]]]}"), "expected a replica's url");
  ExpectError(with("{type: clickhouse, cluster: apx, shards: ['http://a:1|http://b:1']}"), "backend.shards");
  ExpectError(with("{type: clickhouse, cluster: apx, replica_reads: some}"), "expected hedge or all");
  ExpectError(with("{type: clickhouse, replica_reads: all}"), "only applies with a cluster");
}

TEST(SpecTest, CutOverReads) {
  auto with = [&](const std::string& b) { return Edit("label: {column: delay}\n", "label: {column: delay}\nbackend: " + b + "\n"); };
  auto spec = ParseSpec(with("{type: clickhouse, cut_over_reads: statement}"), "specs/t.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->backend.cut_over_reads, "statement");
  auto plain = ParseSpec(with("{type: clickhouse}"), "specs/t.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->backend.cut_over_reads, "auto");
  ExpectError(with("{type: clickhouse, cut_over_reads: rows}"), "expected auto, statement or sampled");
  ExpectError(with("{type: embedded, cut_over_reads: sampled}"), "only applies to type clickhouse");
}

TEST(SpecTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadSpec("no/such/spec.yaml").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace apx::pipeline
