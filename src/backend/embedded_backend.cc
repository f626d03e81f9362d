#include "backend/embedded_backend.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <tuple>

namespace apx::backend {
namespace {

// The text of row `r` of column `c` as a key value of the delta.
std::string KeyText(const store::Column& c, int64_t r) {
  return c.type == store::ColumnType::kString ? c.dictionary[c.codes[r]] : std::to_string(c.ints[r]);
}

// A request's key values as the delta spells them: integers canonical ("042" -> "42"), as
// FindGroup reads them.
std::string DeltaKeyText(const store::Table& table, const std::vector<std::string>& key_columns,
                     std::span<const std::string_view> key_values) {
  std::string out;
  for (size_t i = 0; i < key_values.size(); ++i) {
    if (i > 0) out += '\x1f';
    const store::Column* c = *table.column(key_columns[i]);
    int64_t v = 0;
    const std::string_view text = key_values[i];
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (c->type != store::ColumnType::kString && ec == std::errc() && ptr == text.data() + text.size()) {
      out += std::to_string(v);
    } else {
      out.append(text);
    }
  }
  return out;
}

}  // namespace

Status EmbeddedBackend::AddTable(std::unique_ptr<store::Table> table) {
  const std::string name = table->name();
  if (!tables_.emplace(name, std::move(table)).second) {
    return Status::InvalidArgument("table '" + name + "' is loaded twice");
  }
  return Status::Ok();
}

const store::Table* EmbeddedBackend::table(std::string_view name) const {
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : it->second.get();
}

Result<int> EmbeddedBackend::Prepare(const QueryShape& shape) {
  const store::Table* t = table(shape.table);
  if (t == nullptr) return Status::NotFound("unknown table '" + shape.table + "'");
  for (const std::string& key : shape.key_columns) APX_RETURN_IF_ERROR(t->column(key).status());
  APX_ASSIGN_OR_RETURN(const store::Column* value, t->column(shape.value_column));
  if (value->type == store::ColumnType::kString) {
    return Status::InvalidArgument("column '" + shape.value_column + "' of table '" + shape.table +
                                   "' is a string column and cannot be aggregated");
  }
  int layout = -1;
  for (size_t i = 0; i < layouts_.size(); ++i) {
    if (layouts_[i].table == t && layouts_[i].options.key_columns == shape.key_columns) {
      layout = static_cast<int>(i);
    }
  }
  if (layout < 0) {
    Layout l;
    l.table = t;
    l.options.key_columns = shape.key_columns;
    // Each layout draws its own strata, so that samples of different layouts are independent.
    std::string id = shape.table;
    for (const std::string& key : shape.key_columns) id += "/" + key;
    l.options.seed = seed_ ^ std::hash<std::string>{}(id);
    layouts_.push_back(std::move(l));
    layout = static_cast<int>(layouts_.size()) - 1;
  }
  std::vector<std::string>& values = layouts_[layout].options.value_columns;
  if (std::find(values.begin(), values.end(), shape.value_column) == values.end()) {
    values.push_back(shape.value_column);
    layouts_[layout].index.reset();  // needs a rebuild with the new column
  }
  std::vector<std::string>& distinct = layouts_[layout].options.distinct_columns;
  if (shape.count_distinct &&
      std::find(distinct.begin(), distinct.end(), shape.value_column) == distinct.end()) {
    distinct.push_back(shape.value_column);
    layouts_[layout].index.reset();
  }
  shapes_.push_back({layout, shape.value_column, -1});
  return static_cast<int>(shapes_.size()) - 1;
}

Status EmbeddedBackend::Build(const store::ProgressFn& progress) {
  int64_t total = 0, done = 0;
  for (const Layout& l : layouts_) total += l.table->num_rows();
  for (Layout& l : layouts_) {
    if (l.index == nullptr) {
      l.options.outlier_fraction = outlier_fraction_;
      APX_ASSIGN_OR_RETURN(l.index, store::SampledIndex::Build(*l.table, l.options));
    }
    done += l.table->num_rows();
    if (progress) progress(done, total);
  }
  for (Shape& s : shapes_) s.value_idx = layouts_[s.layout].index->ValueIndex(s.value_column);
  return Status::Ok();
}

Status EmbeddedBackend::Bind(int shape, std::span<const std::string_view> key_values, int64_t t0,
                             int64_t t1, BoundQuery* out) const {
  if (shape < 0 || static_cast<size_t>(shape) >= shapes_.size()) {
    return Status::InvalidArgument("unknown query shape " + std::to_string(shape));
  }
  const Shape& s = shapes_[shape];
  const store::SampledIndex* index = layouts_[s.layout].index.get();
  if (index == nullptr) return Status::FailedPrecondition("backend not built");
  out->shape = shape;
  out->remote_t0 = t0;
  out->remote_t1 = t1;
  out->delta = nullptr;
  out->group = index->FindGroup(key_values);
  if (out->group < 0 || t1 <= t0) {
    out->group = -1;
    out->matching_rows = 0;
    out->exact_rows = 0;
    out->rest_min = out->rest_max = std::numeric_limits<double>::quiet_NaN();
    out->rest_distinct = -1;
    out->window = {};
  } else {
    index->Window(out->group, t0, t1, &out->window);
    out->exact_rows = out->window.ExactRows();
    out->matching_rows = out->window.RowsIn(0, kNumStrata) + out->exact_rows;
    // The rest's range near the window (time buckets), not over the key's whole history.
    std::tie(out->rest_min, out->rest_max) = index->RestRange(out->group, s.value_idx, t0, t1);
    out->rest_distinct = index->RestDistinct(out->group, s.value_idx);
  }
  if (!has_delta_.load(std::memory_order_acquire) || t1 <= t0) return Status::Ok();
  // Rows appended since Build: counted (the window's N stays exact), and their range joins
  // the rest's.
  std::shared_lock<std::shared_mutex> lock(delta_mu_);
  const Layout& layout = layouts_[s.layout];
  const auto it = layout.delta.find(DeltaKeyText(*layout.table, layout.options.key_columns, key_values));
  if (it == layout.delta.end()) return Status::Ok();
  const DeltaKey& d = it->second;
  int64_t rows = 0;
  for (int stratum = 0; stratum < kNumStrata; ++stratum) {
    for (int64_t t : d.times[stratum]) rows += (t >= t0 && t < t1) ? 1 : 0;
  }
  if (rows == 0) return Status::Ok();
  out->delta = &d;
  out->delta_seq = delta_seq_;
  out->matching_rows += rows;
  const double lo = d.lo[s.value_idx], hi = d.hi[s.value_idx];
  out->rest_min = std::isnan(out->rest_min) ? lo : std::min(out->rest_min, lo);
  out->rest_max = std::isnan(out->rest_max) ? hi : std::max(out->rest_max, hi);
  out->rest_distinct = -1;  // the appended rows' distinct values are not counted
  return Status::Ok();
}

Result<int64_t> EmbeddedBackend::Read(const BoundQuery& query, int s_begin, int s_end,
                                      std::span<agg::Aggregator* const> aggs) const {
  if ((query.group < 0 && query.delta == nullptr) || s_begin >= s_end) return int64_t{0};
  const Shape& s = shapes_[query.shape];
  int64_t rows = 0;
  if (query.group >= 0) {
    const double* values = layouts_[s.layout].index->values(s.value_idx);
    for (int stratum = s_begin; stratum < s_end; ++stratum) {
      const uint32_t lo = query.window.lo[stratum];
      const uint32_t hi = query.window.hi[stratum];
      if (hi <= lo) continue;
      const std::span<const double> span(values + lo, hi - lo);
      for (agg::Aggregator* a : aggs) a->Update(span);
      rows += hi - lo;
    }
  }
  if (query.delta == nullptr) return rows;
  // Appended rows of these strata inside the window, appended before the query was bound.
  std::shared_lock<std::shared_mutex> lock(delta_mu_);
  const DeltaKey& d = *static_cast<const DeltaKey*>(query.delta);
  const size_t nv = layouts_[s.layout].options.value_columns.size();
  thread_local std::vector<double> buffer;
  for (int stratum = s_begin; stratum < s_end; ++stratum) {
    const std::vector<uint64_t>& seqs = d.seqs[stratum];
    const size_t end = std::lower_bound(seqs.begin(), seqs.end(), query.delta_seq) - seqs.begin();
    buffer.clear();
    for (size_t i = 0; i < end; ++i) {
      const int64_t t = d.times[stratum][i];
      if (t >= query.remote_t0 && t < query.remote_t1) buffer.push_back(d.values[stratum][i * nv + s.value_idx]);
    }
    if (buffer.empty()) continue;
    for (agg::Aggregator* a : aggs) a->Update(buffer);
    rows += static_cast<int64_t>(buffer.size());
  }
  return rows;
}

Result<int64_t> EmbeddedBackend::ReadExact(const BoundQuery& query,
                                           std::span<agg::Aggregator* const> aggs) const {
  if (query.group < 0 || query.exact_rows == 0) return int64_t{0};
  const Shape& s = shapes_[query.shape];
  const double* values = layouts_[s.layout].index->values(s.value_idx);
  const uint32_t lo = query.window.lo[store::kExactCell];
  const uint32_t hi = query.window.hi[store::kExactCell];
  const std::span<const double> span(values + lo, hi - lo);
  for (agg::Aggregator* a : aggs) a->UpdateExact(span);
  return static_cast<int64_t>(hi - lo);
}

void EmbeddedBackend::SetAppendLog(std::string_view name, std::unique_ptr<store::AppendLog> log) {
  logs_[std::string(name)] = std::move(log);
}

int64_t EmbeddedBackend::appended_rows() const {
  std::shared_lock<std::shared_mutex> lock(delta_mu_);
  return static_cast<int64_t>(delta_seq_);
}

Result<int64_t> EmbeddedBackend::InsertRows(const store::Table& rows) const {
  const store::Table* t = table(rows.name());
  if (t == nullptr) return Status::NotFound("unknown table '" + rows.name() + "'");
  APX_RETURN_IF_ERROR(store::CheckTableMatches(rows, t->schema()));
  const auto log = logs_.find(rows.name());
  if (log != logs_.end()) APX_RETURN_IF_ERROR(log->second->Append(rows));
  return ApplyRows(rows);
}

Result<int64_t> EmbeddedBackend::ApplyRows(const store::Table& rows) const {
  const store::Table* t = table(rows.name());
  if (t == nullptr) return Status::NotFound("unknown table '" + rows.name() + "'");
  APX_RETURN_IF_ERROR(store::CheckTableMatches(rows, t->schema()));
  const store::Column* time = rows.time_column();
  std::unique_lock<std::shared_mutex> lock(delta_mu_);
  const uint64_t first_seq = delta_seq_;
  for (const Layout& l : layouts_) {
    if (l.table != t || l.index == nullptr) continue;
    std::vector<const store::Column*> keys, values;
    for (const std::string& k : l.options.key_columns) keys.push_back(*rows.column(k));
    for (const std::string& v : l.options.value_columns) values.push_back(*rows.column(v));
    std::string key;
    for (int64_t r = 0; r < rows.num_rows(); ++r) {
      key.clear();
      for (size_t k = 0; k < keys.size(); ++k) {
        if (k > 0) key += '\x1f';
        key += KeyText(*keys[k], r);
      }
      DeltaKey& d = l.delta[key];
      if (d.lo.empty()) {
        d.lo.assign(values.size(), std::numeric_limits<double>::infinity());
        d.hi.assign(values.size(), -std::numeric_limits<double>::infinity());
      }
      // Each layout draws its own stratum, as Build does (independent samples per layout).
      const int stratum = static_cast<int>(delta_rng_() % kNumStrata);
      d.times[stratum].push_back(time != nullptr ? time->ints[r] : 0);
      d.seqs[stratum].push_back(first_seq + static_cast<uint64_t>(r));
      for (size_t v = 0; v < values.size(); ++v) {
        const double x = values[v]->AsDouble(r);
        d.values[stratum].push_back(x);
        d.lo[v] = std::min(d.lo[v], x);
        d.hi[v] = std::max(d.hi[v], x);
      }
    }
  }
  delta_seq_ = first_seq + static_cast<uint64_t>(rows.num_rows());
  has_delta_.store(true, std::memory_order_release);
  return rows.num_rows();
}

bool EmbeddedBackend::SameRows(int shape_a, int shape_b) const {
  if (shape_a < 0 || shape_b < 0 || static_cast<size_t>(shape_a) >= shapes_.size() ||
      static_cast<size_t>(shape_b) >= shapes_.size()) {
    return false;
  }
  const Shape& a = shapes_[shape_a];
  const Shape& b = shapes_[shape_b];
  return a.layout == b.layout && a.value_column == b.value_column;
}

int64_t EmbeddedBackend::SharedSampledRows(const BoundQuery& a, const BoundQuery& b) const {
  if (a.group < 0 || a.group != b.group || !SameRows(a.shape, b.shape)) return 0;
  int64_t rows = 0;
  for (int stratum = 0; stratum < kNumStrata; ++stratum) {
    const uint32_t lo = std::max(a.window.lo[stratum], b.window.lo[stratum]);
    const uint32_t hi = std::min(a.window.hi[stratum], b.window.hi[stratum]);
    if (hi > lo) rows += hi - lo;
  }
  return rows;
}

}  // namespace apx::backend
