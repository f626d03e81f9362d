// backend/clickhouse_test.cc: the ClickHouse backend against a real, private ClickHouse server
// (scripts/clickhouse.sh, loopback, temporary folder, stopped by PID): SQL quoting and
// injection attempts, ingest, exact aggregates equal to the embedded store's, sampled reads,
// fresh rows, a server that is down.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "backend/clickhouse_backend.h"
#include "backend/clickhouse_servers.h"
#include "backend/embedded_backend.h"

namespace apx::backend {
namespace {

TEST(ClickHouseQuoteTest, EscapesEveryByteThatCouldEndALiteral) {
  EXPECT_EQ(QuoteString("ATL"), "'ATL'");
  EXPECT_EQ(QuoteString("x' OR 1=1 --"), "'x\\' OR 1=1 --'");
  EXPECT_EQ(QuoteString("a\\b"), "'a\\\\b'");
  EXPECT_EQ(QuoteString(std::string_view("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(QuoteString("\xff\xfe\n"), "'\\xff\\xfe\\x0a'");
  EXPECT_TRUE(QuoteIdentifier("dep_time").ok());
  EXPECT_FALSE(QuoteIdentifier("a`; DROP TABLE x").ok());
  EXPECT_FALSE(QuoteIdentifier("").ok());
  EXPECT_FALSE(QuoteIdentifier("1abc").ok());
}

TEST(ClickHouseClientTest, ServerDownIsAClearError) {
  ClickHouseConfig config{.url = "http://127.0.0.1:1", .timeout = std::chrono::milliseconds(500)};
  auto client = ClickHouseClient::Connect(config);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(client.status().message().find("127.0.0.1:1"), std::string::npos) << client.status().message();
  EXPECT_EQ(ClickHouseClient::Connect({.url = "ftp://x"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClickHouseClient::Connect({.url = "http://h:99999"}).status().code(), StatusCode::kInvalidArgument);
}

// 30,000 rows: keys K0..K5 (K0 half of them), one row per minute, heavy-tailed values with ties
// (v), and the same values floored and capped at 40 (w: few distinct values).
std::unique_ptr<store::Table> MakeTable() {
  store::TableSchema schema{.name = "events",
                            .columns = {{"t", store::ColumnType::kTimestamp},
                                        {"v", store::ColumnType::kDouble},
                                        {"k", store::ColumnType::kString},
                                        {"w", store::ColumnType::kDouble}},
                            .time_column = "t"};
  std::vector<store::Column> cols(4);
  for (size_t i = 0; i < 4; ++i) {
    cols[i].name = schema.columns[i].name;
    cols[i].type = schema.columns[i].type;
  }
  cols[2].dictionary = {"K0", "K1", "K2", "K3", "K4", "x' OR 1=1 --"};
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> value(1.0, 1.5);
  const int n = 30000;
  for (int i = 0; i < n; ++i) {
    cols[0].ints.push_back(60LL * i);
    const double x = value(rng);
    cols[1].doubles.push_back(i % 3 == 0 ? std::round(x) : x);
    cols[2].codes.push_back(i % 2 == 0 ? 0 : 1 + (i / 2) % 5);
    cols[3].doubles.push_back(std::floor(std::min(x, 40.0)));
  }
  for (store::Column& c : cols) c.IndexDictionary();
  return std::make_unique<store::Table>(schema, std::move(cols), n);
}

using testutil::Servers;
using testutil::Shell;

class ClickHouseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_.Start(1, 10000);
    if (servers_.dir.empty()) return;  // SetUp skips or fails, saying why
    ClickHouseConfig config{.url = servers_.Url(0), .database = "apx_test"};
    auto client = ClickHouseClient::Connect(config);
    if (client.ok()) client_ = std::shared_ptr<const ClickHouseClient>(std::move(*client));
    table_ = MakeTable().release();
    if (client_ != nullptr) {
      ingest_ = ClickHouseBackend::Ingest(*client_, *table_, {{"k"}, {}}, 3);
    }
  }
  static void TearDownTestSuite() {
    client_.reset();
    delete table_;
    table_ = nullptr;
    servers_.Stop();
  }
  void SetUp() override {
    if (!servers_.installed) GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup.sh installs it)";
    ASSERT_FALSE(servers_.dir.empty()) << "scripts/clickhouse.sh start failed";
    ASSERT_NE(client_, nullptr);
    ASSERT_TRUE(ingest_.ok()) << ingest_.message();
    backend_ = std::make_unique<ClickHouseBackend>(client_, std::vector<store::TableSchema>{table_->schema()});
    auto keyed = backend_->Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
    auto all = backend_->Prepare({.table = "events", .key_columns = {}, .value_column = "v"});
    ASSERT_TRUE(keyed.ok() && all.ok());
    keyed_ = *keyed;
    all_ = *all;
    ASSERT_TRUE(backend_->Build().ok());
  }

  // The exact aggregates of (shape, key, window) from ClickHouse.
  std::vector<double> Exact(int shape, std::vector<std::string_view> key, int64_t t0, int64_t t1,
                            std::vector<agg::Aggregator>& aggs, int64_t* rows) {
    BoundQuery q;
    EXPECT_TRUE(backend_->Bind(shape, key, t0, t1, &q).ok());
    std::vector<agg::Aggregator*> ptrs;
    for (agg::Aggregator& a : aggs) ptrs.push_back(&a);
    std::vector<double> values(aggs.size());
    ExactOp op{.query = &q, .aggs = ptrs, .values = values};
    const Status s = backend_->ExactAggregates(std::span<ExactOp>(&op, 1));
    EXPECT_TRUE(s.ok()) << s.message();
    *rows = op.rows;
    return values;
  }

  static inline Servers servers_;
  static inline std::shared_ptr<const ClickHouseClient> client_;
  static inline store::Table* table_ = nullptr;
  static inline Status ingest_;
  std::unique_ptr<ClickHouseBackend> backend_;
  int keyed_ = -1, all_ = -1;
};

std::vector<agg::Aggregator> AllOps() {
  std::vector<agg::Aggregator> aggs;
  for (agg::AggOp op : {agg::AggOp::kCount, agg::AggOp::kSum, agg::AggOp::kAvg, agg::AggOp::kVar,
                        agg::AggOp::kStd, agg::AggOp::kMin, agg::AggOp::kMax, agg::AggOp::kMedian,
                        agg::AggOp::kCountDistinct}) {
    aggs.emplace_back(op);
  }
  for (double q : {0.1, 0.25, 0.9, 0.95, 0.99, 1.0, 0.0}) aggs.emplace_back(agg::AggOp::kQuantile, q);
  return aggs;
}

TEST_F(ClickHouseTest, ExactAggregatesEqualTheEmbeddedStore) {
  EmbeddedBackend embedded(3);
  ASSERT_TRUE(embedded.AddTable(MakeTable()).ok());
  auto e_keyed = embedded.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v", .count_distinct = true});
  auto e_all = embedded.Prepare({.table = "events", .key_columns = {}, .value_column = "v", .count_distinct = true});
  ASSERT_TRUE(e_keyed.ok() && e_all.ok());
  ASSERT_TRUE(embedded.Build().ok());
  struct Case { bool keyed; std::string key; int64_t t0, t1; };
  const Case cases[] = {{true, "K0", 0, 60 * 30000}, {true, "K3", 60 * 1000, 60 * 1500},
                        {true, "K2", 60 * 7, 60 * 8}, {true, "K1", 60 * 20000, 60 * 20001},
                        {false, "", 60 * 100, 60 * 29000}, {false, "", 60 * 5, 60 * 6},
                        {true, "nope", 0, 60 * 30000}, {true, "x' OR 1=1 --", 0, 60 * 3000}};
  for (const Case& c : cases) {
    std::vector<std::string_view> key;
    if (c.keyed) key.push_back(c.key);
    std::vector<agg::Aggregator> ch_aggs = AllOps(), e_aggs = AllOps();
    int64_t rows = -1;
    const std::vector<double> got = Exact(c.keyed ? keyed_ : all_, key, c.t0, c.t1, ch_aggs, &rows);
    BoundQuery q;
    ASSERT_TRUE(embedded.Bind(c.keyed ? *e_keyed : *e_all, key, c.t0, c.t1, &q).ok());
    std::vector<agg::Aggregator*> ptrs;
    for (agg::Aggregator& a : e_aggs) ptrs.push_back(&a);
    ASSERT_TRUE(embedded.ReadExact(q, ptrs).ok());
    ASSERT_TRUE(embedded.Read(q, 0, kNumStrata, ptrs).ok());
    EXPECT_EQ(rows, q.matching_rows) << c.key;
    for (size_t a = 0; a < e_aggs.size(); ++a) {
      const double want = e_aggs[a].Finalize(1.0).value;
      const std::string what = c.key + " " + std::string(agg::AggOpName(e_aggs[a].op())) + " q=" +
                               std::to_string(e_aggs[a].q()) + " rows=" + std::to_string(rows);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got[a])) << what << " got " << got[a];
      } else {
        EXPECT_NEAR(got[a], want, 1e-9 * (1 + std::abs(want))) << what;
      }
    }
  }
}

TEST_F(ClickHouseTest, InjectionAttemptsMatchNothingOrOnlyTheirOwnKey) {
  // The table holds the first attack string as a real key (3,000 rows): it must match exactly
  // those; every other attempt is a key no row has and must match nothing.
  for (std::string key : {std::string("x' OR 1=1 --"), std::string("K0' OR '1'='1"), std::string("K0\\"),
                          std::string("K0\\' OR 1=1 --"), std::string("K0\0' OR 1=1", 11),
                          std::string("\xff\xfe' OR 1=1 --"), std::string("'; DROP TABLE events; --")}) {
    std::vector<agg::Aggregator> aggs;
    aggs.emplace_back(agg::AggOp::kCount);
    int64_t rows = -1;
    const std::vector<double> got = Exact(keyed_, {key}, 0, 60 * 30000, aggs, &rows);
    const int64_t want = key == "x' OR 1=1 --" ? 3000 : 0;  // codes: odd rows cycle 1..5
    EXPECT_EQ(rows, want) << key;
    EXPECT_EQ(got[0], static_cast<double>(want)) << key;
  }
  auto still_there = client_->Query("SELECT count() FROM events");
  ASSERT_TRUE(still_there.ok());
  EXPECT_EQ(still_there->substr(0, 5), "30000");
}

TEST_F(ClickHouseTest, SampledReadsAreBernoulliSamplesOfTheWindow) {
  // Strata [0, 10) of K0's 15,000 rows: about 1,500 rows, partial moments equal to a direct
  // computation over the same rows, and growing to [10, 100) adds the rest exactly once.
  std::string_view key[] = {"K0"};
  BoundQuery q;
  ASSERT_TRUE(backend_->Bind(keyed_, key, 0, 60 * 30000, &q).ok());
  EXPECT_FALSE(q.rows_known);
  EXPECT_NEAR(static_cast<double>(q.matching_rows), 15000, 10);  // the prior from Build's stats
  agg::Aggregator avg(agg::AggOp::kAvg), median(agg::AggOp::kMedian), count(agg::AggOp::kCount);
  agg::Aggregator* ptrs[] = {&avg, &median, &count};
  auto first = backend_->Read(q, 0, 10, ptrs);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_GT(*first, 1500 - 4 * 37);  // binomial(15000, 0.1): sd 37
  EXPECT_LT(*first, 1500 + 4 * 37);
  EXPECT_EQ(avg.n(), *first);
  EXPECT_EQ(median.n(), *first);
  auto rest = backend_->Read(q, 10, kNumStrata, ptrs);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*first + *rest, 15000);
  std::vector<agg::Aggregator> exact_aggs;
  exact_aggs.emplace_back(agg::AggOp::kAvg);
  exact_aggs.emplace_back(agg::AggOp::kMedian);
  int64_t rows = 0;
  const std::vector<double> exact = Exact(keyed_, {"K0"}, 0, 60 * 30000, exact_aggs, &rows);
  EXPECT_NEAR(avg.Finalize(1.0).value, exact[0], 1e-9 * std::abs(exact[0]));
  EXPECT_EQ(median.Finalize(1.0).value, exact[1]);
  EXPECT_EQ(count.Finalize(1.0).value, 15000);
}

TEST_F(ClickHouseTest, TiedValuesShipAsCountsAndGiveTheSameSample) {
  // w has 41 distinct values: a read of ~1,500 rows ships (value, count) pairs, and the
  // aggregators see the same multiset as from the rows themselves.
  ClickHouseBackend b(client_, {table_->schema()});
  auto w = b.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "w"});
  auto v = b.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
  ASSERT_TRUE(w.ok() && v.ok());
  ASSERT_TRUE(b.Build().ok());
  EXPECT_TRUE(b.GroupsValues(*w, 1500));
  EXPECT_FALSE(b.GroupsValues(*w, 100));   // fewer rows than 4 per distinct value
  EXPECT_FALSE(b.GroupsValues(*v, 1500));  // mostly distinct values
  std::string_view key[] = {"K0"};
  BoundQuery q;
  ASSERT_TRUE(b.Bind(*w, key, 0, 60 * 30000, &q).ok());
  auto make = [] {
    std::vector<agg::Aggregator> a;
    a.emplace_back(agg::AggOp::kMedian);
    a.emplace_back(agg::AggOp::kQuantile, 0.9);
    a.emplace_back(agg::AggOp::kCountDistinct);
    a.emplace_back(agg::AggOp::kMax);
    a.emplace_back(agg::AggOp::kAvg);
    a.emplace_back(agg::AggOp::kStd);
    return a;
  };
  std::vector<agg::Aggregator> got = make(), want = make();
  std::vector<agg::Aggregator*> ptrs;
  for (agg::Aggregator& a : got) ptrs.push_back(&a);
  auto rows = b.Read(q, 0, 10, ptrs);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  auto body = client_->Query("SELECT w FROM events__s_k WHERE k = 'K0' AND stratum < 10");
  ASSERT_TRUE(body.ok());
  std::vector<double> values;
  for (size_t pos = 0; pos < body->size();) {
    const size_t nl = body->find('\n', pos);
    values.push_back(std::stod(body->substr(pos, nl - pos)));
    pos = nl + 1;
  }
  ASSERT_EQ(*rows, static_cast<int64_t>(values.size()));
  for (agg::Aggregator& a : want) a.Update(values);
  for (size_t i = 0; i < got.size(); ++i) {
    const agg::Estimate g = got[i].Finalize(0.1), e = want[i].Finalize(0.1);
    EXPECT_NEAR(g.value, e.value, 1e-9 * std::max(1.0, std::abs(e.value))) << i;
    EXPECT_NEAR(g.std, e.std, 1e-9 * std::max(1.0, std::abs(e.std))) << i;
  }
  // Grouped and plain branches in one UNION ALL (their column types must agree).
  BoundQuery qv;
  ASSERT_TRUE(b.Bind(*v, key, 0, 60 * 30000, &qv).ok());
  agg::Aggregator wm(agg::AggOp::kMedian), vm(agg::AggOp::kMedian);
  agg::Aggregator* wp[] = {&wm};
  agg::Aggregator* vp[] = {&vm};
  ReadOp ops[] = {{.query = &q, .s_begin = 10, .s_end = 20, .aggs = wp}, {.query = &qv, .s_begin = 10, .s_end = 20, .aggs = vp}};
  ASSERT_TRUE(b.ReadMany(ops).ok());
  EXPECT_EQ(ops[0].rows, ops[1].rows);  // the same strata of the same key
  EXPECT_GT(ops[0].rows, 1000);
}

TEST_F(ClickHouseTest, SharedRowsFollowTheWindowsOverlap) {
  std::string_view key[] = {"K0"};
  BoundQuery wide, inner, after;
  ASSERT_TRUE(backend_->Bind(keyed_, key, 60 * 1000, 60 * 21000, &wide).ok());
  ASSERT_TRUE(backend_->Bind(keyed_, key, 60 * 11000, 60 * 21000, &inner).ok());
  ASSERT_TRUE(backend_->Bind(keyed_, key, 60 * 21000, 60 * 29000, &after).ok());
  EXPECT_EQ(backend_->SharedSampledRows(wide, inner), inner.matching_rows);  // nested
  EXPECT_EQ(backend_->SharedSampledRows(inner, after), 0);                   // disjoint
  EXPECT_EQ(backend_->SharedSampledRows(wide, wide), wide.matching_rows);
}

TEST_F(ClickHouseTest, SortedCopyReadsTheSameStrataAsTheSampledLayout) {
  // A short window is read from the sorted copy (stratum computed per row), a long one from
  // the sampled layout; both must see exactly the rows of the sampled layout's strata.
  for (int64_t t1 : {int64_t{60 * 2000}, int64_t{60 * 30000}}) {
    std::string_view key[] = {"K0"};
    BoundQuery q;
    ASSERT_TRUE(backend_->Bind(keyed_, key, 60 * 1000, t1, &q).ok());
    EXPECT_EQ(backend_->ReadsSorted(q, 17 - 3), t1 == 60 * 2000);
    agg::Aggregator sum(agg::AggOp::kSum);
    agg::Aggregator* ptrs[] = {&sum};
    auto rows = backend_->Read(q, 3, 17, ptrs);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    auto want = client_->Query("SELECT count(), sum(v) FROM events__s_k WHERE k = 'K0' AND t >= 60000 AND t < " +
                               std::to_string(t1) + " AND stratum >= 3 AND stratum < 17");
    ASSERT_TRUE(want.ok());
    const std::string expect_rows = want->substr(0, want->find('\t'));
    EXPECT_EQ(std::to_string(*rows), expect_rows) << t1;
    const double expect_sum = std::stod(want->substr(want->find('\t') + 1));
    EXPECT_NEAR(sum.Finalize(1.0).value, expect_sum, 1e-9 * std::abs(expect_sum));
  }
}

TEST_F(ClickHouseTest, RowsInsertedDirectlyAreSeenAndIngestNeverOverwrites) {
  std::vector<agg::Aggregator> aggs;
  aggs.emplace_back(agg::AggOp::kCount);
  aggs.emplace_back(agg::AggOp::kMax);
  int64_t rows = 0;
  const int64_t t = 60 * 40000;  // after every ingested row
  std::vector<double> before = Exact(keyed_, {"K4"}, t, t + 600, aggs, &rows);
  EXPECT_EQ(rows, 0);
  // Anyone's insert into the base table, without _rid or stratum: the views get it.
  ASSERT_TRUE(client_->Execute("INSERT INTO events (t, v, k) VALUES (" + std::to_string(t + 60) + ", 1e6, 'K4')").ok());
  std::vector<double> after = Exact(keyed_, {"K4"}, t, t + 600, aggs, &rows);
  EXPECT_EQ(rows, 1);
  EXPECT_EQ(after[1], 1e6);
  std::string_view key[] = {"K4"};
  BoundQuery q;
  ASSERT_TRUE(backend_->Bind(keyed_, key, t, t + 600, &q).ok());
  agg::Aggregator max(agg::AggOp::kMax);
  agg::Aggregator* ptrs[] = {&max};
  auto read = backend_->Read(q, 0, kNumStrata, ptrs);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 1);  // it landed in some stratum
  // Rows through InsertRows (what POST /v1/tables/{table}/rows calls): named columns only,
  // ClickHouse draws _rid and the stratum.
  std::vector<store::Column> cols(4);
  for (size_t i = 0; i < 4; ++i) {
    cols[i].name = table_->schema().columns[i].name;
    cols[i].type = table_->schema().columns[i].type;
  }
  cols[0].ints = {t + 120, t + 180};
  cols[1].doubles = {2e6, -5};
  cols[2].dictionary = {"K4"};
  cols[2].codes = {0, 0};
  cols[2].IndexDictionary();
  cols[3].doubles = {40, 0};
  const store::Table fresh(table_->schema(), std::move(cols), 2);
  auto inserted = backend_->InsertRows(fresh);
  ASSERT_TRUE(inserted.ok()) << inserted.status().message();
  EXPECT_EQ(*inserted, 2);
  after = Exact(keyed_, {"K4"}, t, t + 600, aggs, &rows);
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(after[1], 2e6);
  // A second ingest of the same table is refused and leaves the rows alone.
  const Status again = ClickHouseBackend::Ingest(*client_, *table_, {{"k"}}, 3);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.message();
  auto count = client_->Query("SELECT count() FROM events");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->substr(0, 5), "30003");
}

TEST_F(ClickHouseTest, MissingLayoutAndBadSqlAreClearErrors) {
  ClickHouseBackend other(client_, {table_->schema()});
  ASSERT_TRUE(other.Prepare({.table = "events", .key_columns = {"t"}, .value_column = "v"}).ok());
  const Status built = other.Build();
  EXPECT_EQ(built.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(built.message().find("apxserve ingest"), std::string::npos) << built.message();
  auto bad = client_->Query("SELECT no_such_column FROM events");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_column"), std::string::npos) << bad.status().message();
}


}  // namespace
}  // namespace apx::backend

namespace apx::backend {
namespace {

// Two shards behind a Distributed table (scripts/clickhouse.sh start --shards 2).
class ClickHouseShardsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_.Start(2, 15000);
    if (servers_.dir.empty()) return;  // SetUp skips or fails, saying why
    for (int i = 0; i < 2; ++i) {
      auto c = ClickHouseClient::Connect({.url = servers_.Url(i), .database = "apx_d"});
      if (c.ok()) shards_.push_back(std::shared_ptr<const ClickHouseClient>(std::move(*c)));
    }
    table_ = MakeTable().release();
    if (shards_.size() == 2) {
      const ClickHouseClient* ptrs[] = {shards_[0].get(), shards_[1].get()};
      ingest_ = ClickHouseBackend::Ingest(*shards_[0], *table_, {{"k"}}, 3, nullptr, "apx", ptrs);
    }
  }
  static void TearDownTestSuite() {
    shards_.clear();
    delete table_;
    table_ = nullptr;
    servers_.Stop();
  }
  void SetUp() override {
    if (!servers_.installed) GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup.sh installs it)";
    ASSERT_FALSE(servers_.dir.empty()) << "scripts/clickhouse.sh start --shards 2 failed";
    ASSERT_EQ(shards_.size(), 2u);
    ASSERT_TRUE(ingest_.ok()) << ingest_.message();
  }
  static inline Servers servers_;
  static inline std::vector<std::shared_ptr<const ClickHouseClient>> shards_;
  static inline store::Table* table_ = nullptr;
  static inline Status ingest_;
};

TEST_F(ClickHouseShardsTest, EachShardHoldsWholeStrataAndReadsMatchTheEmbeddedStore) {
  int64_t total = 0;
  for (int i = 0; i < 2; ++i) {
    auto got = shards_[i]->Query("SELECT count(), uniqExact(stratum), min(stratum % 2), max(stratum % 2) FROM events__s_k");
    ASSERT_TRUE(got.ok()) << got.status().message();
    const std::string want_parity = std::to_string(i) + "\t" + std::to_string(i);
    EXPECT_NE(got->find("\t50\t" + want_parity), std::string::npos) << "shard " << i << ": " << *got;
    total += std::atoll(got->c_str());
  }
  EXPECT_EQ(total, 30000);
  ClickHouseBackend dist(shards_[0], {table_->schema()}, "apx");
  auto shape = dist.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
  ASSERT_TRUE(shape.ok());
  ASSERT_TRUE(dist.Build().ok());
  EmbeddedBackend embedded(3);
  ASSERT_TRUE(embedded.AddTable(MakeTable()).ok());
  auto e_shape = embedded.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
  ASSERT_TRUE(e_shape.ok() && embedded.Build().ok());
  std::string_view key[] = {"K0"};
  BoundQuery q, e;
  ASSERT_TRUE(dist.Bind(*shape, key, 60 * 100, 60 * 20000, &q).ok());
  ASSERT_TRUE(embedded.Bind(*e_shape, key, 60 * 100, 60 * 20000, &e).ok());
  std::vector<agg::Aggregator> aggs;
  for (agg::AggOp op : {agg::AggOp::kAvg, agg::AggOp::kStd, agg::AggOp::kMedian, agg::AggOp::kCount}) aggs.emplace_back(op);
  std::vector<agg::Aggregator*> ptrs;
  for (agg::Aggregator& a : aggs) ptrs.push_back(&a);
  std::vector<double> values(aggs.size());
  ExactOp op{.query = &q, .aggs = ptrs, .values = values};
  ASSERT_TRUE(dist.ExactAggregates(std::span<ExactOp>(&op, 1)).ok());
  std::vector<agg::Aggregator> e_aggs;
  for (agg::AggOp o : {agg::AggOp::kAvg, agg::AggOp::kStd, agg::AggOp::kMedian, agg::AggOp::kCount}) e_aggs.emplace_back(o);
  std::vector<agg::Aggregator*> e_ptrs;
  for (agg::Aggregator& a : e_aggs) e_ptrs.push_back(&a);
  ASSERT_TRUE(embedded.ReadExact(e, e_ptrs).ok());
  ASSERT_TRUE(embedded.Read(e, 0, kNumStrata, e_ptrs).ok());
  EXPECT_EQ(op.rows, e.matching_rows);
  for (size_t a = 0; a < aggs.size(); ++a) {
    const double want = e_aggs[a].Finalize(1.0).value;
    EXPECT_NEAR(values[a], want, 1e-9 * (1 + std::abs(want))) << agg::AggOpName(aggs[a].op());
  }
  // A sampled read over the Distributed layout: strata [0, 10) of both shards.
  agg::Aggregator count(agg::AggOp::kCount);
  agg::Aggregator* cp[] = {&count};
  auto first = dist.Read(q, 0, 10, cp);
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto direct = shards_[0]->Query("SELECT count() FROM events__s_k__d WHERE k = 'K0' AND t >= 6000 AND t < 1200000 AND stratum < 10");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(std::to_string(*first), direct->substr(0, direct->find('\n')));
  EXPECT_GT(*first, 0);
}

TEST_F(ClickHouseShardsTest, ALateShardCostsItsStrataNotTheRound) {
  // Reads shard by shard. Shard 1 stopped (SIGSTOP: a hung server that still accepts
  // connections): the round returns within the shard timeout with shard 0's strata (the even
  // ones), and says so; after SIGCONT the next round reads both shards again.
  // late_factor 0: this test is about the timeout (the fault proxy tests lateness).
  ClickHouseBackend b(shards_[0], {table_->schema()}, "apx", shards_, {.timeout = std::chrono::milliseconds(1500), .late_factor = 0});
  auto keyed = b.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
  ASSERT_TRUE(keyed.ok());
  ASSERT_TRUE(b.Build().ok());
  std::string_view key[] = {"K0"};
  BoundQuery q;
  ASSERT_TRUE(b.Bind(*keyed, key, 0, 60 * 30000, &q).ok());
  std::ifstream pids(servers_.dir + "/pids");
  pid_t shard0 = 0, shard1 = 0;
  ASSERT_TRUE(pids >> shard0 >> shard1);
  auto count = [&](int shard, int s0, int s1) {
    auto r = shards_[shard]->Query("SELECT count() FROM events__s_k WHERE k = 'K0' AND stratum >= " + std::to_string(s0) +
                                   " AND stratum < " + std::to_string(s1));
    return r.ok() ? std::stoll(*r) : -1;
  };
  const int64_t even = count(0, 0, 20);
  ASSERT_GT(even, 0);
  agg::Aggregator n(agg::AggOp::kCount);
  agg::Aggregator* ptrs[] = {&n};
  ASSERT_EQ(::kill(shard1, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{shard1};
  // The stop takes effect asynchronously: wait until the process is seen stopped (state T in
  // /proc/PID/stat) before reading, or a round sent at once may still be answered.
  auto state = [](pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
  };
  for (int i = 0; i < 200 && state(shard1) != 'T'; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(state(shard1), 'T') << "shard 1 (PID " << shard1 << ") did not stop";
  ReadOp late[] = {{.query = &q, .s_begin = 0, .s_end = 20, .aggs = ptrs}};
  ReadRound round;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(b.ReadMany(late, &round).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(round.shards, 2);
  EXPECT_EQ(round.shards_answered, 1);
  EXPECT_EQ(late[0].strata_read, 10);  // strata 0, 2, ..., 18
  EXPECT_EQ(late[0].rows, even);
  StrataSet odd;
  for (int s = 1; s < 20; s += 2) odd[s] = true;
  EXPECT_EQ(late[0].missed, odd);  // what a later round may read again
  EXPECT_FALSE(b.ShardReadable(1));
  EXPECT_TRUE(b.ShardReadable(0));
  ::kill(shard1, SIGCONT);
  // Until kShardRetry has passed the shard is skipped at once (no round waits for it again),
  // and no exact statement is offered; then the next round asks it, and it is back.
  EXPECT_FALSE(b.ExactAvailable());
  ReadOp skipped[] = {{.query = &q, .s_begin = 20, .s_end = 22, .aggs = ptrs}};
  const auto skip_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(b.ReadMany(skipped, &round).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - skip_start, std::chrono::milliseconds(1000));
  EXPECT_EQ(round.shards_answered, 1);
  EXPECT_EQ(skipped[0].strata_read, 1);
  EXPECT_TRUE(skipped[0].missed[21]);
  std::this_thread::sleep_for(ClickHouseBackend::kShardRetry + std::chrono::milliseconds(50));
  EXPECT_TRUE(b.ShardReadable(1));  // due for its retry
  // Back: the next round reads new strata and, again, the ones shard 1 missed.
  StrataSet missed = late[0].missed | skipped[0].missed;
  ReadOp back[] = {{.query = &q, .s_begin = 22, .s_end = 42, .reread = missed, .aggs = ptrs}};
  ASSERT_TRUE(b.ReadMany(back, &round).ok());
  EXPECT_EQ(round.shards_answered, 2);
  EXPECT_TRUE(b.ExactAvailable());
  EXPECT_EQ(back[0].strata_read, 20 + 11);
  EXPECT_TRUE(back[0].missed.none());
  int64_t odd_rows = count(1, 21, 22);
  for (int s = 1; s < 20; s += 2) odd_rows += count(1, s, s + 1);
  EXPECT_EQ(back[0].rows, count(0, 22, 42) + count(1, 22, 42) + odd_rows);
  // A round of re-reads alone asks only the shard holding them (shard 0 holds none of strata
  // 1 and 3: nothing of this round is on it, so it counts as answered).
  agg::Aggregator n2(agg::AggOp::kCount);
  agg::Aggregator* ptrs2[] = {&n2};
  const int64_t reads_before = b.reads_sent();
  ReadOp again[] = {{.query = &q, .s_begin = 42, .s_end = 42, .reread = StrataSet().set(1).set(3), .aggs = ptrs2}};
  ASSERT_TRUE(b.ReadMany(again, &round).ok());
  EXPECT_EQ(b.reads_sent() - reads_before, 1);
  EXPECT_EQ(round.shards_answered, 2);
  EXPECT_EQ(again[0].strata_read, 2);
  EXPECT_EQ(again[0].rows, count(1, 1, 2) + count(1, 3, 4));
  EXPECT_EQ(n2.Finalize(1.0).value, static_cast<double>(again[0].rows));
  // Shard urls in another order than the cluster's: refused at Build (the strata credited to
  // a missing shard would be the wrong ones).
  ClickHouseBackend swapped(shards_[0], {table_->schema()}, "apx", {shards_[1], shards_[0]}, {.timeout = std::chrono::milliseconds(1500)});
  ASSERT_TRUE(swapped.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"}).ok());
  const Status order = swapped.Build();
  EXPECT_EQ(order.code(), StatusCode::kFailedPrecondition) << order.message();
  // Every shard down: an error, not an empty answer.
  auto down = ClickHouseClient::Connect({.url = "http://127.0.0.1:1", .check_on_connect = false});
  ASSERT_TRUE(down.ok());
  std::vector<std::shared_ptr<const ClickHouseClient>> lost_shards = {std::shared_ptr<const ClickHouseClient>(std::move(*down))};
  ClickHouseBackend none(shards_[0], {table_->schema()}, "apx", lost_shards, {.timeout = std::chrono::milliseconds(300)});
  auto keyed_none = none.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
  ASSERT_TRUE(keyed_none.ok());
  ASSERT_TRUE(none.Build().ok());
  ASSERT_TRUE(none.Bind(*keyed_none, key, 0, 60 * 30000, &q).ok());
  ReadOp lost[] = {{.query = &q, .s_begin = 0, .s_end = 20, .aggs = ptrs}};
  EXPECT_FALSE(none.ReadMany(lost, &round).ok());
}

}  // namespace
}  // namespace apx::backend
