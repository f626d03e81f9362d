// `apxserve profile`.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "cli/cli_common.h"
#include "common/file.h"
#include "eval/profile.h"
#include "eval/svg.h"

namespace apx::cli {
namespace {

bool IsProfile(std::string_view head) { return head.find("\"format\":\"apxserve-profile-1\"") != std::string_view::npos; }

bool IsSvg(std::string_view head) { return head.find("<svg") != std::string_view::npos; }

Result<eval::Profile> LoadProfile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("profile: cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("profile: '" + path + "' is not JSON");
  Result<eval::Profile> p = eval::Profile::FromJson(j);
  if (!p.ok()) return p.status().WithPrefix("'" + path + "'");
  return p;
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

Status RunProfileCommand(const ProfileArgs& args, const GlobalOptions& global) {
  if (args.spec_path.empty() == args.from.empty()) {
    return Status::InvalidArgument("profile: give either --pipeline (run and profile it) or --from (profiles written before)");
  }
  if (args.sampled_only && args.from.empty()) return Status::InvalidArgument("profile: --sampled-only applies to --from");
  if (!args.out_path.empty()) APX_RETURN_IF_ERROR(CheckReplaceable(args.out_path, "profile", IsProfile));
  if (!args.svg_path.empty()) APX_RETURN_IF_ERROR(CheckReplaceable(args.svg_path, "SVG chart", IsSvg));
  std::vector<eval::Profile> profiles;
  if (args.from.empty()) {
    APX_ASSIGN_OR_RETURN(pipeline::PipelineSpec spec, LoadCliSpec(args.spec_path, global));
    if (!spec.backend.clickhouse() || spec.backend.cluster.empty()) {
      return Status::InvalidArgument("profile: pipeline '" + spec.name +
                                     "' does not read ClickHouse shard by shard (backend: {type: clickhouse, cluster: ...})");
    }
    APX_ASSIGN_OR_RETURN(auto p, eval::PrepareAndOpen(spec, 2, !args.json));
    APX_ASSIGN_OR_RETURN(eval::Profile profile, eval::RunProfile(*p, {.n = args.n, .progress = !args.json}));
    if (!args.out_path.empty()) {
      APX_RETURN_IF_ERROR(WriteFileAtomically(args.out_path, profile.ToJson().dump() + "\n", "profile", IsProfile));
    }
    profiles.push_back(std::move(profile));
  } else {
    for (const std::string& path : args.from) {
      APX_ASSIGN_OR_RETURN(eval::Profile p, LoadProfile(path));
      profiles.push_back(args.sampled_only ? p.SampledOnly() : std::move(p));
    }
  }
  // The model is fitted on every profile at the first one's shard count (runs of the same
  // deployment); the others are checked against it, averaged per shard count.
  eval::Profile base = profiles.front();
  std::map<int, std::vector<const eval::Profile*>> others;
  for (size_t i = 1; i < profiles.size(); ++i) {
    if (profiles[i].shards == base.shards) {
      APX_RETURN_IF_ERROR(base.Append(profiles[i]));
    } else {
      if (profiles[i].pipeline != base.pipeline) {
        return Status::InvalidArgument("profile: --from mixes pipelines '" + base.pipeline + "' and '" + profiles[i].pipeline + "'");
      }
      others[profiles[i].shards].push_back(&profiles[i]);
    }
  }
  const eval::ProfileSplit split = eval::Split(base);
  APX_ASSIGN_OR_RETURN(eval::WhatIfModel model, eval::FitModel(base));

  std::vector<int> shards = args.shards;
  if (shards.empty()) shards = {1, 2, 4, 8};
  std::vector<double> bandwidths = args.bandwidth_mbps;
  if (bandwidths.empty()) bandwidths = {0};
  auto deployment = [&](int k, double bw) {
    return eval::Deployment{.shards = k, .hosts = args.host_per_shard ? k : 0, .host_cores = args.host_cores, .bandwidth_mbps = bw};
  };
  std::vector<eval::WhatIfPrediction> predictions;
  for (double bw : bandwidths) {
    for (int k : shards) predictions.push_back(eval::Predict(base, model, deployment(k, bw)));
  }
  // The other profiles' measurements against the model's predictions for them (same host
  // layout as profiled: every shard on one machine).
  struct Check {
    int shards;
    double measured, predicted;
    int runs;
  };
  std::vector<Check> checks;
  for (const auto& [k, list] : others) {
    double measured = 0;
    for (const eval::Profile* p : list) measured += eval::Split(*p).latency_ms;
    measured /= static_cast<double>(list.size());
    const eval::WhatIfPrediction p = eval::Predict(base, model, {.shards = k, .host_cores = args.host_cores});
    checks.push_back({k, measured, p.latency_ms, static_cast<int>(list.size())});
  }

  if (!args.svg_path.empty()) {
    std::vector<eval::Series> series;
    std::set<int> ks(shards.begin(), shards.end());
    for (const Check& c : checks) ks.insert(c.shards);
    ks.insert(base.shards);
    eval::Series predicted{.name = "predicted from the " + std::to_string(base.shards) + "-shard profile"};
    for (int k : ks) {
      const eval::WhatIfPrediction p = eval::Predict(base, model, deployment(k, bandwidths.front()));
      predicted.points.push_back({static_cast<double>(k), p.latency_ms, Fmt("%.1f", p.latency_ms)});
    }
    eval::Series measured{.name = "measured", .line = false};
    measured.points.push_back({static_cast<double>(base.shards), split.latency_ms, ""});
    for (const Check& c : checks) measured.points.push_back({static_cast<double>(c.shards), c.measured, Fmt("%.1f", c.measured)});
    std::sort(measured.points.begin(), measured.points.end(), [](const eval::Point& a, const eval::Point& b) { return a.x < b.x; });
    series.push_back(std::move(predicted));
    series.push_back(std::move(measured));
    const std::string svg = eval::ScatterSvg(
        series, {.title = base.pipeline + ": mean latency by shards" + (args.host_per_shard ? " (a host per shard)" : " (one host)"),
                 .x_label = "shards",
                 .y_label = "mean request latency (ms)",
                 .log_x = true});
    APX_RETURN_IF_ERROR(WriteFileAtomically(args.svg_path, svg, "SVG chart", IsSvg));
  }

  if (args.json) {
    nlohmann::json out = {{"pipeline", base.pipeline}, {"shards", base.shards}, {"cores", base.cores},
                          {"split", split.ToJson()},   {"model", model.ToJson()}};
    out["predictions"] = nlohmann::json::array();
    for (const auto& p : predictions) out["predictions"].push_back(p.ToJson());
    out["checks"] = nlohmann::json::array();
    for (const Check& c : checks) {
      out["checks"].push_back({{"shards", c.shards}, {"runs", c.runs}, {"measured_ms", c.measured}, {"predicted_ms", c.predicted},
                               {"error", c.predicted / c.measured - 1}});
    }
    std::cout << out.dump(2) << "\n";
    return Status::Ok();
  }
  std::printf("profile of %s: %d requests at %d shard%s (%d cores)\n", base.pipeline.c_str(), split.requests, base.shards,
              base.shards == 1 ? "" : "s", base.cores);
  std::printf("  latency: mean %.2f ms, p50 %.2f, p99 %.2f; per request %.2f sampled rounds + %.2f exact statements\n",
              split.latency_ms, split.p50_ms, split.p99_ms, split.rounds, split.exact);
  std::printf("  where it goes (mean per request): coordinator %.2f ms, shards %.2f ms (the slowest read's server time), "
              "network and protocol %.2f ms\n",
              split.coordinator_ms, split.shard_ms, split.network_ms);
  std::printf("  resources per request: shard CPU %.2f ms (%.2f ms waiting for a core), %.0f bytes sent, %.0f received\n",
              split.shard_cpu_ms, split.shard_cpu_wait_ms, split.bytes_sent, split.bytes_received);
  if (base.reads_unlogged > 0) std::printf("  %d reads had no query_log entry\n", base.reads_unlogged);
  std::printf("model (%d reads): a read's shard CPU = %.3f ms + %.3f ms per branch + %.1f ns per row; %.2f threads busy; "
              "protocol %.3f ms\n",
              model.reads_fitted, model.read_fixed_ms, model.read_branch_ms, model.read_row_ns, model.read_parallelism,
              model.transport_ms);
  std::printf("  exact statements: %.3f ms CPU per branch and extra shard (%s), %.2f cores busy\n", model.exact_part_ms,
              model.exact_part_measured ? "from the shards' sub-queries" : "assumed: no sub-queries in this profile",
              model.exact_parallelism);
  std::printf("what-if (%s, %d cores each):\n  %6s %10s %11s %14s  %s\n",
              args.host_per_shard ? "a host per shard" : "every shard on one host",
              args.host_cores > 0 ? args.host_cores : base.cores, "shards", "bandwidth", "latency ms", "throughput/s",
              "bottleneck");
  for (const auto& p : predictions) {
    const std::string bw = p.deployment.bandwidth_mbps > 0 ? Fmt("%.0f Mb/s", p.deployment.bandwidth_mbps) : "profiled";
    std::printf("  %6d %10s %11.2f %14.1f  %s\n", p.deployment.shards, bw.c_str(), p.latency_ms, p.throughput_rps,
                p.bottleneck.c_str());
  }
  if (!checks.empty()) {
    size_t fitted = 0;
    for (const eval::Profile& p : profiles) fitted += p.shards == base.shards ? 1 : 0;
    std::printf("check against the other profiles (one host; fitted on %zu run%s):\n  %6s %5s %12s %12s %8s\n", fitted,
                fitted == 1 ? "" : "s", "shards", "runs", "measured ms", "predicted ms", "error");
    for (const Check& c : checks) {
      std::printf("  %6d %5d %12.2f %12.2f %+7.1f%%\n", c.shards, c.runs, c.measured, c.predicted,
                  100 * (c.predicted / c.measured - 1));
    }
  }
  return Status::Ok();
}

}  // namespace apx::cli
