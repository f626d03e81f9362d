// `apxserve ingest`.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/cli_common.h"

namespace apx::cli {

namespace {

// ClickHouse: every table of the spec, with a sampled layout and a sorted copy per key set its
// features use (docs/clickhouse.md). Refuses tables that exist already.
Status IngestToClickHouse(const pipeline::PipelineSpec& spec) {
  APX_ASSIGN_OR_RETURN(auto client, pipeline::ConnectClickHouse(spec.backend));
  std::unique_ptr<ProgressBar> bar;
  return pipeline::IngestClickHouse(
      spec, [&](const std::string& table) { return LoadProgress("ingest " + table, true, &bar); },
      [&](const pipeline::IngestedTable& t) {
        if (bar) bar->Finish();
        bar.reset();
        std::printf("ingested table '%s': %lld rows into clickhouse %s/%s (%zu layouts%s) in %.1f s\n", t.name.c_str(),
                    static_cast<long long>(t.rows), client->config().url.c_str(), spec.backend.database.c_str(),
                    t.layouts, t.shards == 0 ? "" : (", " + std::to_string(t.shards) + " servers").c_str(),
                    t.seconds);
      });
}

}  // namespace

Status RunIngest(const IngestArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_RETURN_IF_ERROR(eval::PrepareData(spec, true));
  if (spec.backend.clickhouse()) return IngestToClickHouse(spec);
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
