#include "backend/embedded_backend.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <tuple>

namespace apx::backend {

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
  out->group = index->FindGroup(key_values);
  if (out->group < 0 || t1 <= t0) {
    out->group = -1;
    out->matching_rows = 0;
    out->exact_rows = 0;
    out->rest_min = out->rest_max = std::numeric_limits<double>::quiet_NaN();
    out->rest_distinct = -1;
    return Status::Ok();
  }
  index->Window(out->group, t0, t1, &out->window);
  out->exact_rows = out->window.ExactRows();
  out->matching_rows = out->window.RowsIn(0, kNumStrata) + out->exact_rows;
  // The rest's range near the window (time buckets), not over the key's whole history.
  std::tie(out->rest_min, out->rest_max) = index->RestRange(out->group, s.value_idx, t0, t1);
  out->rest_distinct = index->RestDistinct(out->group, s.value_idx);
  return Status::Ok();
}

Result<int64_t> EmbeddedBackend::Read(const BoundQuery& query, int s_begin, int s_end,
                                      std::span<agg::Aggregator* const> aggs) const {
  if (query.group < 0 || s_begin >= s_end) return int64_t{0};
  const Shape& s = shapes_[query.shape];
  const double* values = layouts_[s.layout].index->values(s.value_idx);
  int64_t rows = 0;
  for (int stratum = s_begin; stratum < s_end; ++stratum) {
    const uint32_t lo = query.window.lo[stratum];
    const uint32_t hi = query.window.hi[stratum];
    if (hi <= lo) continue;
    const std::span<const double> span(values + lo, hi - lo);
    for (agg::Aggregator* a : aggs) a->Update(span);
    rows += hi - lo;
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
