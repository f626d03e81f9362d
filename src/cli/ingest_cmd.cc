// `apxserve ingest`.
#include <chrono>
#include <cstdio>

#include "cli/cli_common.h"

namespace apx::cli {

Status RunIngest(const IngestArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_RETURN_IF_ERROR(eval::PrepareData(spec, true));
  for (const pipeline::TableSpec& t : spec.tables) {
    if (t.generated()) {
      std::printf("table '%s' is generated: snapshot %s\n", t.schema.name.c_str(), t.snapshot.c_str());
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ProgressBar> bar;
    auto table = store::ReadCsv(t.csv, t.schema, LoadProgress("ingest " + t.schema.name, true, &bar));
    if (bar) bar->Finish();
    if (!table.ok()) return table.status();
    APX_RETURN_IF_ERROR(store::WriteSnapshot(**table, t.snapshot));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("ingested table '%s': %lld rows from %s into %s in %.1f s\n", t.schema.name.c_str(),
                static_cast<long long>((*table)->num_rows()), t.csv.c_str(), t.snapshot.c_str(), secs);
  }
  return Status::Ok();
}

}  // namespace apx::cli
