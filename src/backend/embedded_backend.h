// backend/embedded_backend.h
//
// The default backend: in-memory tables of the embedded store, with one sampled layout
// (store::SampledIndex) per (table, key columns) pair that the prepared queries use, holding
// copies of just the columns those queries aggregate — a projection in ClickHouse's sense.
//
// Thread safety: AddTable/Prepare/Build are single-threaded setup; afterwards Bind/Read are
// const and may be called concurrently.
#ifndef APX_BACKEND_EMBEDDED_BACKEND_H_
#define APX_BACKEND_EMBEDDED_BACKEND_H_

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <shared_mutex>
#include <unordered_map>

#include "backend/backend.h"
#include "store/append_log.h"

namespace apx::backend {

class EmbeddedBackend : public Backend {
 public:
  explicit EmbeddedBackend(uint64_t seed = 0) : seed_(seed) {}

  // Takes ownership of a table; its name must be new.
  Status AddTable(std::unique_ptr<store::Table> table);
  // The table named `name`, or nullptr.
  const store::Table* table(std::string_view name) const;

  Result<int> Prepare(const QueryShape& shape) override;
  Status Build(const store::ProgressFn& progress = nullptr) override;
  Status Bind(int shape, std::span<const std::string_view> key_values, int64_t t0, int64_t t1,
              BoundQuery* out) const override;
  Result<int64_t> Read(const BoundQuery& query, int s_begin, int s_end,
                       std::span<agg::Aggregator* const> aggs) const override;
  Result<int64_t> ReadExact(const BoundQuery& query,
                            std::span<agg::Aggregator* const> aggs) const override;
  bool SameRows(int shape_a, int shape_b) const override;
  int64_t SharedSampledRows(const BoundQuery& a, const BoundQuery& b) const override;

  // Appends rows to a table: written to the table's append log first (SetAppendLog; synced
  // before this returns), then seen by the next Bind. Every layout of the table gets them in
  // random strata, held beside the layout (the delta) until a restart folds the log into the
  // table. Appended rows are sampled like any other (none goes to the outlier index; the
  // rest's range widens to cover them). NotFound for an unknown table, InvalidArgument for
  // rows of another schema, IoError when the log cannot be written (then nothing is applied).
  Result<int64_t> InsertRows(const store::Table& rows) const override;
  // InsertRows without writing the log: rows that another backend of this process, holding
  // the same table file, has already logged.
  Result<int64_t> ApplyRows(const store::Table& rows) const;
  // The append log of table `name`. Call before serving.
  void SetAppendLog(std::string_view name, std::unique_ptr<store::AppendLog> log);
  // Rows appended since Build, over all tables.
  int64_t appended_rows() const;

  // Fraction of each group's rows per column the outlier index may hold (0: no outlier
  // index; store::kOutlierFraction by default). Call before Build(). A test and study hook.
  void set_outlier_fraction(double fraction) { outlier_fraction_ = fraction; }

 private:
  // One key's appended rows, per stratum in arrival order: times, the layout's value columns
  // (row-major), append sequence numbers; and the range of each value column.
  struct DeltaKey {
    std::vector<int64_t> times[kNumStrata];
    std::vector<double> values[kNumStrata];
    std::vector<uint64_t> seqs[kNumStrata];
    std::vector<double> lo, hi;
  };
  struct Layout {
    const store::Table* table = nullptr;
    store::SampledIndexOptions options;
    std::unique_ptr<store::SampledIndex> index;
    // Appended rows by key text (joined with '\x1f'); guarded by delta_mu_. Nodes never move.
    mutable std::unordered_map<std::string, DeltaKey> delta;
  };
  struct Shape {
    int layout = -1;
    std::string value_column;
    int value_idx = -1;
  };

  uint64_t seed_;
  double outlier_fraction_ = store::kOutlierFraction;
  std::map<std::string, std::unique_ptr<store::Table>, std::less<>> tables_;
  std::vector<Layout> layouts_;
  std::vector<Shape> shapes_;
  std::map<std::string, std::unique_ptr<store::AppendLog>, std::less<>> logs_;
  mutable std::shared_mutex delta_mu_;
  mutable uint64_t delta_seq_ = 0;  // rows appended so far (guarded by delta_mu_)
  mutable std::mt19937_64 delta_rng_{0x5eed};  // strata of appended rows (guarded)
  mutable std::atomic<bool> has_delta_{false};
};

}  // namespace apx::backend

#endif  // APX_BACKEND_EMBEDDED_BACKEND_H_
