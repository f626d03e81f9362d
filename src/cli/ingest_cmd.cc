// `apxserve ingest`.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/cli_common.h"

namespace apx::cli {

namespace {

// ClickHouse: every table of the spec, with a sampled layout and a sorted copy per key set its
// features use (docs/clickhouse.md). Refuses tables that exist already.
Status IngestClickHouse(const pipeline::PipelineSpec& spec) {
  APX_ASSIGN_OR_RETURN(auto client, pipeline::ConnectClickHouse(spec.backend));
  std::vector<std::shared_ptr<const backend::ClickHouseClient>> shards;
  std::vector<const backend::ClickHouseClient*> shard_ptrs;
  if (!spec.backend.cluster.empty()) {
    APX_ASSIGN_OR_RETURN(shards, pipeline::ConnectShards(spec.backend));
    for (const auto& s : shards) shard_ptrs.push_back(s.get());
  }
  // The rows come from the embedded store's loading (CSV or snapshot), as for eval.
  pipeline::OpenOptions open;
  open.load_model = false;
  pipeline::PipelineSpec local = spec;
  local.backend = pipeline::BackendSpec();
  local.features.clear();
  APX_ASSIGN_OR_RETURN(auto loaded, pipeline::Pipeline::Open(local, open));
  for (const pipeline::TableSpec& t : spec.tables) {
    std::vector<std::vector<std::string>> key_sets;
    for (const pipeline::FeatureSpec& f : spec.features) {
      if (!f.is_query() || f.table != t.schema.name) continue;
      std::vector<std::string> keys;
      for (const auto& [column, field] : f.keys) keys.push_back(column);
      if (std::find(key_sets.begin(), key_sets.end(), keys) == key_sets.end()) key_sets.push_back(keys);
    }
    const store::Table* table = loaded->store().table(t.schema.name);
    if (table == nullptr) return Status::Internal("table '" + t.schema.name + "' was not loaded");
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ProgressBar> bar;
    APX_RETURN_IF_ERROR(backend::ClickHouseBackend::Ingest(*client, *table, key_sets, spec.guarantee.seed,
                                                           LoadProgress("ingest " + t.schema.name, true, &bar),
                                                           spec.backend.cluster, shard_ptrs));
    if (bar) bar->Finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("ingested table '%s': %lld rows into clickhouse %s/%s (%zu layouts%s) in %.1f s\n",
                t.schema.name.c_str(), static_cast<long long>(table->num_rows()), client->config().url.c_str(),
                spec.backend.database.c_str(), key_sets.size(),
                shards.empty() ? "" : (", " + std::to_string(shards.size()) + " shards").c_str(), secs);
  }
  return Status::Ok();
}

}  // namespace

Status RunIngest(const IngestArgs& args, const GlobalOptions& global) {
  APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
  APX_RETURN_IF_ERROR(eval::PrepareData(spec, true));
  if (spec.backend.clickhouse()) return IngestClickHouse(spec);
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
