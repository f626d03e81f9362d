// Faults against real ClickHouse shards: the fixture pipeline (tests/pipelines/flight-small.yaml)
// on two private servers (scripts/clickhouse.sh), shard 1 reached only through fault proxies
// (src/fault): its HTTP interface, which apxserve's reads shard by shard use, and its native
// port, which the coordinator's Distributed table uses. Every request is checked against the
// exact answer of the embedded store (the same rows): a slow, cut, down or restarted shard may
// cost confidence and must be said (degraded, the shards that answered), but every request is
// answered, and the answers that claim tau meet delta at rate tau within a statistical margin.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend/clickhouse_backend.h"
#include "backend/clickhouse_servers.h"
#include "eval/eval.h"
#include "eval/profile.h"
#include "eval/requests.h"
#include "fault/fault_proxy.h"
#include "pipeline/pipeline.h"
#include "pipeline/request.h"
#include "pipeline/session.h"
#include "pipeline/spec.h"

namespace apx {
namespace {

constexpr char kSpec[] = "tests/pipelines/flight-small.yaml";

// What a run of requests came to.
struct Tally {
  int requests = 0, answered = 0, errors = 0, degraded = 0;
  int claimed = 0, claimed_met = 0;  // answers with confidence >= tau; of those within delta
  int met = 0;                       // all answers within delta
  int unexplained = 0;               // below tau without a stop reason
  int exact_unavailable = 0, cut_over = 0;
  int reread = 0;  // answers that read again strata a shard missed (Prediction::strata_reread)
  int recovered = 0;  // of which not degraded: every stratum arrived in the end
  int64_t strata_reread = 0;
  int64_t rows_read = 0, rows_matching = 0;  // over all answers
  double seconds = 0;
  std::string first_error;

  // Rows read over rows matching (N estimated from the sample): below 1 means it sampled.
  double ReadShare() const { return rows_matching > 0 ? static_cast<double>(rows_read) / rows_matching : 1.0; }

  void Print(const char* what) const {
    std::printf("%s: %d requests in %.1f s, %d answered, %d errors, %d degraded, %d of %d claiming tau within delta, "
                "%d of %d within delta, read %.3f of the rows, %d read again %lld missed strata\n",
                what, requests, seconds, answered, errors, degraded, claimed_met, claimed, met, answered, ReadShare(), reread,
                static_cast<long long>(strata_reread));
  }

  // Every answer below tau says why (Prediction::stopped), and the answers that claim tau
  // meet it at rate >= tau - 3 standard errors (checked from 30 such answers on).
  void ExpectHonest(double tau) const {
    EXPECT_EQ(unexplained, 0) << "answers below tau without a stop reason";
    if (claimed < 30) return;
    const double rate = static_cast<double>(claimed_met) / claimed;
    const double margin = 3 * std::sqrt(tau * (1 - tau) / claimed);
    EXPECT_GE(rate, tau - margin) << claimed_met << " of " << claimed << " claiming answers within delta";
  }
};

class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN);  // a cut answer is an error on its socket, not the end
    const int base = 20000;  // clickhouse_servers.h PortFor: 5,000 from clickhouse_test's
    const int port = testutil::Servers::PortFor(base);
    // The cluster reaches shard 1's native port through native_ (started below, same port).
    const int native_proxy_port = port + 4001;
    // Two replicas per shard: servers 0 and 1 are the shards' primaries, 2 and 3 their
    // replicas (read only by the hedged pipelines below).
    // The cluster reaches shard 1's replica (server 3) through native_replica_ likewise.
    const int native_replica_port = port + 4003;
    servers_.Start(2, base,
                   "--replicas 2 --cluster-port 1=" + std::to_string(native_proxy_port) + " --cluster-port 3=" +
                       std::to_string(native_replica_port));
    if (servers_.dir.empty()) return;  // SetUp skips or fails, saying why
    auto http = fault::FaultProxy::Start("127.0.0.1", 0, "127.0.0.1", port + 1, {});
    auto native = fault::FaultProxy::Start("127.0.0.1", native_proxy_port, "127.0.0.1", port + 1001, {});
    auto native_replica = fault::FaultProxy::Start("127.0.0.1", native_replica_port, "127.0.0.1", port + 1003, {});
    if (!native_replica.ok()) {
      setup_error_ = "fault proxy of the replica: " + native_replica.status().ToString();
      return;
    }
    native_replica_ = native_replica->release();
    if (!http.ok() || !native.ok()) {
      setup_error_ = "fault proxies: " + http.status().ToString() + " / " + native.status().ToString();
      return;
    }
    http_ = http->release();
    native_ = native->release();
    ::setenv("APX_CLICKHOUSE_URL", servers_.Url(0).c_str(), 1);
    primaries_ = servers_.Url(0) + ",http://127.0.0.1:" + std::to_string(http_->port());
    with_replicas_ =
        servers_.Url(0) + "|" + servers_.Url(2) + ",http://127.0.0.1:" + std::to_string(http_->port()) + "|" + servers_.Url(3);
    ::setenv("APX_CLICKHOUSE_URLS", with_replicas_.c_str(), 1);  // ingest creates the tables on all four

    auto spec = pipeline::LoadSpec(kSpec);
    if (!spec.ok()) return Fail("spec: " + spec.status().ToString());
    dir_ = (std::filesystem::temp_directory_path() / ("apx_fault_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    spec->model.path = dir_ + "/flight-small.json";
    spec->tables[0].snapshot = dir_ + "/flights-small.apxsnap";
    // The truth: the embedded store's exact path on the same rows (and the model trained there).
    {
      auto p = pipeline::Pipeline::Open(*spec, {.load_model = false});
      if (!p.ok()) return Fail("open: " + p.status().ToString());
      auto trained = eval::TrainPipeline(**p, 2, false);
      if (!trained.ok()) return Fail("train: " + trained.status().ToString());
    }
    auto truth = pipeline::Pipeline::Open(*spec);
    if (!truth.ok()) return Fail("open trained: " + truth.status().ToString());
    truth_ = truth->release();
    pipeline::PipelineSpec ch = *spec;
    ch.backend.type = "clickhouse";
    ch.backend.database = "apx_fault";
    ch.backend.cluster = "apx";
    // A read past 2 s marks its shard out for kShardRetry (the faults below that only slow a
    // read stay under it even on a loaded CI machine: late, not out).
    ch.backend.shard_timeout_ms = 2000;
    // Late means over 2x the other shard plus 50 ms: a loaded CI machine's hiccups are not
    // late, the faults below (100x, cut, down) are.
    ch.backend.late_slack_ms = 50;
    const Status ingested = pipeline::IngestClickHouse(ch);
    if (!ingested.ok()) return Fail("ingest: " + ingested.ToString());
    // Hedged: shard 1's replica is read when its primary (behind the proxy) is late or down;
    // replicated: every replica of every shard is read in every round.
    auto hedged = pipeline::Pipeline::Open(ch);
    if (!hedged.ok()) return Fail("open hedged: " + hedged.status().ToString());
    hedged_ = hedged->release();
    ch.backend.replica_reads = "all";
    auto replicated = pipeline::Pipeline::Open(ch);
    if (!replicated.ok()) return Fail("open replicated: " + replicated.status().ToString());
    replicated_ = replicated->release();
    ch.backend.replica_reads = "hedge";
    ch.guarantee.cut_over = true;
    // The cut-overs of the tests that need the exact statement run it (not a round of the
    // sampled layouts, which a small fixture's cost model may find cheaper).
    ch.backend.cut_over_reads = "statement";
    auto hedged_cutting = pipeline::Pipeline::Open(ch);
    if (!hedged_cutting.ok()) return Fail("open hedged with the cut-over: " + hedged_cutting.status().ToString());
    hedged_cutting_ = hedged_cutting->release();
    ch.guarantee.cut_over = false;
    // The others read the primaries only.
    ::setenv("APX_CLICKHOUSE_URLS", primaries_.c_str(), 1);
    ch_spec_ = ch;
    auto served = pipeline::Pipeline::Open(ch);
    if (!served.ok()) return Fail("open on clickhouse: " + served.status().ToString());
    served_ = served->release();
    // The same with the cut-over on: exact statements through the Distributed table, whose
    // reads of shard 1 go through native_.
    ch.guarantee.cut_over = true;
    auto exact = pipeline::Pipeline::Open(ch);
    if (!exact.ok()) return Fail("open with the cut-over: " + exact.status().ToString());
    cutting_ = exact->release();
    ch.backend.cut_over_reads = "sampled";
    auto sampled = pipeline::Pipeline::Open(ch);
    if (!sampled.ok()) return Fail("open finishing through the sampled layouts: " + sampled.status().ToString());
    finishing_sampled_ = sampled->release();
    std::vector<double> labels;
    const Status made = eval::MakeRequests(*truth_, spec->test, &requests_, &labels);
    if (!made.ok()) return Fail("requests: " + made.ToString());
    pipeline::Session session(*truth_);
    for (const pipeline::Request& r : requests_) {
      pipeline::Prediction p;
      const Status s = session.Predict(r, {.exact = true}, &p);
      if (!s.ok()) return Fail("exact: " + s.ToString());
      exact_.push_back(p.y);
    }
  }
  static void Fail(const std::string& what) { setup_error_ = what; }
  static void TearDownTestSuite() {
    delete hedged_cutting_;
    delete replicated_;
    delete hedged_;
    delete cutting_;
    delete finishing_sampled_;
    delete served_;
    delete truth_;
    hedged_cutting_ = replicated_ = hedged_ = cutting_ = finishing_sampled_ = served_ = truth_ = nullptr;
    delete http_;
    delete native_;
    delete native_replica_;
    http_ = native_ = native_replica_ = nullptr;
    servers_.Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (!servers_.installed) GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup.sh installs it)";
    ASSERT_FALSE(servers_.dir.empty()) << "scripts/clickhouse.sh start --shards 2 failed";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(served_, nullptr);
    ASSERT_TRUE(http_->Set({}).ok());
    ASSERT_TRUE(native_->Set({}).ok());
    ASSERT_TRUE(native_replica_->Set({}).ok());
  }
  void TearDown() override {
    if (http_ != nullptr) (void)http_->Set({});
    if (native_ != nullptr) (void)native_->Set({});
    if (native_replica_ != nullptr) (void)native_replica_->Set({});
  }

  // Answers requests [begin, end) approximately on ClickHouse, one at a time (on `p`: served_
  // by default).
  static Tally Run(size_t begin, size_t end, std::vector<pipeline::Prediction>* out = nullptr,
                   const pipeline::Pipeline* p = nullptr) {
    Tally t;
    const auto start = std::chrono::steady_clock::now();
    pipeline::Session session(p != nullptr ? *p : *served_);
    const double delta = served_->spec().guarantee.delta;
    const double tau = served_->spec().guarantee.tau;
    for (size_t i = begin; i < end && i < requests_.size(); ++i) {
      ++t.requests;
      pipeline::Prediction p;
      const Status s = session.Predict(requests_[i], {}, &p);
      if (!s.ok()) {
        ++t.errors;
        if (t.first_error.empty()) t.first_error = s.ToString();
        continue;
      }
      ++t.answered;
      t.exact_unavailable += p.exact_unavailable;
      t.reread += p.strata_reread > 0;
      t.strata_reread += p.strata_reread;
      if (std::getenv("APX_FAULT_TEST_VERBOSE") != nullptr) {
        std::printf("  request %zu: rounds %d, shards %d of %d, reread %d, stopped %s, confidence %.3f\n", i, p.rounds,
                    p.shards_answered, p.shards, p.strata_reread, std::string(pipeline::StopReasonName(p.stopped)).c_str(),
                    p.confidence);
      }
      t.cut_over += p.cut_over;
      const bool met = std::abs(p.y - exact_[i]) <= delta;
      t.met += met;
      t.degraded += p.shards > 0 && p.shards_answered < p.shards;
      t.recovered += p.strata_reread > 0 && p.shards_answered == p.shards;
      if (p.confidence >= tau) {
        ++t.claimed;
        t.claimed_met += met;
      } else if (p.stopped == pipeline::StopReason::kNone) {
        ++t.unexplained;
      }
      t.rows_read += p.rows_read;
      t.rows_matching += p.rows_matching;
      if (out != nullptr) out->push_back(p);
    }
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return t;
  }

  static inline testutil::Servers servers_;
  static inline std::string setup_error_;
  static inline std::string dir_;
  static inline std::string primaries_, with_replicas_;  // APX_CLICKHOUSE_URLS without and with replicas
  static inline fault::FaultProxy* http_ = nullptr;    // shard 1's HTTP interface
  static inline fault::FaultProxy* native_ = nullptr;  // shard 1's native port (the cluster's)
  static inline fault::FaultProxy* native_replica_ = nullptr;  // its replica's
  static inline pipeline::Pipeline* truth_ = nullptr;   // embedded, exact answers
  static inline pipeline::Pipeline* served_ = nullptr;  // ClickHouse, read shard by shard
  static inline pipeline::Pipeline* cutting_ = nullptr; // the same, cut-over on
  // The same, finishing through the sampled layouts (backend.cut_over_reads: sampled).
  static inline pipeline::Pipeline* finishing_sampled_ = nullptr;
  static inline pipeline::Pipeline* hedged_ = nullptr;   // with the replicas, hedged reads
  static inline pipeline::Pipeline* replicated_ = nullptr;  // with the replicas, all read
  static inline pipeline::Pipeline* hedged_cutting_ = nullptr;  // hedged, cut-over on
  static inline pipeline::PipelineSpec ch_spec_;  // served_'s spec
  static inline std::vector<pipeline::Request> requests_;
  static inline std::vector<double> exact_;
};

TEST_F(FaultTest, WithoutFaultsEveryShardAnswersAndTheGuaranteeHolds) {
  const int64_t exchanges = http_->counters().exchanges;
  const Tally t = Run(0, 150);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  // A shard more than late_factor times slower than the other is left out of that round even
  // without a fault (a scheduling hiccup on a loaded machine): rarely.
  EXPECT_LE(t.degraded, t.answered / 20);
  EXPECT_LT(t.ReadShare(), 0.9) << t.rows_read << " of " << t.rows_matching;  // it sampled
  EXPECT_GE(t.claimed, t.answered * 9 / 10);
  t.ExpectHonest(served_->spec().guarantee.tau);
  EXPECT_GT(http_->counters().exchanges, exchanges);  // shard 1 was read through its proxy
}

TEST_F(FaultTest, ASlowShardIsLeftOutOfItsRoundsAndTheAnswersStayHonest) {
  // Shard 1 thirty times slower on 20 % of its reads (both ports), seeded: a few ms become
  // around a hundred, past the late bound.
  const fault::FaultSpec slow{.slow_fraction = 0.2, .slow_factor = 30, .seed = 7};
  ASSERT_TRUE(http_->Set(slow).ok());
  ASSERT_TRUE(native_->Set(slow).ok());
  const int64_t slowed_before = http_->counters().slowed;
  const Tally t = Run(0, 100);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(http_->counters().slowed, slowed_before);
  // Slowed reads were not waited for: their strata were read again by a later round (which
  // the slow shard mostly answered in time), or some answers stand on shard 0's strata
  // alone.
  EXPECT_GT(t.reread, 0);
  EXPECT_GT(t.recovered, 0) << "no answer got every stratum after a re-read";
  EXPECT_GT(t.degraded + t.reread, 0);
  EXPECT_LT(t.degraded, t.answered);
  t.ExpectHonest(served_->spec().guarantee.tau);
}

TEST_F(FaultTest, AnswersCutMidWayCostTheirStrataNotTheRequest) {
  // Half the answers cut: a read is retried once on a new connection, so about a quarter of
  // shard 1's reads are lost for their round. The shard is not marked out for it: later
  // rounds read the lost strata again, and most answers end with every stratum.
  const fault::FaultSpec cut{.cut_fraction = 0.5, .seed = 3};
  ASSERT_TRUE(http_->Set(cut).ok());
  const int64_t cut_before = http_->counters().cut;
  const Tally t = Run(0, 100);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(http_->counters().cut, cut_before);
  EXPECT_GT(t.reread, 0);
  EXPECT_GT(t.recovered, 0);
  EXPECT_LT(t.degraded, t.answered / 2);
  t.ExpectHonest(served_->spec().guarantee.tau);
}

TEST_F(FaultTest, AShardDownForAWholeRunStillAnswersEveryRequestAndComesBack) {
  ASSERT_TRUE(http_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  ASSERT_TRUE(native_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  std::vector<pipeline::Prediction> down;
  const Tally t = Run(0, 60, &down);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  // Every answer says it stands on one shard of two.
  EXPECT_EQ(t.degraded, t.answered);
  for (const pipeline::Prediction& p : down) {
    EXPECT_EQ(p.shards, 2);
    EXPECT_EQ(p.shards_answered, 1);
  }
  t.ExpectHonest(served_->spec().guarantee.tau);
  // Back: after the retry interval, rounds ask shard 1 again.
  ASSERT_TRUE(http_->Set({}).ok());
  ASSERT_TRUE(native_->Set({}).ok());
  std::this_thread::sleep_for(backend::ClickHouseBackend::kShardRetry + std::chrono::milliseconds(200));
  std::vector<pipeline::Prediction> back;
  const Tally after = Run(0, 40, &back);
  EXPECT_EQ(after.errors, 0) << after.first_error;
  ASSERT_EQ(back.size(), 40u);
  int both = 0;
  for (size_t i = 10; i < back.size(); ++i) both += back[i].shards_answered == 2;
  EXPECT_GE(both, 27) << "of 30 requests after the shard came back, " << both << " read both shards";
}

TEST_F(FaultTest, AShardRestartedMidRunLosesNoRequest) {
  // Requests run while shard 1's server is stopped and started again (a real restart).
  std::atomic<bool> done{false};
  Tally t;
  std::thread client([&] {
    Tally sum;
    while (!done.load()) {
      const Tally part = Run(0, 50);
      sum.requests += part.requests;
      sum.answered += part.answered;
      sum.errors += part.errors;
      sum.degraded += part.degraded;
      sum.claimed += part.claimed;
      sum.claimed_met += part.claimed_met;
      sum.met += part.met;
      sum.unexplained += part.unexplained;
      sum.rows_read += part.rows_read;
      sum.rows_matching += part.rows_matching;
      sum.seconds += part.seconds;
      if (sum.first_error.empty()) sum.first_error = part.first_error;
    }
    t = sum;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const bool restarted = servers_.Restart(1);
  std::this_thread::sleep_for(backend::ClickHouseBackend::kShardRetry + std::chrono::milliseconds(500));
  done = true;
  client.join();
  t.Print("restart");
  ASSERT_TRUE(restarted);
  EXPECT_GT(t.requests, 0);
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(t.degraded, 0);  // some answers came while it was gone
  t.ExpectHonest(served_->spec().guarantee.tau);
  // And it is back.
  std::vector<pipeline::Prediction> back;
  Run(0, 20, &back);
  ASSERT_EQ(back.size(), 20u);
  int both = 0;
  for (size_t i = 10; i < back.size(); ++i) both += back[i].shards_answered == 2;
  EXPECT_GE(both, 8) << "of the last 10 requests, " << both << " read both shards";
}

TEST_F(FaultTest, AnExactStatementASlowShardHoldsUpFallsBackToTheShardsOwnReads) {
  // With the cut-over on, cut-overs run the exact statement through the Distributed table.
  const Tally warm = Run(0, 40, nullptr, cutting_);
  warm.Print("warm-up");
  EXPECT_EQ(warm.errors, 0) << warm.first_error;
  ASSERT_GT(warm.cut_over, 0) << "no cut-over: the test would not exercise the exact statement";
  // Shard 1's native port (the coordinator's reads of it) holds every answer 400 ms: the
  // statement runs past its budget (late_factor x its predicted cost) and the request goes on
  // sampling the shards directly (HTTP, not slowed): not degraded, no strata lost.
  // Both of its replicas: with one slow, the cluster itself would connect to the other
  // (connect_timeout_with_failover_ms), and nothing would be held up.
  ASSERT_TRUE(native_->Set({.delay_ms = 400}).ok());
  ASSERT_TRUE(native_replica_->Set({.delay_ms = 400}).ok());
  std::vector<pipeline::Prediction> out;
  const auto start = std::chrono::steady_clock::now();
  const Tally t = Run(40, 100, &out, cutting_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  t.Print("exact held up");
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(t.exact_unavailable, 0);
  EXPECT_EQ(t.degraded, 0);
  t.ExpectHonest(cutting_->spec().guarantee.tau);
  // No request waited the 400 ms out more than a few times (the budget is far below it).
  EXPECT_LT(seconds, 0.4 * 60 / 2) << seconds << " s for 60 requests";
}

TEST_F(FaultTest, ACutOverFinishesExactlyThroughTheSampledLayouts) {
  // cut_over_reads: sampled: a cut-over reads every stratum not read yet, shard by shard, and
  // answers from the estimates at p = 1, which are the exact aggregates; no exact statement.
  std::vector<pipeline::Prediction> out;
  const Tally t = Run(0, 60, &out, finishing_sampled_);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  ASSERT_EQ(t.errors, 0) << t.first_error;
  ASSERT_GT(t.cut_over, 0) << "no cut-over: the test would not exercise the sampled finish";
  EXPECT_EQ(finishing_sampled_->exact_statements(), 0);
  int cut = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!out[i].cut_over) continue;
    ++cut;
    EXPECT_NEAR(out[i].y, exact_[i], 1e-9 * std::max(1.0, std::abs(exact_[i]))) << "request " << i;
    EXPECT_EQ(out[i].shards_answered, 2) << "request " << i;
    EXPECT_GE(out[i].confidence, 1.0) << "request " << i;
  }
  EXPECT_EQ(cut, t.cut_over);
  t.ExpectHonest(finishing_sampled_->spec().guarantee.tau);
}

const backend::ClickHouseBackend& Ch(const pipeline::Pipeline* p) {
  return dynamic_cast<const backend::ClickHouseBackend&>(p->backend());
}

TEST_F(FaultTest, HedgedReadsToAReplicaCoverASlowPrimary) {
  // The same fault as above, on shard 1's primary only: a read past the late bound is sent to
  // the replica, whose answer arrives in time, so no strata go missing.
  ASSERT_TRUE(http_->Set({.slow_fraction = 0.2, .slow_factor = 100, .seed = 7}).ok());
  const auto& b = Ch(hedged_);
  const int64_t reads0 = b.reads_sent(), hedges0 = b.hedges_sent();
  const Tally t = Run(0, 100, nullptr, hedged_);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  const int64_t reads = b.reads_sent() - reads0, hedges = b.hedges_sent() - hedges0;
  std::printf("hedged: %lld reads, %lld of them hedges\n", static_cast<long long>(reads), static_cast<long long>(hedges));
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(hedges, 0);
  // Only late reads are hedged: far fewer than the reads (replication would double them).
  EXPECT_LT(hedges * 4, reads);
  // A loaded machine's hiccup can still make a hedge late too: rarely.
  EXPECT_LE(t.degraded, t.answered / 20);
  t.ExpectHonest(hedged_->spec().guarantee.tau);
}

TEST_F(FaultTest, AReplicaStandsInForADeadPrimary) {
  ASSERT_TRUE(http_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  const Tally t = Run(0, 60, nullptr, hedged_);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  // Refused at once, every read goes to the replica: nothing is missing.
  EXPECT_LE(t.degraded, t.answered / 20);
  EXPECT_GE(t.claimed, t.answered * 9 / 10);
  t.ExpectHonest(hedged_->spec().guarantee.tau);
}

TEST_F(FaultTest, ExactStatementsFailOverToAReplicaOfADeadPrimary) {
  const Tally warm = Run(0, 40, nullptr, hedged_cutting_);
  ASSERT_GT(warm.cut_over, 0) << "no cut-over: the test would not exercise the exact statement";
  // Shard 1's primary down on both ports: rounds read its replica, and the cluster's exact
  // statements connect to the replica too, so cut-overs stay available.
  ASSERT_TRUE(http_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  ASSERT_TRUE(native_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  const Tally t = Run(40, 100, nullptr, hedged_cutting_);
  t.Print(::testing::UnitTest::GetInstance()->current_test_info()->name());
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_GT(t.cut_over, 0);
  EXPECT_LE(t.exact_unavailable, t.answered / 10);
  EXPECT_LE(t.degraded, t.answered / 20);
  t.ExpectHonest(hedged_cutting_->spec().guarantee.tau);
}

TEST_F(FaultTest, APipelineOpensWhileAShardIsDownAndCatchesUpWhenItReturns) {
  // Shard 1 down on every path (its primary's HTTP and native ports, its replica's native
  // port, which the Distributed table would fail over to): the pipeline still opens, from the
  // stats of shard 0's own tables, and answers from shard 0, degraded.
  ASSERT_TRUE(http_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  ASSERT_TRUE(native_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  ASSERT_TRUE(native_replica_->Set({.mode = fault::FaultSpec::Mode::kDown}).ok());
  auto opened = pipeline::Pipeline::Open(ch_spec_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<pipeline::Pipeline> p = std::move(*opened);
  EXPECT_EQ(Ch(p.get()).stats_missing(), 1);
  std::vector<pipeline::Prediction> down;
  const Tally t = Run(0, 30, &down, p.get());
  t.Print("opened with shard 1 down");
  EXPECT_EQ(t.errors, 0) << t.first_error;
  EXPECT_EQ(t.degraded, t.answered);
  t.ExpectHonest(served_->spec().guarantee.tau);
  // Back: after the retry interval the next request reloads the stats whole, and rounds read
  // both shards again.
  ASSERT_TRUE(http_->Set({}).ok());
  ASSERT_TRUE(native_->Set({}).ok());
  ASSERT_TRUE(native_replica_->Set({}).ok());
  std::this_thread::sleep_for(backend::ClickHouseBackend::kShardRetry + std::chrono::milliseconds(200));
  const Tally after = Run(0, 40, nullptr, p.get());
  after.Print("after shard 1 came back");
  EXPECT_EQ(after.errors, 0) << after.first_error;
  EXPECT_EQ(Ch(p.get()).stats_missing(), 0);
  EXPECT_LE(after.degraded, 10);
  after.ExpectHonest(served_->spec().guarantee.tau);
}

TEST_F(FaultTest, ReplicationReadsEveryReplicaOfEveryShard) {
  const auto& b = Ch(replicated_);
  const int64_t reads0 = b.reads_sent(), hedges0 = b.hedges_sent();
  const Tally t = Run(0, 40, nullptr, replicated_);
  EXPECT_EQ(t.errors, 0) << t.first_error;
  const int64_t reads = b.reads_sent() - reads0, hedges = b.hedges_sent() - hedges0;
  ASSERT_GT(reads, 0);
  // Two replicas each: every shard's second read is extra, except where a replica was still
  // busy with an earlier round's losing read (kMaxLateReads) and not asked.
  EXPECT_LE(hedges * 2, reads);
  EXPECT_GE(hedges * 5, reads * 2) << hedges << " extra of " << reads;
  t.ExpectHonest(replicated_->spec().guarantee.tau);
}

// `apxserve profile` on the two real servers: every statement traced, every read joined with
// its server's query_log (CPU, rows scanned), the exact statements' sub-queries found on the
// other shard, and the split adding up to the latency.
TEST_F(FaultTest, ProfileJoinsEveryReadWithTheServersAccounting) {
  Result<eval::Profile> p = eval::RunProfile(*served_, {.n = 30, .progress = false});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->shards, 2);
  EXPECT_EQ(p->requests.size(), 30u);
  EXPECT_EQ(p->reads_unlogged, 0);
  int sampled = 0, reads = 0, with_cpu = 0;
  for (const eval::ProfiledStatement& s : p->statements) {
    if (s.exact) continue;
    ++sampled;
    // A read per shard holding some of the round's strata (stratum st on shard st % 2).
    bool holds[2] = {false, false};
    for (size_t i = 0; i < s.s_begin.size(); ++i) {
      for (int st = s.s_begin[i]; st < s.s_end[i]; ++st) holds[st % 2] = true;
    }
    ASSERT_EQ(s.reads.size(), static_cast<size_t>(holds[0] + holds[1]));
    int64_t rows = 0;
    for (const eval::ProfiledRead& r : s.reads) {
      EXPECT_TRUE(r.logged);
      ++reads;
      with_cpu += r.cpu_ms > 0;
      EXPECT_GE(r.read_rows, r.rows);  // the server scans whole granules
      EXPECT_GT(r.bytes_received, 0);
      rows += r.used ? r.rows : 0;
    }
    EXPECT_EQ(rows, s.rows);
  }
  ASSERT_GT(sampled, 30);
  // ClickHouse 18.16 leaves the CPU counters out for some sub-millisecond reads.
  EXPECT_GT(with_cpu, reads * 3 / 4) << with_cpu << " of " << reads << " reads with CPU time";
  const eval::ProfileSplit split = eval::Split(*p);
  EXPECT_NEAR(split.coordinator_ms + split.shard_ms + split.network_ms, split.latency_ms, 1e-6 * split.latency_ms + 1e-9);
  EXPECT_GT(split.shard_cpu_ms, 0);
  Result<eval::WhatIfModel> m = eval::FitModel(*p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_GT(m->read_branch_ms + m->read_fixed_ms, 0);
  // In-sample, the model is the profile's own latency within a wide margin (a sanity check of
  // the replay, not a speed target).
  const double predicted = eval::Predict(*p, *m, {.shards = 2}).latency_ms;
  EXPECT_GT(predicted, 0.5 * split.latency_ms);
  EXPECT_LT(predicted, 2.0 * split.latency_ms);

  // With the cut-over: exact statements through the Distributed table, whose part on shard 1
  // is a sub-query in the log of whichever of its replicas the cluster chose (after the
  // faults above, ClickHouse's own error counts may prefer the replica): the profiler reads
  // the logs of every server the urls list.
  ::setenv("APX_CLICKHOUSE_URLS", with_replicas_.c_str(), 1);
  Result<eval::Profile> cut = eval::RunProfile(*cutting_, {.n = 30, .progress = false});
  ::setenv("APX_CLICKHOUSE_URLS", primaries_.c_str(), 1);
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  int exact = 0, with_sub = 0;
  for (const eval::ProfiledStatement& s : cut->statements) {
    if (!s.exact) continue;
    ++exact;
    with_sub += !s.sub.empty();
    for (const eval::ProfiledRead& r : s.sub) EXPECT_EQ(r.shard, 1);
  }
  ASSERT_GT(exact, 0) << "no cut-over: nothing exercised the exact statement";
  EXPECT_EQ(with_sub, exact);

  // Not a backend read shard by shard.
  EXPECT_EQ(eval::RunProfile(*truth_, {.n = 5}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apx
