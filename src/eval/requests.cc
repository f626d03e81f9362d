#include "eval/requests.h"

#include <algorithm>
#include <random>
#include <string>

#include "store/table.h"

namespace apx::eval {

Status MakeRequests(const pipeline::Pipeline& pipeline, const pipeline::RequestSetSpec& set,
                    std::vector<pipeline::Request>* requests, std::vector<double>* labels) {
  using pipeline::FieldType;
  using pipeline::Request;
  using pipeline::RequestField;
  const pipeline::PipelineSpec& spec = pipeline.spec();
  const store::Table* table = pipeline.store().table(set.table);
  if (table == nullptr) return Status::NotFound("unknown table '" + set.table + "'");
  const store::Column* time = table->time_column();
  if (time == nullptr) return Status::InvalidArgument("table '" + set.table + "' has no time column");
  std::vector<const store::Column*> cols;
  for (const RequestField& f : spec.request_fields) {
    auto c = table->column(f.name);
    if (!c.ok()) {
      return c.status().WithPrefix("request field '" + f.name + "' must be a column of table '" +
                                   set.table + "' to draw requests from it");
    }
    cols.push_back(*c);
  }
  APX_ASSIGN_OR_RETURN(const store::Column* label, table->column(spec.label.column));
  const auto begin = std::lower_bound(time->ints.begin(), time->ints.end(), set.from) - time->ints.begin();
  const auto end = std::lower_bound(time->ints.begin(), time->ints.end(), set.to) - time->ints.begin();
  if (end - begin < set.n) {
    return Status::InvalidArgument("table '" + set.table + "' has only " + std::to_string(end - begin) +
                                   " rows in [" + store::FormatTimestamp(set.from) + ", " +
                                   store::FormatTimestamp(set.to) + "), fewer than n = " +
                                   std::to_string(set.n));
  }
  // Seeded selection sampling (Knuth's Algorithm S): n rows, uniformly, in time order.
  std::mt19937_64 rng(set.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<int64_t> rows;
  int64_t needed = set.n;
  for (int64_t r = begin; r < end && needed > 0; ++r) {
    if (unit(rng) * static_cast<double>(end - r) < static_cast<double>(needed)) {
      rows.push_back(r);
      --needed;
    }
  }
  requests->clear();
  labels->clear();
  for (int64_t row : rows) {
    Request req;
    req.numbers.assign(cols.size(), 0.0);
    req.strings.assign(cols.size(), std::string());
    for (size_t i = 0; i < cols.size(); ++i) {
      const store::Column& c = *cols[i];
      if (spec.request_fields[i].type == FieldType::kString) {
        if (c.type != store::ColumnType::kString) {
          return Status::InvalidArgument("request field '" + c.name + "' is a string but the column is not");
        }
        req.strings[i] = c.dictionary[c.codes[row]];
      } else {
        req.numbers[i] = c.AsDouble(static_cast<size_t>(row));
      }
    }
    double y = label->AsDouble(static_cast<size_t>(row));
    if (spec.label.greater_than) y = y > *spec.label.greater_than ? 1.0 : 0.0;
    requests->push_back(std::move(req));
    labels->push_back(y);
  }
  return Status::Ok();
}

}  // namespace apx::eval
