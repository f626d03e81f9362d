// backend/backend.h
//
// The data-source interface of apxserve: turns an aggregation query (table, key filter, time
// window) plus a sample size into rows fed to the aggregators. The embedded store is the
// default implementation (backend/embedded_backend.h); a database backend implements the same
// interface.
//
// Samples are measured in strata: a query's rows are split into an exact part (the outlier
// index: rows that would dominate the group's variance, read whole by every request) and the
// rest, split into kNumStrata random strata; reading strata [0, k) reads a uniform random
// sample of ratio k / kNumStrata of the rest. Growing a sample from k to k' strata reads strata
// [k, k') only.
//
// Thread safety: after Build(), Bind() and Read() are const and may be called concurrently.
#ifndef APX_BACKEND_BACKEND_H_
#define APX_BACKEND_BACKEND_H_

#include <algorithm>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agg/aggregate.h"
#include "common/status.h"
#include "store/sampled_index.h"
#include "store/table.h"

namespace apx::backend {

inline constexpr int kNumStrata = store::kNumStrata;

// A set of strata (bit s: stratum s).
using StrataSet = std::bitset<kNumStrata>;

// Strata [begin, end) (clamped to [0, kNumStrata)).
inline StrataSet StrataRange(int begin, int end) {
  StrataSet set;
  for (int s = std::max(0, begin); s < std::min(end, kNumStrata); ++s) set[s] = true;
  return set;
}

// The request-independent part of an aggregation query.
struct QueryShape {
  std::string table;
  std::vector<std::string> key_columns;  // filter key (may be empty: the whole table)
  std::string value_column;              // the aggregated column
  // The query computes count_distinct: the layout then counts the distinct values of the
  // column per key (BoundQuery::rest_distinct; a sort per key at build time, so only on
  // request).
  bool count_distinct = false;
};

// A query bound to one request: the rows of one key inside one time window.
struct BoundQuery {
  int shape = -1;
  int group = -1;             // -1: no row has this key, so the query matches no row
  int64_t matching_rows = 0;  // rows matching the query (exact; the store knows it)
  int64_t exact_rows = 0;     // of which in the exact part (ReadExact)
  // Range every sampled (non-exact) row's value lies in; NaN when unknown.
  double rest_min = std::numeric_limits<double>::quiet_NaN();
  double rest_max = std::numeric_limits<double>::quiet_NaN();
  // When the range is unknown because the backend's stats lack a shard's rows: the range on
  // the shards it has (NaN otherwise). A hint for answers that never claim τ
  // (Session::WidenUnusable), not a bound the estimators may rely on.
  double seen_min = std::numeric_limits<double>::quiet_NaN();
  double seen_max = std::numeric_limits<double>::quiet_NaN();
  // Distinct values among the sampled part's rows of the whole key (any window has at most
  // as many); -1 when unknown.
  int64_t rest_distinct = -1;
  store::StrataWindow window;
  // False when the backend does not count the window before sampling it (a database): then
  // matching_rows is only a prior for planning, reading strata [0, k) samples every row with
  // probability k / kNumStrata, and the estimators take N_rest = n / p (Horvitz–Thompson).
  bool rows_known = true;
  // A value near the matching rows' mean (0 when unknown): pushed-down power sums are taken
  // about it to stay well conditioned.
  double center = 0;
  // A remote backend's filter for this query (its SQL WHERE clause) and the key's rows over
  // all time; opaque to callers.
  std::string remote_filter;
  int64_t remote_key_rows = 0;
  int64_t remote_t0 = 0, remote_t1 = 0;  // the window (also set by the embedded store)
  // Rows appended to the embedded store since it was built (EmbeddedBackend::InsertRows): the
  // key's appended rows, and the append count when the query was bound (rows appended later
  // belong to later requests). Opaque to callers; null when there are none.
  const void* delta = nullptr;
  uint64_t delta_seq = 0;

  // Rows in the sampled part (strata 0..kNumStrata-1).
  int64_t sampled_rows() const { return matching_rows - exact_rows; }
};

// One query's part of a batched read (Backend::ReadMany).
struct ReadOp {
  const BoundQuery* query = nullptr;
  int s_begin = 0, s_end = 0;  // strata of the sampled rest to read (s_begin == s_end: none)
  // Strata below s_begin to read again: those a late or down shard missed in an earlier round
  // of the request (only a backend with shards misses any: num_shards() > 1).
  StrataSet reread;
  bool exact_part = false;     // also read the exact part whole (Aggregator::UpdateExact)
  std::span<agg::Aggregator* const> aggs;
  int64_t rows = 0;        // out: sampled rows read
  int64_t exact_rows = 0;  // out: exact-part rows read
  double ns = 0;           // out: the time this op took (a batch's time shared by rows)
  // out: strata asked ([s_begin, s_end) and reread) whose rows arrived: all of them, unless a
  // shard holding some was late or down. The rows read are then those of the strata that did
  // arrive, still a uniform random sample; `missed` says which did not (a later round may
  // read them again).
  int strata_read = 0;
  StrataSet missed;

  // Strata asked.
  StrataSet strata() const { return StrataRange(s_begin, s_end) | reread; }
  int strata_asked() const { return std::max(0, s_end - s_begin) + static_cast<int>(reread.count()); }
  bool asks() const { return s_end > s_begin || reread.any(); }
};

// One round of reads (ReadMany): its deadline, and which shards answered in time.
struct ReadRound {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  int shards = 0;           // out: shards the round asked (0: a backend without shards)
  int shards_answered = 0;  // out: shards whose rows arrived in time
  int shards_late = 0;      // out: shards left out for being much later than the first
                            // (ShardPolicy::late_factor), not for a timeout or an error
  int hedged = 0;           // out: reads sent to a second replica of a shard
};

// One query's aggregates computed exactly by the backend itself (Backend::ExactAggregates).
struct ExactOp {
  const BoundQuery* query = nullptr;
  std::span<agg::Aggregator* const> aggs;  // op() and q() say what to compute (not fed)
  std::span<double> values;                // out: one value per aggregate
  int64_t rows = 0;                        // out: rows matched
};

// A key's values (text, one per key column) joined with '\x1f': how backends index keys
// that were not seen when they were built (appended or inserted rows).
std::string JoinKey(std::span<const std::string_view> values);

class Backend {
 public:
  virtual ~Backend() = default;

  // Reads every op (one round of a request). The default runs Read/ReadExact per op and
  // times each; a remote backend sends one statement for all of them (one per shard when it
  // reads the shards itself: then a shard that misses `round->deadline` or its own timeout is
  // left out, op.strata_read says what arrived, and the call fails only when no shard
  // answered).
  virtual Status ReadMany(std::span<ReadOp> ops, ReadRound* round = nullptr) const;

  // Appends `rows` (a table of one of the backend's tables' schema, by name) so that the next
  // request sees them. Returns the rows inserted. The default refuses (FailedPrecondition).
  virtual Result<int64_t> InsertRows(const store::Table& rows) const;

  // True when the backend computes exact aggregates itself (ExactAggregates), cheaper than
  // reading every row through Read: a database answering SQL.
  virtual bool ComputesExact() const { return false; }
  // Shards the backend reads one by one (ReadMany leaves a late one out); 1 otherwise.
  virtual int num_shards() const { return 1; }
  // The strata of the shards the next round would ask (all of them without shards): reading
  // again a stratum outside it would not get it (its shard missed its timeout, or has too
  // many reads still running).
  virtual StrataSet ReadableStrata() const { return StrataSet().set(); }
  // How many shards hold some of `strata` (without shards: 1 when there are any).
  virtual int ShardsHolding(const StrataSet& strata) const { return strata.any() ? 1 : 0; }
  // False while a shard is known to be late or down: an exact statement (which needs every
  // shard) would wait for it, so requests answer from the shards that answer instead.
  virtual bool ExactAvailable() const { return true; }
  // Computes every op's aggregates over all its matching rows, in one call. Exact values
  // follow agg::Aggregator's definitions at p == 1 (quantile rank max(1, ⌈q·n⌉), ddof 1, NaN
  // for an empty avg/min/max/quantile/var/std, 0 for an empty count/sum/count_distinct).
  // Within `deadline` (DeadlineExceeded after it).
  virtual Status ExactAggregates(std::span<ExactOp> ops,
                                 std::chrono::steady_clock::time_point deadline =
                                     std::chrono::steady_clock::time_point::max()) const;

  // Registers a query shape and returns its id. Call before Build().
  // NotFound / InvalidArgument for unknown tables or columns.
  virtual Result<int> Prepare(const QueryShape& shape) = 0;

  // Builds whatever the prepared shapes need (sampled layouts). Progress: rows done / total.
  virtual Status Build(const store::ProgressFn& progress = nullptr) = 0;

  // Binds `shape` to one request: key values (text, one per key column) and window [t0, t1).
  // A key that never occurs binds to an empty query (matching_rows = 0), not an error.
  virtual Status Bind(int shape, std::span<const std::string_view> key_values, int64_t t0,
                      int64_t t1, BoundQuery* out) const = 0;

  // Reads strata [s_begin, s_end) of `query`'s sampled part and feeds every aggregator in
  // `aggs` with the values (Aggregator::Update). Returns the number of rows read.
  // REQUIRES: 0 <= s_begin <= s_end <= kNumStrata.
  virtual Result<int64_t> Read(const BoundQuery& query, int s_begin, int s_end,
                               std::span<agg::Aggregator* const> aggs) const = 0;

  // True when queries of the two shapes read the same sampled rows (same layout and value
  // column): bound to the same key, their samples overlap wherever their windows do.
  virtual bool SameRows(int shape_a, int shape_b) const = 0;

  // Rows of the sampled part that both bound queries match (0 unless SameRows and the same
  // key). Feature errors of such queries are correlated.
  virtual int64_t SharedSampledRows(const BoundQuery& a, const BoundQuery& b) const = 0;

  // Reads the exact part of `query` whole and feeds it to every aggregator in `aggs`
  // (Aggregator::UpdateExact). Returns the number of rows read (query.exact_rows).
  virtual Result<int64_t> ReadExact(const BoundQuery& query,
                                    std::span<agg::Aggregator* const> aggs) const = 0;
};

}  // namespace apx::backend

#endif  // APX_BACKEND_BACKEND_H_
