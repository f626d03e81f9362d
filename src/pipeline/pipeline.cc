#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "model/loader.h"
#include "store/append_log.h"
#include "store/table.h"

namespace apx::pipeline {
namespace {

// The model family (model::Model::family) a spec booster trains.
std::string_view ModelFamily(const std::string& booster) {
  if (booster == "gblinear" || booster == "ols") return "linear";
  if (booster == "mlp") return "mlp";
  return "trees";
}

using Clock = std::chrono::steady_clock;

double NsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

// Loads a table: the snapshot when it is at least as new as the CSV, else the CSV (and then
// writes the snapshot so the next start is fast).
Result<std::unique_ptr<store::Table>> LoadTable(const TableSpec& t,
                                                const store::ProgressFn& progress) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool have_snap = fs::exists(t.snapshot, ec);
  const bool have_csv = fs::exists(t.csv, ec);
  if (have_snap && (!have_csv || fs::last_write_time(t.snapshot, ec) >= fs::last_write_time(t.csv, ec))) {
    auto table = store::ReadSnapshot(t.snapshot);
    if (table.ok()) {
      if ((*table)->name() != t.schema.name) {
        return Status::InvalidArgument("snapshot '" + t.snapshot + "' holds table '" +
                                       (*table)->name() + "', expected '" + t.schema.name + "'");
      }
      // A snapshot ingested under an older definition of the table (another time column,
      // other column types) would silently answer other questions: rebuild it or refuse.
      const Status matches = store::CheckTableMatches(**table, t.schema);
      if (matches.ok()) return table;
      const std::string why = "snapshot '" + t.snapshot + "' was built for another definition of table '" +
                              t.schema.name + "' (" + matches.message() + ")";
      if (!have_csv || t.generated()) {
        return Status::FailedPrecondition(why + "; delete it to rebuild it");
      }
      std::fprintf(stderr, "apxserve: %s: rebuilding it from '%s'\n", why.c_str(), t.csv.c_str());
    } else {
      if (!have_csv) return table.status();
      // Ours but damaged: rebuilt from the CSV below (WriteSnapshot refuses to replace a file
      // that is not a snapshot at all).
      std::fprintf(stderr, "apxserve: snapshot '%s' cannot be used (%s): rebuilding it from '%s'\n",
                   t.snapshot.c_str(), table.status().message().c_str(), t.csv.c_str());
    }
  }
  if (t.generated()) {
    return Status::NotFound("table '" + t.schema.name + "': snapshot '" + t.snapshot +
                            "' is missing; `apxserve eval` or `apxserve train` generates it");
  }
  if (!have_csv) {
    return Status::NotFound("table '" + t.schema.name + "': neither CSV '" + t.csv +
                            "' nor snapshot '" + t.snapshot + "' exists (run scripts/fetch-data.sh?)");
  }
  APX_ASSIGN_OR_RETURN(auto table, store::ReadCsv(t.csv, t.schema, progress));
  APX_RETURN_IF_ERROR(store::WriteSnapshot(*table, t.snapshot));
  return table;
}

}  // namespace

namespace {

Result<std::shared_ptr<const backend::ClickHouseClient>> ConnectUrl(const std::string& url,
                                                                    const BackendSpec& spec,
                                                                    bool check = true) {
  backend::ClickHouseConfig config;
  config.url = url;
  config.check_on_connect = check;
  config.database = spec.database;
  APX_RETURN_IF_ERROR(backend::LoadCredentials(&config));
  APX_ASSIGN_OR_RETURN(auto client, backend::ClickHouseClient::Connect(config));
  return std::shared_ptr<const backend::ClickHouseClient>(std::move(client));
}

}  // namespace

Result<std::shared_ptr<const backend::ClickHouseClient>> ConnectClickHouse(const BackendSpec& spec) {
  std::string url = spec.url;
  if (url.empty()) {
    const char* env = std::getenv("APX_CLICKHOUSE_URL");
    if (env == nullptr || *env == '\0') {
      return Status::InvalidArgument("backend clickhouse: the spec gives no url and APX_CLICKHOUSE_URL is not set");
    }
    url = env;
  }
  return ConnectUrl(url, spec);
}

namespace {

// Per shard, its replicas' urls (the primary first).
Result<std::vector<std::vector<std::string>>> ShardUrls(const BackendSpec& spec) {
  std::vector<std::string> entries = spec.shards;
  if (entries.empty()) {
    const char* env = std::getenv("APX_CLICKHOUSE_URLS");
    if (env == nullptr || *env == '\0') {
      return Status::InvalidArgument("backend clickhouse: cluster '" + spec.cluster +
                                     "' needs its shards' urls: `shards:` in the spec or APX_CLICKHOUSE_URLS");
    }
    std::string_view list(env);
    while (!list.empty()) {
      const size_t comma = list.find(',');
      if (comma != 0) entries.emplace_back(list.substr(0, comma));
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  std::vector<std::vector<std::string>> out;
  std::set<std::string> seen;
  for (const std::string& e : entries) {
    std::vector<std::string>& shard = out.emplace_back();
    std::string_view rest(e);
    while (true) {
      const size_t bar = rest.find('|');
      const std::string url(rest.substr(0, bar));
      if (url.empty()) return Status::InvalidArgument("backend clickhouse: an empty url in the shards' list '" + e + "'");
      if (!seen.insert(url).second) return Status::InvalidArgument("backend clickhouse: url " + url + " is listed twice among the shards");
      shard.push_back(url);
      if (bar == std::string_view::npos) break;
      rest.remove_prefix(bar + 1);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<std::shared_ptr<const backend::ClickHouseClient>>> ConnectShards(const BackendSpec& spec,
                                                                                   bool check) {
  APX_ASSIGN_OR_RETURN(auto urls, ShardUrls(spec));
  std::vector<std::shared_ptr<const backend::ClickHouseClient>> out;
  for (const auto& shard : urls) {
    APX_ASSIGN_OR_RETURN(auto client, ConnectUrl(shard.front(), spec, check));
    out.push_back(std::move(client));
  }
  return out;
}

Result<std::vector<std::vector<std::shared_ptr<const backend::ClickHouseClient>>>> ConnectReplicas(
    const BackendSpec& spec, bool check) {
  APX_ASSIGN_OR_RETURN(auto urls, ShardUrls(spec));
  std::vector<std::vector<std::shared_ptr<const backend::ClickHouseClient>>> out(urls.size());
  for (size_t j = 0; j < urls.size(); ++j) {
    for (size_t r = 1; r < urls[j].size(); ++r) {
      APX_ASSIGN_OR_RETURN(auto client, ConnectUrl(urls[j][r], spec, check));
      out[j].push_back(std::move(client));
    }
  }
  return out;
}

Status IngestClickHouse(const PipelineSpec& spec,
                        const std::function<store::ProgressFn(const std::string&)>& progress,
                        const std::function<void(const IngestedTable&)>& done) {
  if (!spec.backend.clickhouse()) return Status::InvalidArgument("IngestClickHouse: the spec's backend is not clickhouse");
  APX_ASSIGN_OR_RETURN(auto client, ConnectClickHouse(spec.backend));
  std::vector<std::shared_ptr<const backend::ClickHouseClient>> shards;
  std::vector<const backend::ClickHouseClient*> shard_ptrs;
  if (!spec.backend.cluster.empty()) {
    APX_ASSIGN_OR_RETURN(shards, ConnectShards(spec.backend));
    // Every replica gets the tables too (the cluster lists one row per replica); the rows go
    // to all of them through the Distributed insert.
    APX_ASSIGN_OR_RETURN(auto replicas, ConnectReplicas(spec.backend));
    for (auto& list : replicas) {
      for (auto& r : list) shards.push_back(std::move(r));
    }
    for (const auto& s : shards) shard_ptrs.push_back(s.get());
  }
  OpenOptions open;
  open.load_model = false;
  PipelineSpec local = spec;
  local.backend = BackendSpec();
  local.features.clear();
  APX_ASSIGN_OR_RETURN(auto loaded, Pipeline::Open(local, open));
  for (const TableSpec& t : spec.tables) {
    std::vector<std::vector<std::string>> key_sets;
    for (const FeatureSpec& f : spec.features) {
      if (!f.is_query() || f.table != t.schema.name) continue;
      std::vector<std::string> keys;
      for (const auto& [column, field] : f.keys) keys.push_back(column);
      if (std::find(key_sets.begin(), key_sets.end(), keys) == key_sets.end()) key_sets.push_back(keys);
    }
    const store::Table* table = loaded->store().table(t.schema.name);
    if (table == nullptr) return Status::Internal("table '" + t.schema.name + "' was not loaded");
    const auto start = std::chrono::steady_clock::now();
    APX_RETURN_IF_ERROR(backend::ClickHouseBackend::Ingest(*client, *table, key_sets, spec.guarantee.seed,
                                                           progress ? progress(t.schema.name) : nullptr,
                                                           spec.backend.cluster, shard_ptrs));
    if (done) {
      done({.name = t.schema.name, .rows = table->num_rows(), .layouts = key_sets.size(),
            .shards = shards.size(), .seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Pipeline>> Pipeline::Open(const PipelineSpec& spec,
                                                 const OpenOptions& options) {
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->spec_ = spec;
  p->backend_ = std::make_unique<backend::EmbeddedBackend>(spec.guarantee.seed);
  for (const TableSpec& t : spec.tables) {
    APX_ASSIGN_OR_RETURN(auto table, LoadTable(t, options.progress));
    // Rows appended through apxserve (POST /v1/tables/{table}/rows) are in the table's append
    // log: replayed into the table before its layouts are built.
    auto log = std::make_unique<store::AppendLog>(store::LogPathFor(t.snapshot), t.schema);
    auto replayed = log->Replay();
    if (!replayed.ok()) return replayed.status().WithPrefix("table '" + t.schema.name + "'");
    if (!replayed->empty()) {
      int64_t rows = 0;
      for (const auto& r : *replayed) rows += r->num_rows();
      APX_ASSIGN_OR_RETURN(table, store::ConcatTables(*table, *replayed));
      std::fprintf(stderr, "apxserve: table '%s': %lld appended rows from '%s'\n", t.schema.name.c_str(),
                   static_cast<long long>(rows), log->path().c_str());
    }
    APX_RETURN_IF_ERROR(p->backend_->AddTable(std::move(table)));
    p->backend_->SetAppendLog(t.schema.name, std::move(log));
  }
  backend::Backend* features_backend = p->backend_.get();
  if (spec.backend.clickhouse()) {
    APX_ASSIGN_OR_RETURN(auto client, ConnectClickHouse(spec.backend));
    std::vector<store::TableSchema> schemas;
    for (const TableSpec& t : spec.tables) schemas.push_back(t.schema);
    // With a cluster and its shards' urls, sampled reads go to each shard itself (a late or
    // lost shard costs confidence, not the answer); without the urls, through the coordinator.
    std::vector<std::shared_ptr<const backend::ClickHouseClient>> shards;
    std::vector<std::vector<std::shared_ptr<const backend::ClickHouseClient>>> replicas;
    const char* urls = std::getenv("APX_CLICKHOUSE_URLS");
    if (!spec.backend.cluster.empty() && (!spec.backend.shards.empty() || (urls != nullptr && *urls != '\0'))) {
      APX_ASSIGN_OR_RETURN(shards, ConnectShards(spec.backend, /*check=*/false));
      APX_ASSIGN_OR_RETURN(replicas, ConnectReplicas(spec.backend, /*check=*/false));
    }
    p->remote_ = std::make_unique<backend::ClickHouseBackend>(
        std::move(client), std::move(schemas), spec.backend.cluster, std::move(shards),
        backend::ShardPolicy{.timeout = std::chrono::milliseconds(spec.backend.shard_timeout_ms),
                             .late_factor = spec.backend.late_factor,
                             .late_slack = std::chrono::microseconds(std::llround(spec.backend.late_slack_ms * 1000)),
                             .read_all_replicas = spec.backend.replica_reads == "all"},
        std::move(replicas));
    features_backend = p->remote_.get();
  }
  p->feature_names_ = spec.FeatureNames();
  if (!spec.time_field.empty()) {
    p->time_field_ = static_cast<int>(spec.FindField(spec.time_field) - spec.request_fields.data());
  }
  std::vector<int> group_of;
  for (size_t i = 0; i < spec.features.size(); ++i) {
    const FeatureSpec& f = spec.features[i];
    if (!f.is_query()) {
      const RequestField* rf = spec.FindField(f.field);
      p->request_features_.push_back({.slot = static_cast<int>(group_of.size()),
                                      .field = static_cast<int>(rf - spec.request_fields.data()),
                                      .transform = f.transform});
      group_of.push_back(-1);
      continue;
    }
    CompiledQuery q;
    q.spec_index = static_cast<int>(i);
    backend::QueryShape shape{.table = f.table, .key_columns = {}, .value_column = f.column};
    for (const AggSpec& a : f.aggs) shape.count_distinct |= a.op == agg::AggOp::kCountDistinct;
    for (const auto& [column, field] : f.keys) {
      shape.key_columns.push_back(column);
      const RequestField* rf = spec.FindField(field);
      q.key_fields.push_back(static_cast<int>(rf - spec.request_fields.data()));
    }
    auto shape_id = features_backend->Prepare(shape);
    if (!shape_id.ok()) {
      return shape_id.status().WithPrefix(spec.path + ":" + std::to_string(f.line) + ": feature '" + f.name + "'");
    }
    q.shape = *shape_id;
    q.window_from = f.window_from;
    q.window_to = f.window_to;
    q.has_window = f.has_window;
    for (size_t a = 0; a < f.aggs.size(); ++a) {
      q.feature_slots.push_back(static_cast<int>(group_of.size()));
      group_of.push_back(static_cast<int>(p->queries_.size()));
    }
    p->queries_.push_back(std::move(q));
  }
  // Queries that read the same sampled rows as an earlier one (nested windows of one key).
  for (size_t b = 0; b < p->queries_.size(); ++b) {
    CompiledQuery& qb = p->queries_[b];
    for (size_t a = 0; a < b && qb.partner_query < 0; ++a) {
      const CompiledQuery& qa = p->queries_[a];
      if (qa.key_fields != qb.key_fields || !features_backend->SameRows(qa.shape, qb.shape)) continue;
      qb.partner_query = static_cast<int>(a);
      const auto& aggs_a = spec.features[qa.spec_index].aggs;
      const auto& aggs_b = spec.features[qb.spec_index].aggs;
      qb.partner_agg.assign(aggs_b.size(), -1);
      for (size_t j = 0; j < aggs_b.size(); ++j) {
        for (size_t i = 0; i < aggs_a.size(); ++i) {
          // The same statistic of the two windows (sum and avg are both N·mean or mean of
          // the same rows, so their errors correlate alike).
          auto family = [](agg::AggOp op) { return op == agg::AggOp::kSum ? agg::AggOp::kAvg : op; };
          if (family(aggs_a[i].op) == family(aggs_b[j].op) && aggs_a[i].q == aggs_b[j].q) {
            qb.partner_agg[j] = static_cast<int>(i);
          }
        }
      }
    }
  }
  APX_RETURN_IF_ERROR(features_backend->Build(options.progress));
  p->query_ns_per_row_ = std::make_unique<std::atomic<double>[]>(p->queries_.size());
  for (size_t q = 0; q < p->queries_.size(); ++q) p->query_ns_per_row_[q].store(kDefaultNsPerRow);
  p->average_branches_.store(2.0 * static_cast<double>(std::max<size_t>(p->queries_.size(), 1)));
  APX_ASSIGN_OR_RETURN(uq::SaltelliDesign design,
                       uq::SaltelliDesign::Build(group_of, static_cast<int>(p->queries_.size()),
                                                 spec.guarantee.qmc_points, spec.guarantee.seed));
  p->design_ = std::make_unique<uq::SaltelliDesign>(std::move(design));
  if (options.load_model) {
    auto model = model::LoadModel(spec.model.path, spec.task);
    if (!model.ok()) {
      return model.status().WithPrefix("pipeline '" + spec.name + "': loading model (run `apxserve train --pipeline " +
                                       spec.path + "` first?)");
    }
    const std::string_view want = ModelFamily(spec.model.booster);
    if (!(*model)->family().empty() && (*model)->family() != want) {
      return Status::FailedPrecondition(
          "pipeline '" + spec.name + "': model '" + spec.model.path + "' is a " +
          std::string((*model)->family()) + " model but the spec asks for booster '" +
          spec.model.booster + "'; retrain it (`apxserve train --pipeline " + spec.path +
          "`) or delete the file");
    }
    // Same count is not enough: a model trained on other features (renamed, reordered) would
    // be fed the wrong columns without a word.
    APX_ASSIGN_OR_RETURN(const std::vector<std::string> trained_on, model::ModelFeatureNames(spec.model.path));
    if (!trained_on.empty() && trained_on != p->feature_names_) {
      size_t i = 0;
      while (i < trained_on.size() && i < p->feature_names_.size() && trained_on[i] == p->feature_names_[i]) ++i;
      return Status::FailedPrecondition(
          "pipeline '" + spec.name + "': model '" + spec.model.path + "' was trained on other features (feature " +
          std::to_string(i) + ": '" + (i < trained_on.size() ? trained_on[i] : std::string("-")) + "' in the model, '" +
          (i < p->feature_names_.size() ? p->feature_names_[i] : std::string("-")) + "' in the spec); retrain it (`apxserve train --pipeline " +
          spec.path + "`)");
    }
    Status set = p->SetModel(std::move(*model));
    if (!set.ok()) return set.WithPrefix("model '" + spec.model.path + "'");
  }
  return p;
}

namespace {

// Moving average that ignores the scale of outliers (a page fault, a descheduled thread):
// a new sample counts at most 3x (and at least 1/3x) the current value.
void UpdateAverage(std::atomic<double>& avg, double sample) {
  const double old = avg.load(std::memory_order_relaxed);
  const double clamped = std::clamp(sample, old / 3, old * 3);
  avg.store(0.95 * old + 0.05 * clamped, std::memory_order_relaxed);
}

}  // namespace

Status Pipeline::SetModel(std::unique_ptr<model::Model> model) {
  if (model->num_features() != feature_names_.size()) {
    return Status::InvalidArgument("the model has " + std::to_string(model->num_features()) +
                                   " features, the spec has " +
                                   std::to_string(feature_names_.size()) + " (retrain it)");
  }
  model_ = std::move(model);
  return Calibrate();
}

void Pipeline::RecordRoundOverhead(double ns) const { UpdateAverage(round_overhead_ns_, ns); }

void Pipeline::RecordApproximate(int rounds, double fraction, int branches) const {
  UpdateAverage(average_rounds_, static_cast<double>(std::max(rounds, 1)));
  UpdateAverage(average_branches_, static_cast<double>(std::max(branches, 1)));
  UpdateAverage(average_fraction_, std::clamp(fraction, 0.0, 1.0));
}

bool Pipeline::TakeProbe() const {
  return upfront_cuts_.fetch_add(1, std::memory_order_relaxed) % kProbeEvery == kProbeEvery - 1;
}

void Pipeline::RecordQueryCost(size_t q, double ns_per_row) const {
  UpdateAverage(query_ns_per_row_[q], ns_per_row);
}

void Pipeline::RecordRemoteRound(int branches, int64_t rows, double ns) const {
  std::lock_guard<std::mutex> lock(round_fit_mu_);
  round_fit_.Add(branches, rows, ns);
}

Pipeline::RoundCost Pipeline::remote_round_cost() const {
  std::lock_guard<std::mutex> lock(round_fit_mu_);
  return round_fit_.Get();
}

void Pipeline::RecordExactStatement(double ns, int64_t rows) const {
  if (rows < 1000) return;
  // The first statements set the average outright (a plain mean of the first 20), not 5 %
  // at a time from the default: a cut-over's statement is budgeted by it.
  std::lock_guard<std::mutex> lock(exact_mu_);
  const int64_t seen = exact_statements_.fetch_add(1, std::memory_order_relaxed);
  const double sample = ns / static_cast<double>(rows);
  if (seen < 20) {
    const double old = seen == 0 ? sample : exact_ns_per_row_.load(std::memory_order_relaxed);
    exact_ns_per_row_.store(old + (sample - old) / static_cast<double>(seen + 1), std::memory_order_relaxed);
  } else {
    UpdateAverage(exact_ns_per_row_, sample);
  }
}

Status Pipeline::Calibrate() {
  // One propagation round with every aggregation feature uncertain: the planner's estimate of
  // a round's overhead (median of a few runs, after one warm-up).
  std::vector<uq::FeatureDist> features(num_features(), {.mean = 0, .std = 0, .fixed = true});
  for (const CompiledQuery& q : queries_) {
    for (int slot : q.feature_slots) features[slot] = {.mean = 1.0, .std = 0.1, .fixed = false};
  }
  uq::Propagator propagator(*design_, *model_);
  uq::PropagationResult result;
  std::vector<double> ns;
  for (int i = 0; i < 8; ++i) {
    const auto start = Clock::now();
    APX_RETURN_IF_ERROR(propagator.Run(features, spec_.guarantee.delta > 0 ? spec_.guarantee.delta : 1.0, &result));
    if (i > 0) ns.push_back(NsSince(start));
  }
  std::nth_element(ns.begin(), ns.begin() + ns.size() / 2, ns.end());
  round_overhead_ns_.store(ns[ns.size() / 2], std::memory_order_relaxed);
  return Status::Ok();
}

}  // namespace apx::pipeline
