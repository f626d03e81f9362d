// End to end on the committed fixture: train a model on exact features, then answer test
// requests exactly and approximately and check the guarantee.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/requests.h"
#include "eval/eval.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"
#include "store/sampled_index.h"
#include "store/table.h"

namespace apx {
namespace {

constexpr char kSpec[] = "tests/pipelines/flight-small.yaml";

std::string TempDir() {
  auto dir = std::filesystem::temp_directory_path() / ("apx_e2e_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto spec = pipeline::LoadSpec(kSpec);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    spec->model.path = TempDir() + "/flight-small.json";
    spec->tables[0].snapshot = TempDir() + "/flights-small.apxsnap";
    auto p = pipeline::Pipeline::Open(*spec, {.load_model = false});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    auto report = eval::TrainPipeline(**p, 2, false);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    // Re-open with the trained model, as a server would.
    auto served = pipeline::Pipeline::Open(*spec);
    ASSERT_TRUE(served.ok()) << served.status().ToString();
    pipeline_ = served->release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    pipeline_ = nullptr;
  }
  static pipeline::Pipeline* pipeline_;
};

pipeline::Pipeline* EndToEndTest::pipeline_ = nullptr;

TEST_F(EndToEndTest, AlphaOneEqualsExact) {
  ASSERT_NE(pipeline_, nullptr);
  pipeline::PipelineSpec spec = pipeline_->spec();
  spec.guarantee.alpha = 1.0;
  auto full = pipeline::Pipeline::Open(spec);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  ASSERT_TRUE(eval::MakeRequests(**full, spec.test, &requests, &labels).ok());
  pipeline::Session session(**full);
  for (size_t i = 0; i < 50; ++i) {
    pipeline::Prediction exact, approx;
    ASSERT_TRUE(session.Predict(requests[i], {.exact = true}, &exact).ok());
    ASSERT_TRUE(session.Predict(requests[i], {}, &approx).ok());
    EXPECT_EQ(approx.y, exact.y) << "request " << i;
    EXPECT_TRUE(approx.exact);
    EXPECT_EQ(approx.confidence, 1.0);
  }
}

TEST_F(EndToEndTest, ModelOfAnotherFamilyIsRefused) {
  ASSERT_NE(pipeline_, nullptr);
  pipeline::PipelineSpec spec = pipeline_->spec();
  spec.model.booster = "mlp";  // the saved model is a tree ensemble
  auto p = pipeline::Pipeline::Open(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("is a trees model but the spec asks for booster 'mlp'"),
            std::string::npos)
      << p.status().message();
}

// Same number of features, other features (issue 9: a renamed or reordered feature was fed
// the wrong column without a word). Trained models store their feature names.
TEST_F(EndToEndTest, ModelTrainedOnOtherFeaturesIsRefused) {
  ASSERT_NE(pipeline_, nullptr);
  pipeline::PipelineSpec spec = pipeline_->spec();
  ASSERT_GE(spec.features.size(), 2u);
  std::swap(spec.features[0], spec.features[1]);  // same count, other order
  auto p = pipeline::Pipeline::Open(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("was trained on other features (feature 0"), std::string::npos)
      << p.status().message();
}

TEST_F(EndToEndTest, MeetRateAtLeastTau) {
  ASSERT_NE(pipeline_, nullptr);
  auto report = eval::RunEval(*pipeline_, {.n = 300, .progress = false});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->requests, 300);
  EXPECT_GE(report->meet_rate, report->tau);
  // The approximation actually approximates: it reads less than everything on average.
  EXPECT_LT(report->avg_sample_ratio, 0.9);
  EXPECT_GE(report->avg_rounds, 1.0);
  // ...and its answers agree with the labels about as well as the exact ones.
  EXPECT_NEAR(report->approx_metric, report->exact_metric, 0.02);
  // Every answer reports a confidence >= tau or is exact.
  EXPECT_EQ(report->low_confidence_rate, 0.0);
}

// eval --interleave answers each request both ways back to back: the same requests and
// exact answers as two passes, both paths timed, the guarantee checked as before.
TEST_F(EndToEndTest, InterleavedEvalMeasuresBothPathsOnTheSameRequests) {
  ASSERT_NE(pipeline_, nullptr);
  auto passes = eval::RunEval(*pipeline_, {.n = 150, .progress = false});
  auto interleaved = eval::RunEval(*pipeline_, {.n = 150, .progress = false, .interleave = true});
  ASSERT_TRUE(passes.ok() && interleaved.ok());
  EXPECT_EQ(interleaved->requests, 150);
  EXPECT_EQ(interleaved->exact_metric, passes->exact_metric);
  EXPECT_GT(interleaved->exact_latency.p50, 0);
  EXPECT_GT(interleaved->approx_latency.p50, 0);
  EXPECT_GE(interleaved->meet_rate, interleaved->tau);
  // The per-request records (eval --requests-out) add up to the report's aggregates.
  ASSERT_EQ(interleaved->per_request.size(), 150u);
  double met = 0, rounds = 0, cut = 0;
  for (const eval::RequestRecord& rec : interleaved->per_request) {
    EXPECT_GT(rec.exact_ms, 0);
    EXPECT_GT(rec.approx_ms, 0);
    met += rec.met;
    rounds += rec.rounds;
    cut += rec.cut_over;
  }
  EXPECT_NEAR(met / 150, interleaved->meet_rate, 1e-12);
  EXPECT_NEAR(rounds / 150, interleaved->avg_rounds, 1e-12);
  EXPECT_NEAR(cut / 150, interleaved->cut_over_rate, 1e-12);
  const std::string csv = interleaved->PerRequestCsv();
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 151) << "a header and one line per request";
  EXPECT_EQ(csv.rfind("request,rows_matching,exact_ms,approx_ms,", 0), 0u);
}

TEST_F(EndToEndTest, StrictModeKeepsTheGuaranteeWithStricterRounds) {
  ASSERT_NE(pipeline_, nullptr);
  pipeline::PipelineSpec spec = pipeline_->spec();
  spec.guarantee.strict = true;
  auto strict = pipeline::Pipeline::Open(spec);
  ASSERT_TRUE(strict.ok()) << strict.status().ToString();
  auto report = eval::RunEval(**strict, {.n = 200, .progress = false});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->meet_rate, report->tau);
  // Round 0 must reach 1 - 0.05/2 = 0.975, so answers carry at least that much confidence
  // unless later rounds or exact reads were needed.
  EXPECT_GE(report->avg_confidence, 0.975);
}

TEST_F(EndToEndTest, SampleCapBoundsReadsAndIsReportedHonestly) {
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  ASSERT_TRUE(eval::MakeRequests(*pipeline_, pipeline_->spec().test, &requests, &labels).ok());
  pipeline::Session session(*pipeline_);
  int capped = 0, meets = 0;
  for (size_t i = 0; i < 150; ++i) {
    pipeline::Prediction exact, pred;
    ASSERT_TRUE(session.Predict(requests[i], {.exact = true}, &exact).ok());
    ASSERT_TRUE(session.Predict(requests[i], {.max_sample_ratio = 0.03}, &pred).ok());
    if (pred.cut_over) continue;  // answered exactly: the cap does not apply
    for (size_t q = 0; q < pred.sample_ratio.size(); ++q) {
      if (pred.query_rows[q] >= 10'000) {
        // The cap bounds the sampled rest (3 strata + rounding); the store's outlier index
        // (exact part, at most 1 % of a group's rows per aggregated column) comes on top.
        EXPECT_LE(pred.sample_ratio[q], 0.04 + 2 * store::kOutlierFraction) << i << "/" << q;
      }
    }
    if (pred.stopped == pipeline::StopReason::kSampleCap) {
      ++capped;
      EXPECT_LT(pred.confidence, pred.tau);  // it says it did not reach τ
    } else {
      EXPECT_GE(pred.confidence, pred.tau);
    }
    const bool meet = std::abs(pred.y - exact.y) <= pred.delta;
    meets += meet;
  }
  EXPECT_GT(capped, 0);  // at 3 % some requests cannot reach τ = 0.95
  EXPECT_GT(meets, 0);
}

TEST_F(EndToEndTest, PastDeadlineAnswersAfterOneRound) {
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  ASSERT_TRUE(eval::MakeRequests(*pipeline_, pipeline_->spec().test, &requests, &labels).ok());
  pipeline::Session session(*pipeline_);
  int stopped = 0;
  for (size_t i = 0; i < 100; ++i) {
    pipeline::Prediction pred;
    ASSERT_TRUE(session.Predict(requests[i], {.deadline = std::chrono::steady_clock::now()}, &pred).ok());
    EXPECT_LE(pred.rounds, 1);
    EXPECT_FALSE(pred.cut_over && pred.rounds > 0);  // no exact finish past the deadline
    if (pred.stopped == pipeline::StopReason::kDeadline) {
      ++stopped;
      EXPECT_LT(pred.confidence, pred.tau);
    }
  }
  EXPECT_GT(stopped, 0);
  pipeline::Prediction bad;
  EXPECT_EQ(session.Predict(requests[0], {.max_sample_ratio = 0}, &bad).code(),
            StatusCode::kInvalidArgument);
}

// ---- the cut-over: fires when exact is cheaper, not otherwise, and keeps learning ----

// A fresh pipeline on the fixture with the cut-over on (the fixture's spec turns it off; its
// cost statistics are its own) and its test requests.
std::unique_ptr<pipeline::Pipeline> FreshPipeline(const pipeline::Pipeline& trained,
                                                  std::vector<pipeline::Request>* requests) {
  pipeline::PipelineSpec spec = trained.spec();
  spec.guarantee.cut_over = true;
  auto p = pipeline::Pipeline::Open(spec);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return nullptr;
  std::vector<double> labels;
  EXPECT_TRUE(eval::MakeRequests(**p, trained.spec().test, requests, &labels).ok());
  return std::move(*p);
}

// Pins the cost model: reading a row costs `ns_per_row`, a propagation round `round_ns`.
void PinCosts(const pipeline::Pipeline& p, double ns_per_row, double round_ns) {
  for (int rep = 0; rep < 200; ++rep) {
    for (size_t q = 0; q < p.queries().size(); ++q) p.RecordQueryCost(q, ns_per_row);
    p.RecordRoundOverhead(round_ns);
  }
}

TEST_F(EndToEndTest, CutOverFiresWhenExactIsCheaper) {
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  auto p = FreshPipeline(*pipeline_, &requests);
  ASSERT_NE(p, nullptr);
  pipeline::Session session(*p);
  int cut = 0, probes = 0;
  const int n = 96;
  for (int i = 0; i < n; ++i) {
    PinCosts(*p, 0.01, 5e6);  // rows nearly free, a round 5 ms: exact is far cheaper
    pipeline::Prediction exact, pred;
    ASSERT_TRUE(session.Predict(requests[i], {.exact = true}, &exact).ok());
    ASSERT_TRUE(session.Predict(requests[i], {}, &pred).ok());
    if (pred.cut_over && pred.rounds == 0) {
      ++cut;
      EXPECT_TRUE(pred.exact);
      EXPECT_EQ(pred.y, exact.y);  // the exact path's answer
    } else {
      ++probes;  // every 32nd would-be cut-over approximates to keep the averages learning
    }
  }
  EXPECT_EQ(probes, n / static_cast<int>(pipeline::Pipeline::kProbeEvery));
  EXPECT_EQ(cut + probes, n);
}

TEST_F(EndToEndTest, CutOverDoesNotFireWhenApproximatingIsCheaper) {
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  auto p = FreshPipeline(*pipeline_, &requests);
  ASSERT_NE(p, nullptr);
  pipeline::Session session(*p);
  int approximated = 0, upfront = 0;
  const int n = 100;
  for (int i = 0; i < n; ++i) {
    PinCosts(*p, 1e4, 1e3);  // rows expensive (10 µs), a round 1 µs: sampling pays
    pipeline::Prediction pred;
    ASSERT_TRUE(session.Predict(requests[i], {}, &pred).ok());
    approximated += pred.rounds >= 1;
    upfront += pred.cut_over && pred.rounds == 0;
  }
  EXPECT_EQ(upfront, 0);
  EXPECT_GE(approximated, n * 9 / 10);
}

TEST_F(EndToEndTest, CutOverKeepsLearningWhenEveryRequestCutsOver) {
  // A pipeline whose cost model says approximating takes 50 rounds and reads everything cuts
  // every request over up front; the probes (1 in 32) approximate anyway and pull the averages
  // back to what approximating really costs, so the pipeline does not stay exact forever.
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  auto p = FreshPipeline(*pipeline_, &requests);
  ASSERT_NE(p, nullptr);
  for (int rep = 0; rep < 300; ++rep) p->RecordApproximate(50, 1.0, 50);
  const double pinned = p->average_rounds();
  ASSERT_GT(pinned, 40);
  pipeline::Session session(*p);
  int probes = 0;
  for (size_t i = 0; i < 960; ++i) {
    pipeline::Prediction pred;
    ASSERT_TRUE(session.Predict(requests[i % requests.size()], {}, &pred).ok());
    probes += pred.rounds >= 1;
  }
  EXPECT_GE(probes, 960 / 32 - 2);
  EXPECT_LT(p->average_rounds(), 0.5 * pinned);
}

TEST_F(EndToEndTest, SameRequestSameAnswer) {
  ASSERT_NE(pipeline_, nullptr);
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  ASSERT_TRUE(eval::MakeRequests(*pipeline_, pipeline_->spec().test, &requests, &labels).ok());
  pipeline::Session a(*pipeline_), b(*pipeline_);
  for (size_t i = 0; i < 20; ++i) {
    pipeline::Prediction pa, pb;
    ASSERT_TRUE(a.Predict(requests[i], {.exact = true}, &pa).ok());
    ASSERT_TRUE(b.Predict(requests[i], {.exact = true}, &pb).ok());
    EXPECT_EQ(pa.y, pb.y);
  }
}

TEST_F(EndToEndTest, BadRequestsGetClearErrors) {
  ASSERT_NE(pipeline_, nullptr);
  const pipeline::PipelineSpec& spec = pipeline_->spec();
  auto expect_error = [&](const std::string& json, const std::string& needle) {
    auto r = pipeline::ParseRequestJson(spec, json);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos)
        << r.status().message() << " should mention " << needle;
  };
  expect_error("{", "not valid JSON");
  expect_error("[1,2]", "must be a JSON object");
  expect_error(R"({"dep_time":"2001-02-10 10:00","origin":"ORD","dest":"LAX"})", "missing request field 'distance'");
  expect_error(R"({"dep_time":"2001-02-10 10:00","origin":"ORD","dest":"LAX","distance":"far"})",
               "'distance' must be a number");
  expect_error(R"({"dep_time":"yesterday","origin":"ORD","dest":"LAX","distance":1})", "'dep_time'");
  expect_error(R"({"dep_time":"2001-02-10 10:00","origin":7,"dest":"LAX","distance":1})", "'origin' must be a string");
  expect_error(R"({"dep_time":"2001-02-10 10:00","origin":"ORD","dest":"LAX","distance":1,"colour":"red"})",
               "unknown request field 'colour'");
  expect_error(R"({"dep_time":"2001-02-10 10:00","origin":"ORD","dest":"LAX","distance":1e999})", "1e999");

  // An airport that never occurs is not an error: its aggregations are empty (exact, missing).
  auto r = pipeline::ParseRequestJson(
      spec, R"({"dep_time":"2001-02-10 10:00","origin":"XXX","dest":"LAX","distance":500})");
  ASSERT_TRUE(r.ok());
  pipeline::Session session(*pipeline_);
  pipeline::Prediction pred;
  ASSERT_TRUE(session.Predict(*r, {}, &pred).ok());
  EXPECT_TRUE(std::isfinite(pred.y));
  // Bad per-request guarantee overrides.
  EXPECT_FALSE(session.Predict(*r, {.delta = 0.0}, &pred).ok());
  EXPECT_FALSE(session.Predict(*r, {.tau = 1.5}, &pred).ok());
}

TEST(PipelineOpenTest, BadCsvRowNamesLineAndColumn) {
  const std::string dir = TempDir();
  const std::string csv = dir + "/bad.csv";
  {
    std::ofstream out(csv);
    out << "dep_time,delay,distance,origin,dest\n2001-01-01 00:01,3,100,ORD,LAX\n2001-01-01 00:02,x,100,ORD,LAX\n";
  }
  auto spec = pipeline::LoadSpec(kSpec);
  ASSERT_TRUE(spec.ok());
  spec->tables[0].csv = csv;
  spec->tables[0].snapshot = dir + "/bad.apxsnap";
  auto p = pipeline::Pipeline::Open(*spec, {.load_model = false});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("bad.csv:3: column 'delay'"), std::string::npos)
      << p.status().message();
}

// A snapshot ingested under an older spec (no time_column) was used by a newer one with
// windows: windows silently ignored, wrong predictions. Now it is rebuilt from the CSV, or
// refused when the CSV is gone; a user's file at the snapshot path is never replaced.
TEST(PipelineOpenTest, StaleOrForeignSnapshotsAreRebuiltOrRefused) {
  const std::string dir = TempDir() + "/stale";
  std::filesystem::create_directories(dir);
  auto spec = pipeline::LoadSpec(kSpec);
  ASSERT_TRUE(spec.ok());
  const std::string csv = dir + "/flights.csv";
  std::filesystem::copy_file(spec->tables[0].csv, csv, std::filesystem::copy_options::overwrite_existing);
  spec->tables[0].csv = csv;
  spec->tables[0].snapshot = dir + "/flights.apxsnap";
  std::filesystem::remove(spec->tables[0].snapshot);
  pipeline::PipelineSpec old_spec = *spec;
  old_spec.tables[0].schema.time_column.clear();
  ASSERT_TRUE(pipeline::Pipeline::Open(old_spec, {.load_model = false}).ok());  // writes the old snapshot
  auto rebuilt = pipeline::Pipeline::Open(*spec, {.load_model = false});
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  auto reread = store::ReadSnapshot(spec->tables[0].snapshot);
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ((*reread)->schema().time_column, spec->tables[0].schema.time_column);

  ASSERT_TRUE(pipeline::Pipeline::Open(old_spec, {.load_model = false}).ok());  // old again
  std::filesystem::remove(csv);
  auto refused = pipeline::Pipeline::Open(*spec, {.load_model = false});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("was built for another definition of table"), std::string::npos)
      << refused.status().message();

  // A user's file at the snapshot path: an error, and the file is untouched.
  auto fresh = pipeline::LoadSpec(kSpec);
  ASSERT_TRUE(fresh.ok());
  fresh->tables[0].snapshot = dir + "/notes.txt";
  {
    std::ofstream out(fresh->tables[0].snapshot);
    out << "my notes";
  }
  auto p = pipeline::Pipeline::Open(*fresh, {.load_model = false});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("refusing to replace"), std::string::npos) << p.status().message();
  std::ifstream in(fresh->tables[0].snapshot);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "my notes");
}

TEST(PipelineOpenTest, MissingModelSaysHowToTrainIt) {
  auto spec = pipeline::LoadSpec(kSpec);
  ASSERT_TRUE(spec.ok());
  spec->model.path = TempDir() + "/no-such-model.json";
  spec->tables[0].snapshot = TempDir() + "/flights-small.apxsnap";
  auto p = pipeline::Pipeline::Open(*spec);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("apxserve train"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace apx
