// backend/clickhouse_backend.h
//
// Tables kept in ClickHouse (docs/clickhouse.md). `Ingest` creates, per spec table T:
//   T                  the base table (its columns, plus `_rid UInt64 DEFAULT rand64()`),
//                      ordered by the time column; rows inserted here by anyone are seen by
//                      the next request;
//   T__s_<keys>        per key set the prepared queries use, a materialized view of T ordered
//                      by (key columns, stratum, time): the sampled layout. Its
//                      `stratum UInt16` is cityHash64(_rid) % kNumStrata, so every row (also
//                      a row inserted later, directly into T) lands in a random stratum, the
//                      same in every layout, and strata [0, k) are a Bernoulli(k / kNumStrata)
//                      sample of any window;
//   T__k_<keys>        per key set, a materialized view ordered by (key columns, time): the
//                      sorted copy the exact SQL reads (the best exact baseline a user has).
// A request reads only new strata per round, in one statement for all its queries, with the
// aggregation pushed down: count and power sums for count/sum/avg/var/std, the values only for
// order statistics and distinct counts. The window is not counted before sampling
// (BoundQuery::rows_known = false): N is estimated from the sample. The exact path is one
// statement per request on the sorted copies.
//
// Distributed mode (a cluster): the same tables on every shard, Distributed tables over them on
// the coordinator, rows sharded by stratum.
//
// Not yet here (docs/clickhouse.md, "Status"): the outlier index (every row is sampled),
// appends through apxserve.
//
// Thread safety: after Build(), every const member may be called concurrently.
#ifndef APX_BACKEND_CLICKHOUSE_BACKEND_H_
#define APX_BACKEND_CLICKHOUSE_BACKEND_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/clickhouse_client.h"

namespace apx::backend {

// How long a round read shard by shard waits for each shard (docs/clickhouse.md, "Reads shard
// by shard").
struct ShardPolicy {
  // The hard limit of one shard's read (and never past the round's deadline). A shard that
  // misses it, or refuses the connection, is skipped for kShardRetry.
  std::chrono::milliseconds timeout{2000};
  // Once the first shard has answered after t, the others have until late_factor * t +
  // late_slack; a shard later than that is left out of this round only (its read finishes in
  // the background and its answer is dropped). 0: wait for every shard up to `timeout`.
  double late_factor = 2;
  std::chrono::microseconds late_slack{5000};
  // With replicas: read every replica of every shard at once and take the first answer (plain
  // replication). Otherwise a shard's first usable replica is read, and the next one only
  // when that read is late (past the lateness above) or fails fast: a hedged read.
  bool read_all_replicas = false;
};

// What one statement of a request cost, for `apxserve profile` (eval/profile.h): a sampled
// round read shard by shard, or an exact statement through the Distributed tables.
struct ShardReadTrace {
  int shard = 0;
  int server = 0;              // the shard's primary is server `shard`; replicas follow them
  std::string query_id;        // its id in that server's system.query_log
  int64_t wall_ns = 0;         // as the coordinator saw it: sent to last byte received
  int64_t bytes_sent = 0;      // the statement
  int64_t bytes_received = 0;  // the answer
  int64_t rows = 0;            // rows its partial states cover
  bool used = false;           // answered in time and merged into the round
  bool answered = false;       // the read whose answer stood for its shard (not a hedge's loser)
};
struct StatementTrace {
  bool exact = false;   // the exact statement (its one read is the coordinator's; the shards'
                        // sub-queries carry its query_id as initial_query_id)
  int branches = 0;     // UNION ALL branches: queries read
  int64_t wall_ns = 0;  // the whole call as the session saw it
  // The coordinator's own work: building the statement, parsing and merging the answers.
  int64_t coordinator_ns = 0;
  int64_t rows = 0;     // rows read (sampled) or matched (exact), over the shards that answered
  // Per branch: [s_begin, s_end) strata read (sampled), and the rows each brought.
  std::vector<int> s_begin, s_end;
  std::vector<int64_t> branch_rows;
  std::vector<ShardReadTrace> reads;  // one per shard asked (exact: one)
};

// Receives every statement's trace; called from the session's thread (one at a time per
// session, concurrently from several sessions).
class StatementTracer {
 public:
  virtual ~StatementTracer() = default;
  // A fresh query_id (ClickHouseClient::Query).
  virtual std::string NextQueryId() = 0;
  virtual void Record(StatementTrace trace) = 0;
};

class ClickHouseBackend : public Backend {
 public:
  // `tables`: the schemas of the spec's tables (column names and types, time column).
  // `cluster` non-empty: read the Distributed tables (DistributedName) over that cluster.
  // `shards` non-empty (with a cluster): sampled reads go to every shard's local tables
  // directly, in parallel, as `policy` says; a shard that is late or down leaves its strata
  // out of the round (ReadOp::strata_read) instead of failing it. Stats and exact statements
  // still go through the Distributed tables. `replicas[j]`: shard j's other replicas (same
  // rows), read when its primary is late, down or busy (hedged), or always
  // (policy.read_all_replicas).
  ClickHouseBackend(std::shared_ptr<const ClickHouseClient> client,
                    std::vector<store::TableSchema> tables, std::string cluster = "",
                    std::vector<std::shared_ptr<const ClickHouseClient>> shards = {},
                    ShardPolicy policy = {},
                    std::vector<std::vector<std::shared_ptr<const ClickHouseClient>>> replicas = {});
  // Waits for reads left running by rounds that stopped waiting (each within its timeout).
  ~ClickHouseBackend() override;

  Result<int> Prepare(const QueryShape& shape) override;
  // Checks that every layout exists (FailedPrecondition naming `apxserve ingest` otherwise) and
  // loads each key's row count, time span, mean and range per value column (one GROUP BY per
  // layout).
  Status Build(const store::ProgressFn& progress = nullptr) override;
  Status Bind(int shape, std::span<const std::string_view> key_values, int64_t t0, int64_t t1,
              BoundQuery* out) const override;
  Result<int64_t> Read(const BoundQuery& query, int s_begin, int s_end,
                       std::span<agg::Aggregator* const> aggs) const override;
  Result<int64_t> ReadExact(const BoundQuery& query,
                            std::span<agg::Aggregator* const> aggs) const override;
  Status ReadMany(std::span<ReadOp> ops, ReadRound* round = nullptr) const override;
  // Inserts into T (T__d with a cluster) with the columns named, so _rid and the strata come
  // from ClickHouse's defaults, as for anyone's insert. NotFound for a table not in the spec.
  Result<int64_t> InsertRows(const store::Table& rows) const override;
  bool ComputesExact() const override { return true; }
  int num_shards() const override { return shards_.empty() ? 1 : static_cast<int>(shards_.size()); }
  // A shard that missed its timeout is skipped by the next rounds (not answered) until
  // kShardRetry has passed; then one round asks it again (and it is back if it answers).
  // False while a shard is skipped (unless it has a healthy replica: ClickHouse's Distributed
  // tables connect to the next replica themselves), or has kMaxLateReads reads still running
  // that rounds stopped waiting for (the Distributed exact statement would wait for it: it
  // reads the first replica, in_order). One late read
  // alone does not count: a shard slow on one read is mostly fast on the next (measured in
  // docs/BENCHMARKS.md: counting it took flight-delay's cut-overs from 87 % to 26 % under a
  // 1 % slow fault, and its p99 from 76 to 124 ms).
  bool ExactAvailable() const override;
  // True when one of the shard's servers would be asked by the next round: not marked out (or
  // due for its retry) and with fewer than kMaxLateReads reads still running.
  bool ShardReadable(int shard) const;
  // The strata shard `shard` holds (stratum % num_shards() == shard: Ingest's sharding).
  StrataSet StrataOnShard(int shard) const;
  StrataSet ReadableStrata() const override;
  int ShardsHolding(const StrataSet& strata) const override;
  static constexpr std::chrono::milliseconds kShardRetry{1000};
  // A shard with this many reads left running by rounds that stopped waiting is not asked
  // (no thread piles up behind a hung shard before its timeout marks it out).
  static constexpr int kMaxLateReads = 2;
  Status ExactAggregates(std::span<ExactOp> ops,
                         std::chrono::steady_clock::time_point deadline =
                             std::chrono::steady_clock::time_point::max()) const override;
  bool SameRows(int shape_a, int shape_b) const override;
  // Estimated from the prior rates: the smaller window's rows times the share of it the
  // windows overlap in (the window is not counted).
  int64_t SharedSampledRows(const BoundQuery& a, const BoundQuery& b) const override;

  // Creates T, its layouts for `key_sets` and loads `table`'s rows (strata from `seed`).
  // FailedPrecondition when any of those tables already exists (checked before anything is
  // created; nothing is overwritten). Progress: rows done.
  // With a cluster: the tables are created on every server in `shards` (one per shard of the
  // cluster, as system.clusters on `client` lists it; InvalidArgument otherwise), Distributed
  // tables named DistributedName(...) on `client`, and the rows go through the Distributed
  // base table, sharded by stratum (shard = stratum % shards: whole strata per shard).
  static Status Ingest(const ClickHouseClient& client, const store::Table& table,
                       const std::vector<std::vector<std::string>>& key_sets, uint64_t seed,
                       const store::ProgressFn& progress = nullptr, const std::string& cluster = "",
                       std::span<const ClickHouseClient* const> shards = {});
  // The Distributed table over the shards' `local` tables.
  static std::string DistributedName(std::string_view local);

  // True when reading `strata` strata of `q` costs fewer rows from the sorted copy (the
  // window's rows, stratum computed per row) than from the sampled layout.
  bool ReadsSorted(const BoundQuery& q, int strata) const;

  // True when a read of `expected_rows` rows of shape `shape` ships its values as distinct
  // (value, count) pairs: when the column holds at most a quarter as many distinct values as
  // the read has rows (ties: integer minutes, prices, categories). The multiset is the same;
  // only the bytes shipped and formatted shrink.
  bool GroupsValues(int shape, double expected_rows) const;

  // Sampled reads sent to servers so far, and how many of them were hedges (a shard's second
  // or later read in a round): the extra resource that hedging or replication costs.
  int64_t reads_sent() const { return reads_sent_.load(std::memory_order_relaxed); }
  int64_t hedges_sent() const { return hedges_sent_.load(std::memory_order_relaxed); }
  int num_servers() const { return static_cast<int>(servers_.size()); }
  // Shards whose rows the per-key stats lack (out when they were loaded; reloaded once per
  // kShardRetry by the next Bind until none is missing).
  int stats_missing() const { return stats_missing_.load(std::memory_order_relaxed); }

  // Traces every later statement into `tracer` (null: none; the default). The tracer must
  // outlive the statements that use it.
  void set_tracer(StatementTracer* tracer) const { tracer_.store(tracer, std::memory_order_release); }

  // Names of the layouts of `table` for `keys`.
  static std::string SampledName(std::string_view table, const std::vector<std::string>& keys);
  static std::string SortedName(std::string_view table, const std::vector<std::string>& keys);

 private:
  struct KeyStats {
    int64_t rows = 0;
    int64_t t_min = 0, t_max = 0;
    std::vector<double> mean, lo, hi;  // per value column of the layout
  };
  struct Layout {
    const store::TableSchema* table = nullptr;
    std::vector<std::string> keys;
    std::vector<std::string> value_columns;  // columns the prepared shapes aggregate
    std::string sampled, sorted;             // quoted db.table names (Distributed with a cluster)
    std::string sampled_local, sorted_local; // the shards' own tables
    std::string stratum_expr;                // the views' stratum, from the base columns
    std::unordered_map<std::string, KeyStats> stats;  // by the keys' text joined with '\x1f'
                                                      // (guarded by stats_mu_)
    // Distinct values per value column over the whole layout (ClickHouse's uniq, ~2 %): a
    // read expecting several rows per distinct value ships (value, count) pairs
    // (GroupsValues).
    std::vector<int64_t> distinct;
    int stats_missing = 0;  // shards whose rows the stats lack (out when they were loaded)
  };
  struct Shape {
    int layout = -1;
    std::string value_column;  // quoted
    int value_idx = -1;        // into the layout's value_columns
  };


  // Loads l's per-key stats and distinct counts (Build): through the Distributed tables, or,
  // when that fails with the shards read one by one, from each shard's own tables (a shard
  // none of whose servers answers is left out: l.stats_missing).
  Status LoadStats(Layout& l, int64_t* done) const;
  // While some layout's stats lack a shard: reloads them, once per kShardRetry (one caller
  // does; the others go on with the stats they have).
  void MaybeReloadStats() const;

  // The round's statement for `ops` reading `local` (the shards' own) tables or the
  // coordinator's; wants_values per op. With `on_shard` (a shard's strata), only those strata of
  // each op (asked: the ops it reads; empty when it holds none of the round's strata).
  std::string RoundSql(std::span<ReadOp> ops, bool local, std::vector<bool>* wants_values,
                       const StrataSet* on_shard = nullptr, std::vector<bool>* asked = nullptr) const;

  std::shared_ptr<const ClickHouseClient> client_;
  std::vector<store::TableSchema> tables_;
  std::string cluster_;
  std::vector<std::shared_ptr<const ClickHouseClient>> shards_;  // the shards' primaries
  ShardPolicy policy_;
  std::vector<std::shared_ptr<const ClickHouseClient>> servers_;  // primaries, then replicas
  std::vector<std::vector<int>> replicas_of_;                     // per shard: its servers, primary first
  // Per server: steady-clock ns until which it is skipped (0: healthy).
  std::unique_ptr<std::atomic<int64_t>[]> shard_down_until_;
  // Per server: reads a round stopped waiting for that are still running.
  std::unique_ptr<std::atomic<int>[]> late_reads_;
  mutable std::atomic<int64_t> reads_sent_{0}, hedges_sent_{0};
  // A moving average of rounds' first answers (ns): how late a round of re-reads alone is.
  mutable std::atomic<int64_t> typical_read_ns_{0};
  mutable std::atomic<int> stats_missing_{0};          // the most any layout's stats lack
  mutable std::atomic<int64_t> stats_retry_at_{0};     // NowNs when a reload is next due
  // Shard reads running on their own threads (the destructor waits for them).
  mutable std::mutex reads_mu_;
  mutable std::condition_variable reads_cv_;
  mutable int reads_running_ = 0;
  // Build writes the stats; InsertRows widens them (count, time span, range) for the rows it
  // adds; Bind reads them.
  mutable std::shared_mutex stats_mu_;
  mutable std::vector<Layout> layouts_;  // stats mutable under stats_mu_
  std::vector<Shape> shapes_;
  mutable std::atomic<StatementTracer*> tracer_{nullptr};
};

}  // namespace apx::backend

#endif  // APX_BACKEND_CLICKHOUSE_BACKEND_H_
