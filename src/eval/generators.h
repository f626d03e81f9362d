// eval/generators.h
//
// Deterministic data generators: benchmark analogues of the published system's datasets,
// which cannot be downloaded here (docs/benchmarks/*.md says what each one models and why it
// resembles the original). A generator makes a set of named tables from (seed, scale); the
// same inputs always give the same bytes. `scale` shrinks the rows an exact request reads
// (1 = the published scale) so that CI can run the same pipelines small.
//
// Thread safety: pure functions.
#ifndef APX_EVAL_GENERATORS_H_
#define APX_EVAL_GENERATORS_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/table.h"

namespace apx::eval {

// Generates every table of dataset `name`. NotFound for an unknown name (the message lists the
// known ones). Progress: rows done / total.
Result<std::vector<std::unique_ptr<store::Table>>> GenerateDataset(
    std::string_view name, uint64_t seed, double scale, const store::ProgressFn& progress = nullptr);

// Names of the available generators.
std::vector<std::string> GeneratorNames();

}  // namespace apx::eval

#endif  // APX_EVAL_GENERATORS_H_
