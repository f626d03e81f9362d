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

#include <map>
#include <memory>

#include "backend/backend.h"

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

  // Fraction of each group's rows per column the outlier index may hold (0: no outlier
  // index; store::kOutlierFraction by default). Call before Build(). A test and study hook.
  void set_outlier_fraction(double fraction) { outlier_fraction_ = fraction; }

 private:
  struct Layout {
    const store::Table* table = nullptr;
    store::SampledIndexOptions options;
    std::unique_ptr<store::SampledIndex> index;
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
};

}  // namespace apx::backend

#endif  // APX_BACKEND_EMBEDDED_BACKEND_H_
