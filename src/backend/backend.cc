// backend/backend.cc: the Backend interface's default batched calls.
#include "backend/backend.h"

#include <algorithm>
#include <chrono>

namespace apx::backend {

Status Backend::ReadMany(std::span<ReadOp> ops, ReadRound*) const {
  for (ReadOp& op : ops) {
    const auto start = std::chrono::steady_clock::now();
    op.rows = 0;
    op.exact_rows = 0;
    op.strata_read = op.strata_asked();
    op.missed.reset();
    if (op.exact_part && op.query->exact_rows > 0) {
      APX_ASSIGN_OR_RETURN(op.exact_rows, ReadExact(*op.query, op.aggs));
    }
    if (op.s_end > op.s_begin) {
      APX_ASSIGN_OR_RETURN(op.rows, Read(*op.query, op.s_begin, op.s_end, op.aggs));
    }
    // Strata read again, run by run of consecutive strata.
    for (int s = 0; s < kNumStrata;) {
      if (!op.reread[s]) {
        ++s;
        continue;
      }
      int e = s;
      while (e < kNumStrata && op.reread[e]) ++e;
      APX_ASSIGN_OR_RETURN(int64_t rows, Read(*op.query, s, e, op.aggs));
      op.rows += rows;
      s = e;
    }
    op.ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  }
  return Status::Ok();
}

std::string JoinKey(std::span<const std::string_view> values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += '\x1f';
    out.append(values[i]);
  }
  return out;
}

Result<int64_t> Backend::InsertRows(const store::Table& rows) const {
  return Status::FailedPrecondition("this backend does not take appends (table '" + rows.name() + "')");
}

Status Backend::ExactAggregates(std::span<ExactOp>, std::chrono::steady_clock::time_point) const {
  return Status::FailedPrecondition("this backend does not compute exact aggregates itself");
}

}  // namespace apx::backend
