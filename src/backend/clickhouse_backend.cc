// backend/clickhouse_backend.cc: layouts in ClickHouse, pushed-down partial aggregates.
#include "backend/clickhouse_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <system_error>
#include <thread>

namespace apx::backend {
namespace {

using Clock = std::chrono::steady_clock;

std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// TabSeparated field unescaping (\t \n \\ \0 ...), ClickHouse's text format.
std::string Unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\' || i + 1 == field.size()) {
      out += field[i];
      continue;
    }
    const char c = field[++i];
    switch (c) {
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case '0': out += '\0'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      default: out += c;
    }
  }
  return out;
}

// TabSeparated escaping for values sent to ClickHouse.
void AppendEscaped(std::string_view value, std::string* out) {
  for (char c : value) {
    switch (c) {
      case '\t': *out += "\\t"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\\': *out += "\\\\"; break;
      case '\0': *out += "\\0"; break;
      default: *out += c;
    }
  }
}

// Row `r` of `table`, every column followed by a tab (TabSeparated).
void AppendRowTsv(const store::Table& table, int64_t r, std::string* tsv) {
  for (const store::Column& c : table.columns()) {
    switch (c.type) {
      case store::ColumnType::kInt64:
      case store::ColumnType::kTimestamp: *tsv += std::to_string(c.ints[r]); break;
      case store::ColumnType::kDouble: *tsv += Num(c.doubles[r]); break;
      case store::ColumnType::kString: AppendEscaped(c.dictionary[c.codes[r]], tsv); break;
    }
    *tsv += '\t';
  }
}

Result<double> ParseDouble(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') return Status::Internal("clickhouse: unexpected number '" + s + "'");
  return v;
}

// "[1,2.5,-3]" -> values.
Status ParseArray(std::string_view text, std::vector<double>* out) {
  out->clear();
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
    return Status::Internal("clickhouse: unexpected array '" + std::string(text.substr(0, 40)) + "'");
  }
  text = text.substr(1, text.size() - 2);
  const std::string s(text);
  const char* p = s.c_str();
  while (*p != '\0') {
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) return Status::Internal("clickhouse: unexpected array element near '" + std::string(p).substr(0, 20) + "'");
    out->push_back(v);
    p = end;
    if (*p == ',') ++p;
  }
  return Status::Ok();
}

// The op index a UNION ALL branch answered with (its first column): in range, and seen once.
Result<size_t> ParseOpIndex(std::string_view field, std::vector<bool>* seen) {
  APX_ASSIGN_OR_RETURN(double idx, ParseDouble(field));
  if (!(idx >= 0 && idx < static_cast<double>(seen->size())) || (*seen)[static_cast<size_t>(idx)]) {
    return Status::Internal("clickhouse: bad or repeated query index '" + std::string(field) + "' in an answer");
  }
  (*seen)[static_cast<size_t>(idx)] = true;
  return static_cast<size_t>(idx);
}

template <typename Fn>
Status ForEachLine(std::string_view body, Fn fn) {
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    if (nl == std::string_view::npos) nl = body.size();
    APX_RETURN_IF_ERROR(fn(body.substr(start, nl - start)));
    start = nl + 1;
  }
  return Status::Ok();
}

// Timeout of statements that touch whole tables (ingest's inserts and merges, Build's stats).
constexpr std::chrono::milliseconds kLongStatement{600000};
// A shard's own per-key stats when the Distributed table failed (a shard is out): a hung
// server must not hold the pipeline's opening for kLongStatement.
constexpr std::chrono::milliseconds kStatsTimeout{30000};

// Rows per granule of the layouts (SETTINGS index_granularity): ClickHouse reads whole granules.
constexpr int64_t kGranule = 1024;

// The stratum of a row, as the sampled views compute it: a hash of its random _rid, the same
// in every layout (so a shard can hold whole strata of all of them) and different for
// duplicates of one row.
std::string StratumExpr() {
  return "toUInt16(cityHash64(`_rid`) % " + std::to_string(kNumStrata) + ")";
}

std::string KeySuffix(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += "_" + k;
  return out;
}

const char* SqlType(store::ColumnType type) {
  switch (type) {
    case store::ColumnType::kInt64: return "Int64";
    case store::ColumnType::kDouble: return "Float64";
    case store::ColumnType::kString: return "String";
    case store::ColumnType::kTimestamp: return "Int64";
  }
  return "Float64";
}

// The exact SQL expression of one aggregate over column `v` (see Backend::ExactAggregates).
std::string ExactExpr(const agg::Aggregator& a, const std::string& v) {
  const std::string empty_nan = "if(count() = 0, nan, ";
  switch (a.op()) {
    case agg::AggOp::kCount: return "toFloat64(count())";
    case agg::AggOp::kSum: return "toFloat64(sum(" + v + "))";
    case agg::AggOp::kAvg: return empty_nan + "avg(" + v + "))";
    case agg::AggOp::kVar: return "if(count() < 2, nan, varSamp(" + v + "))";
    case agg::AggOp::kStd: return "if(count() < 2, nan, stddevSamp(" + v + "))";
    case agg::AggOp::kMin: return empty_nan + "toFloat64(min(" + v + ")))";
    case agg::AggOp::kMax: return empty_nan + "toFloat64(max(" + v + ")))";
    case agg::AggOp::kMedian:
    case agg::AggOp::kQuantile: {
      // quantileExact(L) returns the element at 0-based index ⌊L·n⌋; the rank apxserve uses is
      // max(1, ⌈q·n⌉), index ⌈q·n⌉ − 1, which ⌊(q − ε)·n⌋ equals for every n < 10¹¹ (ε = 1e-12;
      // docs/clickhouse.md).
      const double level = a.op() == agg::AggOp::kMedian ? 0.5 : a.q();
      return empty_nan + "toFloat64(quantileExact(" + Num(std::max(0.0, level - 1e-12)) + ")(" + v + ")))";
    }
    case agg::AggOp::kCountDistinct: return "toFloat64(uniqExact(" + v + "))";
  }
  return "nan";
}

}  // namespace

ClickHouseBackend::ClickHouseBackend(std::shared_ptr<const ClickHouseClient> client,
                                     std::vector<store::TableSchema> tables, std::string cluster,
                                     std::vector<std::shared_ptr<const ClickHouseClient>> shards,
                                     ShardPolicy policy,
                                     std::vector<std::vector<std::shared_ptr<const ClickHouseClient>>> replicas)
    : client_(std::move(client)),
      tables_(std::move(tables)),
      cluster_(std::move(cluster)),
      shards_(cluster_.empty() ? std::vector<std::shared_ptr<const ClickHouseClient>>{} : std::move(shards)),
      policy_(policy) {
  // Servers: every shard's primary first (server j is shard j's), then the other replicas.
  servers_ = shards_;
  replicas_of_.resize(shards_.size());
  for (size_t j = 0; j < shards_.size(); ++j) {
    replicas_of_[j].push_back(static_cast<int>(j));
    if (j < replicas.size()) {
      for (auto& r : replicas[j]) {
        replicas_of_[j].push_back(static_cast<int>(servers_.size()));
        servers_.push_back(std::move(r));
      }
    }
  }
  const size_t n = std::max<size_t>(1, servers_.size());
  shard_down_until_ = std::make_unique<std::atomic<int64_t>[]>(n);
  late_reads_ = std::make_unique<std::atomic<int>[]>(n);
  for (size_t j = 0; j < n; ++j) {
    shard_down_until_[j].store(0);
    late_reads_[j].store(0);
  }
}

ClickHouseBackend::~ClickHouseBackend() {
  std::unique_lock<std::mutex> lock(reads_mu_);
  reads_cv_.wait(lock, [&] { return reads_running_ == 0; });
}

namespace {
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

bool ClickHouseBackend::ExactAvailable() const {
  auto healthy = [&](int s) {
    return shard_down_until_[s].load(std::memory_order_relaxed) == 0 &&
           late_reads_[s].load(std::memory_order_relaxed) < kMaxLateReads;
  };
  for (size_t j = 0; j < shards_.size(); ++j) {
    if (healthy(static_cast<int>(j))) continue;
    // A slow primary: the Distributed statement would still read it (in_order, no errors).
    if (late_reads_[j].load(std::memory_order_relaxed) >= kMaxLateReads) return false;
    // A primary that is down: ClickHouse connects to the next replica itself.
    const std::vector<int>& replicas = replicas_of_[j];
    if (!std::any_of(replicas.begin() + 1, replicas.end(), healthy)) return false;
  }
  return true;
}

StrataSet ClickHouseBackend::StrataOnShard(int shard) const {
  StrataSet set;
  const int n = num_shards();
  for (int s = shard; s < kNumStrata; s += n) set[s] = true;
  return set;
}

StrataSet ClickHouseBackend::ReadableStrata() const {
  if (shards_.empty()) return StrataSet().set();
  StrataSet set;
  for (int j = 0; j < static_cast<int>(shards_.size()); ++j) {
    if (ShardReadable(j)) set |= StrataOnShard(j);
  }
  return set;
}

int ClickHouseBackend::ShardsHolding(const StrataSet& strata) const {
  int out = 0;
  for (int j = 0; j < num_shards(); ++j) out += (strata & StrataOnShard(j)).any() ? 1 : 0;
  return out;
}

bool ClickHouseBackend::ShardReadable(int shard) const {
  if (shards_.empty()) return shard == 0;
  if (shard < 0 || shard >= static_cast<int>(shards_.size())) return false;
  const int64_t now = NowNs();
  for (int s : replicas_of_[shard]) {
    const int64_t until = shard_down_until_[s].load(std::memory_order_relaxed);
    if (late_reads_[s].load(std::memory_order_relaxed) < kMaxLateReads && until <= now) return true;
  }
  return false;
}

std::string ClickHouseBackend::SampledName(std::string_view table, const std::vector<std::string>& keys) {
  return std::string(table) + "__s" + KeySuffix(keys);
}

std::string ClickHouseBackend::SortedName(std::string_view table, const std::vector<std::string>& keys) {
  return std::string(table) + "__k" + KeySuffix(keys);
}

Result<int> ClickHouseBackend::Prepare(const QueryShape& shape) {
  const store::TableSchema* table = nullptr;
  for (const store::TableSchema& t : tables_) {
    if (t.name == shape.table) table = &t;
  }
  if (table == nullptr) return Status::NotFound("table '" + shape.table + "' is not in the spec");
  auto column_type = [&](const std::string& name) -> const store::ColumnSpec* {
    for (const store::ColumnSpec& c : table->columns) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  for (const std::string& k : shape.key_columns) {
    if (column_type(k) == nullptr) return Status::NotFound("table '" + shape.table + "' has no column '" + k + "'");
    APX_RETURN_IF_ERROR(QuoteIdentifier(k).status());
  }
  const store::ColumnSpec* value = column_type(shape.value_column);
  if (value == nullptr) {
    return Status::NotFound("table '" + shape.table + "' has no column '" + shape.value_column + "'");
  }
  if (value->type == store::ColumnType::kString) {
    return Status::InvalidArgument("column '" + shape.value_column + "' is a string; aggregations need numbers");
  }
  APX_RETURN_IF_ERROR(QuoteIdentifier(shape.table).status());
  APX_RETURN_IF_ERROR(QuoteIdentifier(shape.value_column).status());
  int layout = -1;
  for (size_t i = 0; i < layouts_.size(); ++i) {
    if (layouts_[i].table == table && layouts_[i].keys == shape.key_columns) layout = static_cast<int>(i);
  }
  if (layout < 0) {
    Layout l;
    l.table = table;
    l.keys = shape.key_columns;
    const std::string db = *QuoteIdentifier(client_->config().database);
    auto read_name = [&](std::string local) { return cluster_.empty() ? local : DistributedName(local); };
    l.sampled = db + "." + *QuoteIdentifier(read_name(SampledName(table->name, l.keys)));
    l.sorted = db + "." + *QuoteIdentifier(read_name(SortedName(table->name, l.keys)));
    l.sampled_local = db + "." + *QuoteIdentifier(SampledName(table->name, l.keys));
    l.sorted_local = db + "." + *QuoteIdentifier(SortedName(table->name, l.keys));
    l.stratum_expr = StratumExpr();
    layouts_.push_back(std::move(l));
    layout = static_cast<int>(layouts_.size()) - 1;
  }
  Layout& l = layouts_[layout];
  auto it = std::find(l.value_columns.begin(), l.value_columns.end(), shape.value_column);
  const int value_idx = static_cast<int>(it - l.value_columns.begin());
  if (it == l.value_columns.end()) l.value_columns.push_back(shape.value_column);
  shapes_.push_back({.layout = layout, .value_column = *QuoteIdentifier(shape.value_column), .value_idx = value_idx});
  return static_cast<int>(shapes_.size()) - 1;
}

Status ClickHouseBackend::LoadStats(Layout& l, int64_t* done) const {
  // Per key: rows, time span, and mean/min/max of every aggregated column; distinct values
  // per column. FROM is filled in per source.
  std::string sql = "SELECT ";
  for (const std::string& k : l.keys) sql += "toString(" + *QuoteIdentifier(k) + "), ";
  const std::string& tcol = l.table->time_column;
  sql += "count(), " + (tcol.empty() ? std::string("0, 0") : "min(" + *QuoteIdentifier(tcol) + "), max(" + *QuoteIdentifier(tcol) + ")");
  for (const std::string& v : l.value_columns) {
    const std::string q = *QuoteIdentifier(v);
    sql += ", avg(" + q + "), min(" + q + "), max(" + q + ")";
  }
  sql += " FROM ";
  std::string group;
  if (!l.keys.empty()) {
    group = " GROUP BY ";
    for (size_t i = 0; i < l.keys.size(); ++i) group += (i ? ", " : "") + *QuoteIdentifier(l.keys[i]);
  }
  std::string dsql = "SELECT ";
  for (size_t v = 0; v < l.value_columns.size(); ++v) dsql += (v ? ", uniq(" : "uniq(") + *QuoteIdentifier(l.value_columns[v]) + ")";
  dsql += " FROM ";
  const size_t nk = l.keys.size(), nv = l.value_columns.size();
  // Adds one source's answer into `stats` and `distinct` (a shard's: merged with the others').
  auto add = [&](const std::string& body, const std::string& dbody, std::unordered_map<std::string, KeyStats>* stats,
                 std::vector<int64_t>* distinct) -> Status {
    APX_RETURN_IF_ERROR(ForEachLine(body, [&](std::string_view line) -> Status {
      const std::vector<std::string_view> f = SplitTabs(line);
      if (f.size() != nk + 3 + 3 * nv) return Status::Internal("clickhouse: unexpected stats line");
      std::string key;
      for (size_t i = 0; i < nk; ++i) {
        if (i > 0) key += '\x1f';
        key += Unescape(f[i]);
      }
      KeyStats s;
      APX_ASSIGN_OR_RETURN(double rows, ParseDouble(f[nk]));
      APX_ASSIGN_OR_RETURN(double t_min, ParseDouble(f[nk + 1]));
      APX_ASSIGN_OR_RETURN(double t_max, ParseDouble(f[nk + 2]));
      s.rows = static_cast<int64_t>(rows);
      s.t_min = static_cast<int64_t>(t_min);
      s.t_max = static_cast<int64_t>(t_max);
      if (s.rows == 0) return Status::Ok();
      for (size_t v = 0; v < nv; ++v) {
        APX_ASSIGN_OR_RETURN(double mean, ParseDouble(f[nk + 3 + 3 * v]));
        APX_ASSIGN_OR_RETURN(double lo, ParseDouble(f[nk + 4 + 3 * v]));
        APX_ASSIGN_OR_RETURN(double hi, ParseDouble(f[nk + 5 + 3 * v]));
        s.mean.push_back(mean);
        s.lo.push_back(lo);
        s.hi.push_back(hi);
      }
      *done += s.rows;
      auto [it, fresh] = stats->try_emplace(std::move(key), s);
      if (!fresh) {
        KeyStats& t = it->second;
        const double w = static_cast<double>(t.rows), ws = static_cast<double>(s.rows);
        for (size_t v = 0; v < nv; ++v) {
          t.mean[v] = (t.mean[v] * w + s.mean[v] * ws) / (w + ws);
          t.lo[v] = std::min(t.lo[v], s.lo[v]);
          t.hi[v] = std::max(t.hi[v], s.hi[v]);
        }
        t.rows += s.rows;
        t.t_min = std::min(t.t_min, s.t_min);
        t.t_max = std::max(t.t_max, s.t_max);
      }
      return Status::Ok();
    }));
    const std::vector<std::string_view> df = SplitTabs(std::string_view(dbody).substr(0, dbody.find('\n')));
    if (df.size() != nv) return Status::Internal("clickhouse: unexpected distinct-count line");
    distinct->resize(nv, 0);
    for (size_t v = 0; v < nv; ++v) {
      APX_ASSIGN_OR_RETURN(double d, ParseDouble(df[v]));
      // A shard holds random strata: about every distinct value that repeats. The most any
      // shard saw (for GroupsValues, which only chooses how values ship).
      (*distinct)[v] = std::max((*distinct)[v], static_cast<int64_t>(d));
    }
    return Status::Ok();
  };
  std::unordered_map<std::string, KeyStats> stats;
  std::vector<int64_t> distinct;
  int missing = 0;
  Result<std::string> body = client_->Query(sql + l.sorted + group, kLongStatement);
  Result<std::string> dbody = body.ok() ? client_->Query(dsql + l.sorted, kLongStatement) : Result<std::string>(body.status());
  if (body.ok() && dbody.ok()) {
    APX_RETURN_IF_ERROR(add(*body, *dbody, &stats, &distinct));
  } else if (shards_.empty()) {
    return body.ok() ? dbody.status() : body.status();
  } else {
    // A shard out (and no replica the Distributed table could use): each shard's own tables,
    // the first of its servers that answers. A shard none of whose servers answers is left
    // out: the stats are partial (Bind widens what they imply) until a later Bind reloads.
    const Status distributed = body.ok() ? dbody.status() : body.status();
    *done = 0;
    for (size_t j = 0; j < shards_.size(); ++j) {
      bool got = false;
      for (int server : replicas_of_[j]) {
        const ClickHouseClient& c = *servers_[server];
        Result<std::string> b = c.Query(sql + l.sorted_local + group, kStatsTimeout);
        Result<std::string> d = b.ok() ? c.Query(dsql + l.sorted_local, kStatsTimeout) : Result<std::string>(b.status());
        if (b.ok() && d.ok()) {
          APX_RETURN_IF_ERROR(add(*b, *d, &stats, &distinct));
          got = true;
          break;
        }
        const Status last = b.ok() ? d.status() : b.status();
        // Only an unreachable server is skipped: an error it answered with stands.
        if (last.code() != StatusCode::kUnavailable && last.code() != StatusCode::kDeadlineExceeded) {
          return last.WithPrefix("shard " + std::to_string(j) + " (the Distributed table failed too: " +
                                 distributed.message() + ")");
        }
      }
      if (!got) ++missing;
    }
    if (missing == static_cast<int>(shards_.size())) {
      return distributed.WithPrefix("no shard answered for the per-key stats");
    }
  }
  std::unique_lock<std::shared_mutex> lock(stats_mu_);
  l.stats.swap(stats);
  l.distinct.swap(distinct);
  l.stats_missing = missing;
  return Status::Ok();
}

void ClickHouseBackend::MaybeReloadStats() const {
  if (stats_missing_.load(std::memory_order_relaxed) == 0) return;
  int64_t due = stats_retry_at_.load(std::memory_order_relaxed);
  const int64_t now = NowNs();
  const int64_t retry_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kShardRetry).count();
  if (now < due || !stats_retry_at_.compare_exchange_strong(due, now + retry_ns)) return;
  int missing = 0;
  for (Layout& l : layouts_) {
    int64_t done = 0;
    if (!LoadStats(l, &done).ok()) return;  // as before; tried again after kShardRetry
    std::shared_lock<std::shared_mutex> lock(stats_mu_);
    missing = std::max(missing, l.stats_missing);
  }
  stats_missing_.store(missing, std::memory_order_relaxed);
}

Status ClickHouseBackend::Build(const store::ProgressFn& progress) {
  int64_t done = 0;
  for (Layout& l : layouts_) {
    for (const std::string* name : {&l.sampled, &l.sorted}) {
      APX_ASSIGN_OR_RETURN(std::string exists, client_->Query("EXISTS TABLE " + *name));
      if (exists.substr(0, 1) != "1") {
        return Status::FailedPrecondition("clickhouse table " + *name + " does not exist; run `apxserve ingest` for this pipeline first");
      }
    }
    APX_RETURN_IF_ERROR(LoadStats(l, &done));
    if (progress) progress(done, -1);
  }
  int missing = 0;
  for (const Layout& l : layouts_) missing = std::max(missing, l.stats_missing);
  stats_missing_.store(missing, std::memory_order_relaxed);
  stats_retry_at_.store(NowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(kShardRetry).count(),
                        std::memory_order_relaxed);
  // Read shard by shard, the strata a shard holds are credited by its place in the list
  // (shard j: stratum % shards == j, Ingest's sharding): check that the list is in the
  // cluster's order, or every missing-shard estimate would be off by the strata miscounted.
  const int n = static_cast<int>(shards_.size());
  for (int j = 0; j < n && !layouts_.empty(); ++j) {
    Result<std::string> answer = shards_[j]->Query("SELECT count(), min(stratum % " + std::to_string(n) +
                                                       "), max(stratum % " + std::to_string(n) + ") FROM " +
                                                       layouts_[0].sampled_local,
                                                   policy_.timeout);
    // A shard that is down now is left out of rounds until it answers (not checked here).
    if (!answer.ok() && (answer.status().code() == StatusCode::kUnavailable ||
                         answer.status().code() == StatusCode::kDeadlineExceeded)) {
      continue;
    }
    APX_ASSIGN_OR_RETURN(std::string body, std::move(answer));
    const std::vector<std::string_view> f = SplitTabs(std::string_view(body).substr(0, body.find('\n')));
    if (f.size() != 3) return Status::Internal("clickhouse: unexpected shard check line");
    APX_ASSIGN_OR_RETURN(double rows, ParseDouble(f[0]));
    APX_ASSIGN_OR_RETURN(double lo, ParseDouble(f[1]));
    APX_ASSIGN_OR_RETURN(double hi, ParseDouble(f[2]));
    if (rows > 0 && (lo != j || hi != j)) {
      return Status::FailedPrecondition("shard url " + std::to_string(j) + " (" + shards_[j]->config().url +
                                        ") holds strata of shard " + std::to_string(static_cast<int>(lo)) +
                                        ": list the shards' urls in the cluster's order");
    }
  }
  return Status::Ok();
}

Status ClickHouseBackend::Bind(int shape, std::span<const std::string_view> key_values, int64_t t0,
                               int64_t t1, BoundQuery* out) const {
  if (shape < 0 || shape >= static_cast<int>(shapes_.size())) return Status::InvalidArgument("unknown query shape");
  const Shape& sh = shapes_[shape];
  const Layout& l = layouts_[sh.layout];
  if (key_values.size() != l.keys.size()) return Status::InvalidArgument("wrong number of key values");
  out->shape = shape;
  out->rows_known = false;
  out->exact_rows = 0;
  out->rest_distinct = -1;
  std::string& where = out->remote_filter;
  where.clear();
  for (size_t i = 0; i < l.keys.size(); ++i) {
    where += (i ? " AND " : "") + *QuoteIdentifier(l.keys[i]) + " = " + QuoteString(key_values[i]);
  }
  const std::string& tcol = l.table->time_column;
  if (!tcol.empty()) {
    const std::string t = *QuoteIdentifier(tcol);
    if (t0 > INT64_MIN) where += (where.empty() ? "" : " AND ") + t + " >= " + std::to_string(t0);
    if (t1 < INT64_MAX) where += (where.empty() ? "" : " AND ") + t + " < " + std::to_string(t1);
  }
  if (where.empty()) where = "1";
  out->remote_t0 = t0;
  out->remote_t1 = t1;
  // The prior: the key's rows spread evenly over its time span. A key the last Build did not
  // see (rows inserted since) gets a prior of one row, so the first round reads it whole.
  MaybeReloadStats();
  std::shared_lock<std::shared_mutex> lock(stats_mu_);
  const auto it = l.stats.find(JoinKey(key_values));
  out->group = 0;
  if (it == l.stats.end()) {
    out->matching_rows = 1;
    out->remote_key_rows = 1;
    out->rest_min = out->rest_max = std::numeric_limits<double>::quiet_NaN();
    out->seen_min = out->seen_max = std::numeric_limits<double>::quiet_NaN();
    out->center = 0;
    return Status::Ok();
  }
  const KeyStats& s = it->second;
  double share = 1.0;
  if (!tcol.empty() && s.t_max > s.t_min) {
    const double lo = std::max(static_cast<double>(t0), static_cast<double>(s.t_min));
    const double hi = std::min(static_cast<double>(t1), static_cast<double>(s.t_max) + 1);
    share = std::clamp((hi - lo) / (static_cast<double>(s.t_max - s.t_min) + 1), 0.0, 1.0);
  } else if (!tcol.empty()) {
    share = (s.t_min >= t0 && s.t_min < t1) ? 1.0 : 0.0;
  }
  // Stats without some shards' rows (they were out when loaded): the rows scaled up by the
  // shards missing (each holds random strata), and the value range unknown (the missing rows
  // may lie outside it).
  const int n = num_shards();
  const double scale = l.stats_missing > 0 && l.stats_missing < n ? static_cast<double>(n) / (n - l.stats_missing) : 1.0;
  out->matching_rows = std::max<int64_t>(1, std::llround(share * scale * static_cast<double>(s.rows)));
  out->remote_key_rows = std::llround(scale * static_cast<double>(s.rows));
  out->rest_min = scale == 1.0 ? s.lo[sh.value_idx] : std::numeric_limits<double>::quiet_NaN();
  out->rest_max = scale == 1.0 ? s.hi[sh.value_idx] : std::numeric_limits<double>::quiet_NaN();
  out->seen_min = scale == 1.0 ? std::numeric_limits<double>::quiet_NaN() : s.lo[sh.value_idx];
  out->seen_max = scale == 1.0 ? std::numeric_limits<double>::quiet_NaN() : s.hi[sh.value_idx];
  out->center = s.mean[sh.value_idx];
  return Status::Ok();
}

bool ClickHouseBackend::ReadsSorted(const BoundQuery& q, int strata_count) const {
  // Sampled layout, ordered by (keys, stratum, time): a stratum of the key holds key_rows/100
  // rows; when that is under a granule, reading it reads the key's whole history in it, else
  // about the window's share of it plus a granule at each end. Sorted copy: the window's rows
  // (the current estimate), whatever the strata.
  const double strata = static_cast<double>(strata_count);
  const double per_stratum = static_cast<double>(q.remote_key_rows) / kNumStrata;
  const double window = static_cast<double>(std::max<int64_t>(q.matching_rows, 1));
  const double share = std::min(1.0, window / std::max(1.0, static_cast<double>(q.remote_key_rows)));
  const double granule = static_cast<double>(kGranule);
  const double sampled = strata * std::max(std::min(per_stratum, granule), std::min(per_stratum, share * per_stratum + granule));
  const double sorted = window + granule;
  return sorted < sampled;
}

Result<int64_t> ClickHouseBackend::Read(const BoundQuery& query, int s_begin, int s_end,
                                        std::span<agg::Aggregator* const> aggs) const {
  ReadOp op{.query = &query, .s_begin = s_begin, .s_end = s_end, .aggs = aggs};
  APX_RETURN_IF_ERROR(ReadMany(std::span<ReadOp>(&op, 1)));
  if (op.strata_read < s_end - s_begin) {
    return Status::Unavailable("a shard did not answer: " + std::to_string(op.strata_read) + " of " +
                               std::to_string(s_end - s_begin) + " strata read");
  }
  return op.rows;
}

Result<int64_t> ClickHouseBackend::ReadExact(const BoundQuery&, std::span<agg::Aggregator* const>) const {
  return int64_t{0};  // no outlier index on ClickHouse yet: the exact part is empty
}

bool ClickHouseBackend::GroupsValues(int shape, double expected_rows) const {
  const Shape& sh = shapes_[shape];
  const Layout& l = layouts_[sh.layout];
  std::shared_lock<std::shared_mutex> lock(stats_mu_);
  if (sh.value_idx >= static_cast<int>(l.distinct.size())) return false;
  const int64_t distinct = l.distinct[sh.value_idx];
  return distinct > 0 && 4.0 * static_cast<double>(distinct) <= expected_rows;
}

std::string ClickHouseBackend::RoundSql(std::span<ReadOp> ops, bool local, std::vector<bool>* wants_values,
                                        const StrataSet* on_shard, std::vector<bool>* asked) const {
  std::string sql;
  int64_t statements = 0;
  wants_values->assign(ops.size(), false);
  if (asked != nullptr) asked->assign(ops.size(), false);
  const StrataSet all = StrataSet().set();
  const StrataSet& on = on_shard != nullptr ? *on_shard : all;
  for (size_t i = 0; i < ops.size(); ++i) {
    const ReadOp& op = ops[i];
    if (!op.asks()) continue;
    // The op's strata this statement reads: those on the shard (none: not asked there).
    const StrataSet mine = op.strata() & on;
    const int strata = static_cast<int>(mine.count());
    if (strata == 0) continue;
    if (asked != nullptr) (*asked)[i] = true;
    const Shape& sh = shapes_[op.query->shape];
    const Layout& l = layouts_[sh.layout];
    for (const agg::Aggregator* a : op.aggs) (*wants_values)[i] = (*wants_values)[i] || !agg::PushesDown(a->op());
    const bool sorted = ReadsSorted(*op.query, strata);
    const std::string stratum = sorted ? l.stratum_expr : std::string("stratum");
    std::string from = (sorted ? (local ? l.sorted_local : l.sorted) : (local ? l.sampled_local : l.sampled)) + " WHERE " + op.query->remote_filter;
    // The range as a range (the shard holds only its own strata of it), strata read again as
    // a list.
    std::string range;
    if ((StrataRange(op.s_begin, op.s_end) & on).any()) {
      if (op.s_begin > 0) range = stratum + " >= " + std::to_string(op.s_begin);
      if (op.s_end < kNumStrata) range += (range.empty() ? "" : " AND ") + stratum + " < " + std::to_string(op.s_end);
      if (range.empty()) range = "1";
    }
    std::string list;
    const StrataSet again = mine & op.reread;
    for (int s = 0; s < kNumStrata; ++s) {
      if (again[s]) list += (list.empty() ? "" : ", ") + std::to_string(s);
    }
    if (!list.empty()) list = stratum + " IN (" + list + ")";
    if (!range.empty() && !list.empty()) {
      from += " AND ((" + range + ") OR " + list + ")";
    } else if (!list.empty()) {
      from += " AND " + list;
    } else if (range != "1") {
      from += " AND " + range;
    }
    const double expected_rows =
        static_cast<double>(std::max<int64_t>(op.query->matching_rows, 1)) * strata / kNumStrata;
    // Every branch answers: index, count, four power sums about the center, min, max, values,
    // and the values' multiplicities (empty: each value once).
    const std::string d = "(__apx_v - " + Num(op.query->center) + ")";
    const std::string d2 = d + " * " + d;
    if (statements++ > 0) sql += " UNION ALL ";
    sql += "SELECT toUInt32(" + std::to_string(i) + "), ";
    if ((*wants_values)[i] && GroupsValues(op.query->shape, expected_rows)) {
      // Distinct values with their counts: the same multiset in fewer bytes (one array of
      // pairs, split, so that values and counts cannot come apart).
      sql += "sum(__apx_c), sum(__apx_c * " + d + "), sum(__apx_c * " + d2 + "), sum(__apx_c * " + d2 + " * " + d +
             "), sum(__apx_c * " + d2 + " * " + d2 + "), min(__apx_v), max(__apx_v), arrayMap(t -> tupleElement(t, 1), groupArray((__apx_v, __apx_c))), " +
             "arrayMap(t -> tupleElement(t, 2), groupArray((__apx_v, __apx_c))) FROM (SELECT toFloat64(" +
             sh.value_column + ") AS __apx_v, count() AS __apx_c FROM " + from + " GROUP BY __apx_v)";
    } else {
      sql += "count(), sum(" + d + "), sum(" + d2 + "), sum(" + d2 + " * " + d + "), sum(" + d2 + " * " + d2 +
             "), min(__apx_v), max(__apx_v), " +
             ((*wants_values)[i] ? std::string("groupArray(__apx_v)") : std::string("emptyArrayFloat64()")) +
             ", emptyArrayUInt64() FROM (SELECT toFloat64(" + sh.value_column + ") AS __apx_v FROM " + from + ")";
    }
  }
  return sql;
}

namespace {

// One op's answer from one statement: pushed-down moments and, when wanted, the values.
struct OpPart {
  agg::PartialMoments pm;
  std::vector<double> values;
};

// Parses a round's answer into one part per op (parts[i].pm.rows stays 0 for ops not asked).
// `asked`: the ops the statement read (every op that asks any strata when null).
Status ParseRound(std::string_view body, std::span<const ReadOp> ops, const std::vector<bool>& wants_values,
                  std::vector<OpPart>* parts, const std::vector<bool>* asked = nullptr) {
  parts->assign(ops.size(), OpPart{});
  std::vector<double> distinct_values, counts;
  std::vector<bool> seen(ops.size(), false);
  APX_RETURN_IF_ERROR(ForEachLine(body, [&](std::string_view line) -> Status {
    const std::vector<std::string_view> f = SplitTabs(line);
    if (f.size() != 10) return Status::Internal("clickhouse: unexpected read line");
    APX_ASSIGN_OR_RETURN(size_t idx, ParseOpIndex(f[0], &seen));
    if (asked != nullptr && !(*asked)[idx]) return Status::Internal("clickhouse: an answer for a query not asked");
    OpPart& part = (*parts)[idx];
    agg::PartialMoments& pm = part.pm;
    APX_ASSIGN_OR_RETURN(double rows, ParseDouble(f[1]));
    pm.rows = static_cast<int64_t>(rows);
    pm.center = ops[idx].query->center;
    APX_ASSIGN_OR_RETURN(pm.s1, ParseDouble(f[2]));
    APX_ASSIGN_OR_RETURN(pm.s2, ParseDouble(f[3]));
    APX_ASSIGN_OR_RETURN(pm.s3, ParseDouble(f[4]));
    APX_ASSIGN_OR_RETURN(pm.s4, ParseDouble(f[5]));
    APX_ASSIGN_OR_RETURN(pm.lo, ParseDouble(f[6]));
    APX_ASSIGN_OR_RETURN(pm.hi, ParseDouble(f[7]));
    if (wants_values[idx]) {
      APX_RETURN_IF_ERROR(ParseArray(f[8], &distinct_values));
      APX_RETURN_IF_ERROR(ParseArray(f[9], &counts));
      if (counts.empty()) {
        part.values.swap(distinct_values);
      } else {
        if (counts.size() != distinct_values.size()) return Status::Internal("clickhouse: value/count mismatch");
        for (size_t k = 0; k < counts.size(); ++k) {
          if (!(counts[k] >= 1 && counts[k] <= rows)) return Status::Internal("clickhouse: bad value count");
          part.values.insert(part.values.end(), static_cast<size_t>(counts[k]), distinct_values[k]);
        }
      }
      if (static_cast<int64_t>(part.values.size()) != pm.rows) return Status::Internal("clickhouse: value count mismatch");
    }
    return Status::Ok();
  }));
  for (size_t i = 0; i < ops.size(); ++i) {
    if ((asked != nullptr ? (*asked)[i] : ops[i].asks()) && !seen[i]) {
      return Status::Internal("clickhouse: no answer for query " + std::to_string(i) + " of the round");
    }
  }
  return Status::Ok();
}

// Adds `part` (rows of other strata, same center) into `total`.
void MergePart(OpPart&& part, OpPart* total) {
  if (part.pm.rows == 0) return;
  if (total->pm.rows == 0) {
    *total = std::move(part);
    return;
  }
  agg::PartialMoments& t = total->pm;
  t.rows += part.pm.rows;
  t.s1 += part.pm.s1;
  t.s2 += part.pm.s2;
  t.s3 += part.pm.s3;
  t.s4 += part.pm.s4;
  t.lo = std::min(t.lo, part.pm.lo);
  t.hi = std::max(t.hi, part.pm.hi);
  total->values.insert(total->values.end(), part.values.begin(), part.values.end());
}

}  // namespace

Status ClickHouseBackend::ReadMany(std::span<ReadOp> ops, ReadRound* round) const {
  const auto start = Clock::now();
  for (ReadOp& op : ops) {
    op.rows = op.exact_rows = 0;
    op.ns = 0;
    op.strata_read = 0;
    op.missed.reset();
  }
  std::vector<bool> wants_values;
  const std::string sql = shards_.empty() ? RoundSql(ops, false, &wants_values) : std::string();
  // A round that only reads again strata a shard missed earlier (nothing new).
  const bool reread_only = std::none_of(ops.begin(), ops.end(), [](const ReadOp& op) { return op.s_end > op.s_begin; });
  if (std::none_of(ops.begin(), ops.end(), [](const ReadOp& op) { return op.asks(); })) return Status::Ok();
  StatementTracer* const tracer = tracer_.load(std::memory_order_acquire);
  StatementTrace trace;
  int64_t wait_ns = 0;  // the time spent waiting for the servers (the rest is the coordinator's)
  std::vector<OpPart> total(ops.size());
  if (shards_.empty()) {
    const std::string qid = tracer != nullptr ? tracer->NextQueryId() : std::string();
    const int64_t sent = NowNs();
    APX_ASSIGN_OR_RETURN(std::string body, client_->Query(sql, {}, qid));
    wait_ns = NowNs() - sent;
    APX_RETURN_IF_ERROR(ParseRound(body, ops, wants_values, &total));
    for (ReadOp& op : ops) op.strata_read = op.strata_asked();
    if (round != nullptr) round->shards = round->shards_answered = round->shards_late = round->hedged = 0;
    if (tracer != nullptr) {
      ShardReadTrace& r = trace.reads.emplace_back();
      r.query_id = qid;
      r.wall_ns = wait_ns;
      r.bytes_sent = static_cast<int64_t>(sql.size());
      r.bytes_received = static_cast<int64_t>(body.size());
      for (const OpPart& part : total) r.rows += part.pm.rows;
      r.used = true;
    }
  } else {
    // Every shard at once, each on its own thread, within the shard timeout and the round's
    // deadline. Shard j holds the strata s with s % shards == j (Ingest's sharding key), and
    // its statement reads only those: a shard holding none of the round's strata is not asked.
    const int n = static_cast<int>(shards_.size());
    std::vector<std::string> sqls(n);
    std::vector<std::vector<bool>> asked(n), wants(n);
    std::vector<StrataSet> on(n);
    for (int j = 0; j < n; ++j) {
      on[j] = StrataOnShard(j);
      sqls[j] = RoundSql(ops, true, &wants[j], &on[j], &asked[j]);
    }
    auto timeout = policy_.timeout;
    if (round != nullptr && round->deadline != std::chrono::steady_clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(round->deadline - Clock::now());
      if (left.count() <= 0) return Status::DeadlineExceeded("no time left for a round");
      timeout = std::min(timeout, left);
    }
    // Only a shard that missed its own timeout, or refused the connection, is marked out: not
    // one that ran out of a short request deadline, nor one later than the others.
    const bool full_timeout = timeout == policy_.timeout;
    const int64_t retry_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kShardRetry + policy_.timeout).count();
    // A shard that missed a recent round is skipped until kShardRetry has passed; then this
    // round asks it again (one round per retry interval: the others keep skipping it).
    // A shard with kMaxLateReads reads still running is not asked either (checked first, so
    // that it does not take a probe's slot).
    const int64_t now = NowNs();
    // Per shard, the servers to read, in order: the first usable one takes the round's read,
    // the next ones a hedge when it is late or fails (read_all_replicas: all at once). A
    // server is usable unless it has kMaxLateReads reads still running (checked first, so that
    // it does not take a probe's slot) or missed a recent round; such a server is asked again
    // once kShardRetry has passed (one round per retry interval: the others keep skipping it).
    std::vector<std::vector<int>> usable(n);
    std::vector<bool> any_busy(n, false);
    std::vector<int64_t> was(servers_.size(), 0);
    for (int j = 0; j < n; ++j) {
      if (sqls[j].empty()) continue;
      for (int s : replicas_of_[j]) {
        if (late_reads_[s].load(std::memory_order_relaxed) >= kMaxLateReads) {
          any_busy[j] = true;
          continue;
        }
        int64_t until = shard_down_until_[s].load(std::memory_order_relaxed);
        was[s] = until;
        if (until == 0) {
          usable[j].push_back(s);
          continue;
        }
        // The probe holds the slot for a retry interval plus its own timeout (no overlap); a
        // probe is only ever a shard's first read.
        if (usable[j].empty() && until <= now && shard_down_until_[s].compare_exchange_strong(until, now + retry_ns)) {
          usable[j].push_back(s);
        }
      }
    }
    if (std::all_of(usable.begin(), usable.end(), [](const std::vector<int>& u) { return u.empty(); })) {
      for (int j = 0; j < n; ++j) {
        if (!sqls[j].empty()) usable[j] = {replicas_of_[j][0]};  // never skip all
      }
    }
    // The round's answers, shared with the reads' threads: a read the round stopped waiting
    // for finishes on its own and its answer is dropped. Per shard the first answer wins; an
    // error stands only once none of its reads is running.
    struct Answers {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<std::optional<Result<std::string>>> bodies;  // per shard
      std::vector<int> running;                                 // per shard: reads in flight
      std::vector<int64_t> start_ns, done_ns;  // per shard: its latest read's start; the answer's
      std::vector<int64_t> answer_took;        // per shard: the answering read's duration
      std::vector<int> answered_by;            // per shard: the server that answered
      struct Read {
        int shard = 0, server = 0;
        std::string query_id;
        int64_t start_ns = 0, done_ns = 0;
        int64_t bytes = 0;
        bool abandoned = false;
      };
      std::vector<Read> reads;
    };
    auto answers = std::make_shared<Answers>();
    answers->bodies.resize(n);
    answers->running.assign(n, 0);
    answers->start_ns.assign(n, 0);
    answers->done_ns.assign(n, 0);
    answers->answer_took.assign(n, 0);
    answers->answered_by.assign(n, -1);
    answers->reads.reserve(servers_.size() + n);
    auto shared_sql = std::make_shared<const std::vector<std::string>>(std::move(sqls));
    const std::vector<std::string>& shard_sql = *shared_sql;
    std::vector<size_t> next(n, 0);  // per shard: the next usable server to read
    int hedged = 0;
    // Starts shard j's next read (REQUIRES: answers->mu held). False when it has none left.
    auto launch = [&](int j) -> bool {
      if (next[j] >= usable[j].size()) return false;
      const int s = usable[j][next[j]++];
      const size_t idx = answers->reads.size();
      Answers::Read rd;
      rd.shard = j;
      rd.server = s;
      rd.query_id = tracer != nullptr ? tracer->NextQueryId() : std::string();
      rd.start_ns = NowNs();
      answers->reads.push_back(rd);
      answers->start_ns[j] = rd.start_ns;
      ++answers->running[j];
      reads_sent_.fetch_add(1, std::memory_order_relaxed);
      if (next[j] > 1) {
        ++hedged;
        hedges_sent_.fetch_add(1, std::memory_order_relaxed);
      }
      {
        std::lock_guard<std::mutex> lock(reads_mu_);
        ++reads_running_;
      }
      auto read = [this, answers, shared_sql, j, s, idx, timeout, full_timeout, was_s = was[s], qid = rd.query_id] {
        Result<std::string> r = Status::Internal("shard " + std::to_string(j) + ": the read failed");
        try {
          r = servers_[s]->Query((*shared_sql)[j], timeout, qid);
        } catch (const std::exception& e) {
          r = Status::Internal("shard " + std::to_string(j) + ": " + e.what());
        }
        const StatusCode code = r.status().code();
        if (r.ok()) {
          shard_down_until_[s].store(0, std::memory_order_relaxed);
        } else if ((code == StatusCode::kUnavailable && !ClickHouseClient::WasCut(r.status())) ||
                   (code == StatusCode::kDeadlineExceeded && full_timeout)) {
          // Refused, or no answer within its own timeout: out. An answer cut twice costs its
          // strata for this round only (a later round reads them again).
          const int64_t skip_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kShardRetry).count();
          shard_down_until_[s].store(NowNs() + skip_ns, std::memory_order_relaxed);
        } else if (was_s != 0) {
          shard_down_until_[s].store(was_s, std::memory_order_relaxed);  // a clipped probe: as before
        }
        {
          std::lock_guard<std::mutex> lock(answers->mu);
          Answers::Read& me = answers->reads[idx];
          me.done_ns = NowNs();
          me.bytes = r.ok() ? static_cast<int64_t>(r->size()) : 0;
          if (me.abandoned) late_reads_[s].fetch_sub(1, std::memory_order_relaxed);
          --answers->running[j];
          auto& slot = answers->bodies[j];
          if (!slot.has_value() && (r.ok() || answers->running[j] == 0)) {
            if (r.ok()) {
              answers->answer_took[j] = me.done_ns - me.start_ns;
              answers->answered_by[j] = s;
            }
            slot = std::move(r);
            answers->done_ns[j] = me.done_ns;
          }
        }
        answers->cv.notify_all();
        std::lock_guard<std::mutex> lock(reads_mu_);
        if (--reads_running_ == 0) reads_cv_.notify_all();
      };
      try {
        std::thread(std::move(read)).detach();
      } catch (const std::exception& e) {  // system_error (no thread), bad_alloc
        {
          std::lock_guard<std::mutex> lock(reads_mu_);
          --reads_running_;
        }
        --answers->running[j];
        answers->reads[idx].done_ns = NowNs();
        if (answers->running[j] == 0 && !answers->bodies[j].has_value()) {
          answers->bodies[j] = Status::Unavailable("shard " + std::to_string(j) + ": no thread for its read (" + e.what() + ")");
        }
      }
      return true;
    };
    const int64_t wait_start = NowNs();
    {
      std::lock_guard<std::mutex> lock(answers->mu);
      for (int j = 0; j < n; ++j) {
        if (shard_sql[j].empty()) {
          answers->bodies[j] = std::string();  // nothing of this round on it: answered
          continue;
        }
        if (usable[j].empty()) {
          answers->bodies[j] = Status::Unavailable(
              "shard " + std::to_string(j) + " skipped: " +
              (any_busy[j] ? std::to_string(kMaxLateReads) + " of its reads are still running" : "it missed a recent round"));
          continue;
        }
        launch(j);
        if (policy_.read_all_replicas) {
          while (launch(j)) {
          }
        }
      }
    }
    // Wait for every shard asked, up to the timeout. Once one has answered after t, each other
    // has until late_factor * t + the slack from its latest read's start; past that, a shard
    // with another replica gets a hedged read there (the first answer wins), else it is late.
    // A read that fails fast (refused, cut twice) goes on to the next replica at once.
    const int64_t t0 = NowNs();
    // With the shard's own timeout, a little past it, so that a read that times out is seen
    // to (and marks its server out) rather than abandoned a moment before; never past a
    // request's deadline.
    const int64_t grace_ns = full_timeout ? 25'000'000 : 0;
    const int64_t hard_ns = t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count() + grace_ns;
    const int64_t slack_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(policy_.late_slack).count();
    std::vector<Result<std::string>> bodies;
    bodies.reserve(n);
    int late = 0;
    {
      std::unique_lock<std::mutex> lock(answers->mu);
      std::vector<bool> given_up(n, false);
      int64_t first_ok = -1;  // the fastest answer's duration
      while (true) {
        first_ok = -1;
        for (int j = 0; j < n; ++j) {
          if (answers->answered_by[j] >= 0 && (first_ok < 0 || answers->answer_took[j] < first_ok)) {
            first_ok = answers->answer_took[j];
          }
        }
        // Late means past late_factor times the first answer; in a round that only reads again
        // what one shard missed (no other shard to compare with), times a recent round's.
        int64_t ref_ns = first_ok;
        if (ref_ns < 0 && reread_only) ref_ns = typical_read_ns_.load(std::memory_order_relaxed);
        const int64_t t = NowNs();
        bool waiting = false;
        int64_t until = hard_ns;
        for (int j = 0; j < n; ++j) {
          if (given_up[j] || usable[j].empty()) continue;
          auto& slot = answers->bodies[j];
          if (slot.has_value()) {
            // Failed fast with another replica left: read that one now.
            const StatusCode code = slot->status().code();
            if (slot->ok() || (code != StatusCode::kUnavailable && code != StatusCode::kDeadlineExceeded) ||
                next[j] >= usable[j].size() || t >= hard_ns) {
              continue;
            }
            slot.reset();
            launch(j);
            waiting = true;
            continue;
          }
          if (policy_.late_factor > 0 && ref_ns > 0) {
            int64_t dl = answers->start_ns[j] + static_cast<int64_t>(policy_.late_factor * static_cast<double>(ref_ns)) + slack_ns;
            if (t >= dl) {
              if (!launch(j)) {
                given_up[j] = true;
                continue;
              }
              dl = answers->start_ns[j] + static_cast<int64_t>(policy_.late_factor * static_cast<double>(ref_ns)) + slack_ns;
            }
            until = std::min(until, dl);
          }
          waiting = true;
        }
        if (!waiting || NowNs() >= hard_ns) break;
        answers->cv.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(0, until - NowNs())));
      }
      // A recent round's first answer (a moving average), for rounds of re-reads.
      if (!reread_only && first_ok > 0) {
        const int64_t was_typical = typical_read_ns_.load(std::memory_order_relaxed);
        typical_read_ns_.store(was_typical <= 0 ? first_ok : (7 * was_typical + first_ok) / 8, std::memory_order_relaxed);
      }
      for (int j = 0; j < n; ++j) {
        if (answers->bodies[j].has_value()) {
          bodies.push_back(std::move(*answers->bodies[j]));
          answers->bodies[j].reset();
          continue;
        }
        // Still running: left out of this round (not marked; its own timeout may mark it).
        ++late;
        bodies.push_back(Status::DeadlineExceeded("shard " + std::to_string(j) + " was late: over " +
                                                  Num(policy_.late_factor) + "x the first shard's time"));
      }
      // Every read still running is abandoned (a slow primary whose hedge answered, too): it
      // counts against its server until it ends.
      for (Answers::Read& rd : answers->reads) {
        if (rd.done_ns == 0 && !rd.abandoned) {
          rd.abandoned = true;
          late_reads_[rd.server].fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (tracer != nullptr) {
        for (const Answers::Read& rd : answers->reads) {
          ShardReadTrace& r = trace.reads.emplace_back();
          r.shard = rd.shard;
          r.server = rd.server;
          r.query_id = rd.query_id;
          r.wall_ns = (rd.done_ns > 0 ? rd.done_ns : NowNs()) - rd.start_ns;
          r.bytes_sent = static_cast<int64_t>(shard_sql[rd.shard].size());
          r.bytes_received = rd.bytes;
          r.used = false;  // set below for the answering read
          r.answered = rd.done_ns > 0 && answers->answered_by[rd.shard] == rd.server;
        }
      }
    }
    wait_ns = NowNs() - wait_start;
    if (round != nullptr) round->hedged = hedged;
    Status first_error = Status::Ok();
    int answered = 0;
    std::vector<OpPart> parts;
    std::vector<StrataSet> arrived(ops.size());
    for (int j = 0; j < n; ++j) {
      Status st = bodies[j].status();
      // A shard that answered with an error (bad SQL, a missing table, a memory limit) fails
      // the round: only lateness and lost connections make a shard's strata missing.
      if (!st.ok() && st.code() != StatusCode::kUnavailable && st.code() != StatusCode::kDeadlineExceeded) {
        return st.WithPrefix("shard " + std::to_string(j));
      }
      if (st.ok()) {
        st = ParseRound(*bodies[j], ops, wants[j], &parts, &asked[j]);
        if (!st.ok()) return st.WithPrefix("shard " + std::to_string(j));
      }
      if (!st.ok()) {
        if (first_error.ok() || first_error.message().find("skipped") != std::string::npos) first_error = st;
        continue;
      }
      ++answered;
      ShardReadTrace* traced = nullptr;
      if (tracer != nullptr) {
        for (ShardReadTrace& r : trace.reads) traced = r.shard == j && r.answered ? &r : traced;
        if (traced != nullptr) traced->used = true;
      }
      for (size_t i = 0; i < ops.size(); ++i) {
        ReadOp& op = ops[i];
        if (!asked[j][i]) continue;
        const StrataSet got = op.strata() & on[j];
        op.strata_read += static_cast<int>(got.count());
        arrived[i] |= got;
        if (traced != nullptr) traced->rows += parts[i].pm.rows;
        MergePart(std::move(parts[i]), &total[i]);
      }
    }
    // A round of re-reads that got nothing leaves the strata missed; a round of new strata
    // fails.
    if (answered == 0 && !reread_only) return first_error.WithPrefix("no shard answered the round");
    for (size_t i = 0; i < ops.size(); ++i) {
      ops[i].missed = ops[i].strata() & ~arrived[i];
    }
    if (round != nullptr) {
      round->shards = n;
      round->shards_answered = answered;
      round->shards_late = late;
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    ReadOp& op = ops[i];
    if (!op.asks()) continue;
    for (agg::Aggregator* a : op.aggs) {
      if (agg::PushesDown(a->op())) {
        a->UpdatePartial(total[i].pm, /*exact=*/false);
      } else {
        a->Update(total[i].values);
      }
    }
    op.rows = total[i].pm.rows;
  }
  // One statement for all: its time is shared by rows read (one row's worth at least each).
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  double weight = 0;
  for (const ReadOp& op : ops) weight += op.asks() ? static_cast<double>(op.rows + 1) : 0.0;
  for (ReadOp& op : ops) {
    if (op.asks() && weight > 0) op.ns = ns * static_cast<double>(op.rows + 1) / weight;
  }
  if (tracer != nullptr) {
    trace.wall_ns = static_cast<int64_t>(ns);
    trace.coordinator_ns = std::max<int64_t>(0, trace.wall_ns - wait_ns);
    // A branch's strata as its range (strata read again are not in the profiler's model).
    for (const ReadOp& op : ops) {
      if (!op.asks()) continue;
      ++trace.branches;
      trace.s_begin.push_back(op.s_begin);
      trace.s_end.push_back(op.s_end);
      trace.branch_rows.push_back(op.rows);
      trace.rows += op.rows;
    }
    tracer->Record(std::move(trace));
  }
  return Status::Ok();
}

Status ClickHouseBackend::ExactAggregates(std::span<ExactOp> ops, std::chrono::steady_clock::time_point deadline) const {
  const int64_t built = NowNs();
  std::string sql;
  for (size_t i = 0; i < ops.size(); ++i) {
    const ExactOp& op = ops[i];
    const Shape& sh = shapes_[op.query->shape];
    const Layout& l = layouts_[sh.layout];
    if (i > 0) sql += " UNION ALL ";
    sql += "SELECT toUInt32(" + std::to_string(i) + "), count(), [";
    for (size_t a = 0; a < op.aggs.size(); ++a) sql += (a ? ", " : "") + ExactExpr(*op.aggs[a], sh.value_column);
    if (op.aggs.empty()) sql += "toFloat64(0)";
    sql += "] FROM " + l.sorted + " WHERE " + op.query->remote_filter;
  }
  if (ops.empty()) return Status::Ok();
  std::chrono::milliseconds timeout{0};  // the client's default
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    timeout = std::max(std::chrono::milliseconds(1),
                       std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  }
  StatementTracer* const tracer = tracer_.load(std::memory_order_acquire);
  const std::string qid = tracer != nullptr ? tracer->NextQueryId() : std::string();
  const int64_t sent = NowNs();
  APX_ASSIGN_OR_RETURN(std::string body, client_->Query(sql, timeout, qid));
  const int64_t received = NowNs();
  std::vector<double> values;
  std::vector<bool> seen(ops.size(), false);
  APX_RETURN_IF_ERROR(ForEachLine(body, [&](std::string_view line) -> Status {
    const std::vector<std::string_view> f = SplitTabs(line);
    if (f.size() != 3) return Status::Internal("clickhouse: unexpected exact line");
    APX_ASSIGN_OR_RETURN(size_t idx, ParseOpIndex(f[0], &seen));
    ExactOp& op = ops[idx];
    APX_ASSIGN_OR_RETURN(double rows, ParseDouble(f[1]));
    op.rows = static_cast<int64_t>(rows);
    APX_RETURN_IF_ERROR(ParseArray(f[2], &values));
    if (values.size() < op.aggs.size()) return Status::Internal("clickhouse: too few exact values");
    for (size_t a = 0; a < op.aggs.size() && a < op.values.size(); ++a) op.values[a] = values[a];
    return Status::Ok();
  }));
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!seen[i]) return Status::Internal("clickhouse: no exact answer for query " + std::to_string(i));
  }
  if (tracer != nullptr) {
    StatementTrace trace;
    trace.exact = true;
    trace.branches = static_cast<int>(ops.size());
    trace.wall_ns = NowNs() - built;
    trace.coordinator_ns = trace.wall_ns - (received - sent);
    for (const ExactOp& op : ops) {
      trace.rows += op.rows;
      trace.branch_rows.push_back(op.rows);
    }
    ShardReadTrace& r = trace.reads.emplace_back();
    r.query_id = qid;
    r.wall_ns = received - sent;
    r.bytes_sent = static_cast<int64_t>(sql.size());
    r.bytes_received = static_cast<int64_t>(body.size());
    r.rows = trace.rows;
    r.used = true;
    tracer->Record(std::move(trace));
  }
  return Status::Ok();
}

Result<int64_t> ClickHouseBackend::InsertRows(const store::Table& rows) const {
  const store::TableSchema* schema = nullptr;
  for (const store::TableSchema& t : tables_) {
    if (t.name == rows.name()) schema = &t;
  }
  if (schema == nullptr) return Status::NotFound("table '" + rows.name() + "' is not in the spec");
  for (const store::ColumnSpec& c : schema->columns) {
    auto col = rows.column(c.name);
    if (!col.ok() || (*col)->type != c.type) {
      return Status::InvalidArgument("rows for table '" + rows.name() + "' need column '" + c.name + "' of type " +
                                     std::string(store::ColumnTypeName(c.type)));
    }
  }
  std::string columns;
  for (const store::Column& c : rows.columns()) columns += (columns.empty() ? "" : ", ") + *QuoteIdentifier(c.name);
  std::string tsv;
  for (int64_t r = 0; r < rows.num_rows(); ++r) {
    AppendRowTsv(rows, r, &tsv);
    tsv.back() = '\n';
  }
  const std::string table = cluster_.empty() ? rows.name() : DistributedName(rows.name());
  APX_RETURN_IF_ERROR(client_->InsertTsv(table, tsv, columns));
  // The next request's prior and value range include these rows (not rows inserted by others:
  // those wait for the next Build).
  std::unique_lock<std::shared_mutex> lock(stats_mu_);
  for (Layout& l : layouts_) {
    if (l.table != schema) continue;
    std::vector<const store::Column*> keys, values;
    for (const std::string& k : l.keys) keys.push_back(*rows.column(k));
    for (const std::string& v : l.value_columns) values.push_back(*rows.column(v));
    const store::Column* time = schema->time_column.empty() ? nullptr : *rows.column(schema->time_column);
    for (int64_t r = 0; r < rows.num_rows(); ++r) {
      std::string key;
      for (size_t i = 0; i < keys.size(); ++i) {
        if (i > 0) key += '\x1f';
        key += keys[i]->dictionary[keys[i]->codes[r]];
      }
      const int64_t t = time != nullptr ? time->ints[r] : 0;
      auto [it, fresh] = l.stats.try_emplace(std::move(key));
      KeyStats& st = it->second;
      if (fresh || st.rows == 0) {
        st.t_min = st.t_max = t;
        st.mean.assign(values.size(), 0.0);
        st.lo.assign(values.size(), std::numeric_limits<double>::infinity());
        st.hi.assign(values.size(), -std::numeric_limits<double>::infinity());
      }
      ++st.rows;
      st.t_min = std::min(st.t_min, t);
      st.t_max = std::max(st.t_max, t);
      for (size_t v = 0; v < values.size(); ++v) {
        const double x = values[v]->AsDouble(r);
        st.mean[v] += (x - st.mean[v]) / static_cast<double>(st.rows);
        st.lo[v] = std::min(st.lo[v], x);
        st.hi[v] = std::max(st.hi[v], x);
      }
    }
  }
  return rows.num_rows();
}

bool ClickHouseBackend::SameRows(int shape_a, int shape_b) const {
  return shapes_[shape_a].layout == shapes_[shape_b].layout &&
         shapes_[shape_a].value_column == shapes_[shape_b].value_column;
}

int64_t ClickHouseBackend::SharedSampledRows(const BoundQuery& a, const BoundQuery& b) const {
  if (!SameRows(a.shape, b.shape)) return 0;
  // Callers ask for partner queries of one request, bound to the same key values (Session).
  // The priors are proportional to the windows' spans: nested windows share the smaller one's
  // rows, disjoint ones none.
  const double lo = static_cast<double>(std::max(a.remote_t0, b.remote_t0));
  const double hi = static_cast<double>(std::min(a.remote_t1, b.remote_t1));
  if (!(hi > lo)) return 0;
  const double len_a = static_cast<double>(a.remote_t1) - static_cast<double>(a.remote_t0);
  const double len_b = static_cast<double>(b.remote_t1) - static_cast<double>(b.remote_t0);
  const double shorter = std::min(len_a, len_b);
  const double share = shorter > 0 && std::isfinite(shorter) ? std::min(1.0, (hi - lo) / shorter) : 1.0;
  return std::llround(share * static_cast<double>(std::min(a.matching_rows, b.matching_rows)));
}

namespace {

// Every table Ingest creates for `schema` on one server, base first (plain names).
std::vector<std::string> LocalNames(const store::TableSchema& schema,
                                    const std::vector<std::vector<std::string>>& key_sets) {
  std::vector<std::string> names = {schema.name};
  for (const std::vector<std::string>& keys : key_sets) {
    names.push_back(ClickHouseBackend::SampledName(schema.name, keys));
    names.push_back(ClickHouseBackend::SortedName(schema.name, keys));
  }
  return names;
}

// FailedPrecondition naming the first of `names` that exists in `client`'s database.
Status RefuseExisting(const ClickHouseClient& client, const std::vector<std::string>& names) {
  const std::string db = *QuoteIdentifier(client.config().database);
  for (const std::string& name : names) {
    APX_ASSIGN_OR_RETURN(std::string q, QuoteIdentifier(name));
    APX_ASSIGN_OR_RETURN(std::string taken, client.Query("EXISTS TABLE " + db + "." + q));
    if (taken.substr(0, 1) == "1") {
      return Status::FailedPrecondition("clickhouse table " + db + "." + q + " at " + client.config().url +
                                        " already exists; apxserve never replaces a table (drop it first to re-ingest)");
    }
  }
  return Status::Ok();
}

// The base table and its views on one server.
Status CreateLocal(const ClickHouseClient& client, const store::TableSchema& schema,
                   const std::vector<std::vector<std::string>>& key_sets) {
  const std::string db = *QuoteIdentifier(client.config().database);
  const std::string base = db + "." + *QuoteIdentifier(schema.name);
  std::string columns;
  for (const store::ColumnSpec& c : schema.columns) columns += *QuoteIdentifier(c.name) + " " + SqlType(c.type) + ", ";
  const std::string time = schema.time_column.empty() ? "" : *QuoteIdentifier(schema.time_column);
  APX_RETURN_IF_ERROR(client.Execute("CREATE TABLE " + base + " (" + columns +
                                     "`_rid` UInt64 DEFAULT rand64()) ENGINE = MergeTree() ORDER BY " +
                                     (time.empty() ? std::string("tuple()") : time)));
  // Layouts as materialized views: every insert into the base table (ours or anyone's) feeds them.
  for (const std::vector<std::string>& keys : key_sets) {
    std::string key_list;
    for (const std::string& k : keys) key_list += *QuoteIdentifier(k) + ", ";
    const std::string sampled = db + "." + *QuoteIdentifier(ClickHouseBackend::SampledName(schema.name, keys));
    const std::string sorted = db + "." + *QuoteIdentifier(ClickHouseBackend::SortedName(schema.name, keys));
    const std::string granule = " SETTINGS index_granularity = " + std::to_string(kGranule);
    APX_RETURN_IF_ERROR(client.Execute("CREATE MATERIALIZED VIEW " + sampled + " ENGINE = MergeTree() ORDER BY (" +
                                       key_list + "stratum" + (time.empty() ? "" : ", " + time) + ")" + granule +
                                       " AS SELECT *, " + StratumExpr() + " AS stratum FROM " + base));
    std::string sorted_order = key_list + time;
    if (time.empty() && sorted_order.size() >= 2) sorted_order.resize(sorted_order.size() - 2);
    APX_RETURN_IF_ERROR(client.Execute("CREATE MATERIALIZED VIEW " + sorted + " ENGINE = MergeTree() ORDER BY (" +
                                       (sorted_order.empty() ? std::string("tuple()") : sorted_order) + ")" +
                                       granule + " AS SELECT * FROM " + base));
  }
  return Status::Ok();
}

}  // namespace

std::string ClickHouseBackend::DistributedName(std::string_view local) { return std::string(local) + "__d"; }

Status ClickHouseBackend::Ingest(const ClickHouseClient& client, const store::Table& table,
                                 const std::vector<std::vector<std::string>>& key_sets, uint64_t seed,
                                 const store::ProgressFn& progress, const std::string& cluster,
                                 std::span<const ClickHouseClient* const> shards) {
  const store::TableSchema& schema = table.schema();
  APX_RETURN_IF_ERROR(QuoteIdentifier(schema.name).status());
  for (const store::ColumnSpec& c : schema.columns) APX_RETURN_IF_ERROR(QuoteIdentifier(c.name).status());
  for (const auto& keys : key_sets) {
    for (const std::string& k : keys) APX_RETURN_IF_ERROR(QuoteIdentifier(k).status());
  }
  const std::vector<std::string> local = LocalNames(schema, key_sets);
  const ClickHouseClient* single[] = {&client};
  if (cluster.empty()) shards = single;
  if (shards.empty()) return Status::InvalidArgument("clickhouse cluster '" + cluster + "': no shard urls given");
  // Everything is checked before anything is created: a refused ingest leaves no half.
  std::vector<std::string> distributed;
  if (!cluster.empty()) {
    APX_RETURN_IF_ERROR(QuoteIdentifier(cluster).status());
    for (const std::string& name : local) distributed.push_back(DistributedName(name));
    APX_RETURN_IF_ERROR(client.CreateDatabase());
    APX_RETURN_IF_ERROR(RefuseExisting(client, distributed));
    APX_ASSIGN_OR_RETURN(std::string n, client.Query("SELECT count() FROM system.clusters WHERE cluster = " +
                                                     QuoteString(cluster)));
    if (std::atoi(n.c_str()) != static_cast<int>(shards.size())) {
      return Status::InvalidArgument("clickhouse cluster '" + cluster + "' has " + std::to_string(std::atoi(n.c_str())) +
                                     " replicas in system.clusters at " + client.config().url + ", but " +
                                     std::to_string(shards.size()) + " shard urls were given");
    }
  }
  for (const ClickHouseClient* shard : shards) {
    APX_RETURN_IF_ERROR(shard->CreateDatabase());
    APX_RETURN_IF_ERROR(RefuseExisting(*shard, local));
  }
  for (const ClickHouseClient* shard : shards) APX_RETURN_IF_ERROR(CreateLocal(*shard, schema, key_sets));
  const std::string db = *QuoteIdentifier(client.config().database);
  if (!cluster.empty()) {
    // Distributed tables on the coordinator, sharded by stratum: a shard holds whole strata
    // (stratum % shards), so the shards that answer are a random subset of every group.
    for (size_t i = 0; i < local.size(); ++i) {
      const std::string sharding = i == 0 ? "cityHash64(`_rid`) % " + std::to_string(kNumStrata) : "rand()";
      APX_RETURN_IF_ERROR(client.Execute("CREATE TABLE " + db + "." + *QuoteIdentifier(distributed[i]) + " AS " + db +
                                         "." + *QuoteIdentifier(local[i]) + " ENGINE = Distributed(" +
                                         *QuoteIdentifier(cluster) + ", " + db + ", " + *QuoteIdentifier(local[i]) +
                                         ", " + sharding + ")"));
    }
  }
  // Rows in TabSeparated batches; _rid from the seed so that strata are reproducible.
  const std::string target = cluster.empty() ? schema.name : distributed[0];
  const int64_t n = table.num_rows();
  constexpr int64_t kBatch = 200000;
  std::string tsv;
  for (int64_t begin = 0; begin < n; begin += kBatch) {
    tsv.clear();
    const int64_t end = std::min(n, begin + kBatch);
    for (int64_t r = begin; r < end; ++r) {
      AppendRowTsv(table, r, &tsv);
      uint64_t z = seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(r + 1);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      tsv += std::to_string(z ^ (z >> 31));
      tsv += '\n';
    }
    APX_RETURN_IF_ERROR(client.InsertTsv(target, tsv, "", kLongStatement));
    if (progress) progress(end, n);
  }
  // One part per table: every statement then opens one part, not one per insert batch. A
  // materialized view passes OPTIMIZE on to its inner table (18.16 and current releases).
  for (const ClickHouseClient* shard : shards) {
    for (const std::string& name : local) {
      APX_RETURN_IF_ERROR(shard->Execute("OPTIMIZE TABLE " + db + "." + *QuoteIdentifier(name) + " FINAL", kLongStatement));
    }
  }
  return Status::Ok();
}

}  // namespace apx::backend
