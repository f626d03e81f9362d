// eval/profile.h
//
// `apxserve profile`: where a distributed pipeline's time goes, and what it would be with
// more shards or another network (docs/profile.md).
//
//   RunProfile   answers a pipeline's test requests on a ClickHouse backend read shard by
//                shard, tracing every statement (ClickHouseBackend::set_tracer), then joins
//                each read with the server's own accounting (system.query_log: CPU time,
//                rows and bytes read) and splits each request's time into coordinator CPU,
//                shard CPU, bytes moved and the rest of the time on the wire.
//   FitModel     fits the what-if model's few coefficients to a profile.
//   Predict      replays a profile's statements at k shards and a given bandwidth.
//
// Thread safety: functions may run concurrently on different pipelines.
#ifndef APX_EVAL_PROFILE_H_
#define APX_EVAL_PROFILE_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "pipeline/pipeline.h"

namespace apx::eval {

// One read of one server, as the coordinator saw it and as the server accounted for it.
struct ProfiledRead {
  int shard = 0;
  double wall_ms = 0;         // sent to last byte received, at the coordinator
  int64_t bytes_sent = 0, bytes_received = 0;
  int64_t rows = 0;           // rows its partial states cover (sampled) or matched (exact)
  bool used = false;          // merged into the round (false: late or failed)
  // From the server's system.query_log (logged false: no entry found).
  bool logged = false;
  double server_ms = 0;       // query_duration_ms (whole milliseconds)
  double cpu_ms = 0;          // OSCPUVirtualTimeMicroseconds: user + system CPU of its threads
  double cpu_wait_ms = 0;     // OSCPUWaitMicroseconds: runnable but waiting for a core
  // NetworkReceiveElapsedMicroseconds: its threads' wait for other servers' data (an exact
  // statement's coordinator waiting for the shards' parts).
  double net_wait_ms = 0;
  int64_t read_rows = 0, read_bytes = 0;  // what the server scanned
};

// One statement: a sampled round (a read per shard) or an exact statement (one read at the
// coordinator; `sub` holds the shards' sub-queries of the Distributed table).
struct ProfiledStatement {
  int request = 0;
  bool exact = false;
  int branches = 0;
  double wall_ms = 0;
  double coordinator_ms = 0;  // building the SQL, parsing and merging
  int64_t rows = 0;
  std::vector<int> s_begin, s_end;  // per branch (sampled)
  std::vector<int64_t> branch_rows;
  std::vector<ProfiledRead> reads;
  std::vector<ProfiledRead> sub;  // exact: per shard server, its part of the statement
};

struct ProfiledRequest {
  double total_ms = 0;
  double statements_ms = 0;  // its statements' wall time
  int rounds = 0;
  bool cut_over = false;
  bool degraded = false;
};

struct Profile {
  std::string pipeline;
  int shards = 0;
  int hosts = 1;  // distinct hosts among the shards' urls
  int cores = 0;  // std::thread::hardware_concurrency() of the machine that ran it
  std::string run_id;
  std::vector<ProfiledRequest> requests;
  std::vector<ProfiledStatement> statements;
  int reads_unlogged = 0;  // reads with no query_log entry

  nlohmann::json ToJson() const;
  static Result<Profile> FromJson(const nlohmann::json& j);
  // Without its exact statements (their time taken off their requests): the sampled path
  // alone.
  Profile SampledOnly() const;
  // Adds `other`'s requests and statements (another run of the same deployment).
  // InvalidArgument when its pipeline or shard count differs.
  Status Append(const Profile& other);
};

struct ProfileOptions {
  int n = 200;          // test requests (after min(n, 20) warm-up requests, not profiled)
  bool progress = true;
  double delta = -1, tau = -1;  // < 0: the spec's
};

// InvalidArgument unless the pipeline's backend is ClickHouse read shard by shard.
Result<Profile> RunProfile(const pipeline::Pipeline& pipeline, const ProfileOptions& options);

// Where a profile's time went, per request on average (docs/profile.md, "The split").
struct ProfileSplit {
  int requests = 0;
  double latency_ms = 0;         // mean request latency
  double p50_ms = 0, p99_ms = 0;
  double statements = 0;         // per request: sampled rounds + exact statements
  double rounds = 0, exact = 0;
  // The latency's parts: the coordinator's own work (planning, the model, building SQL,
  // parsing and merging), the slowest server's time per statement (query_log), and the rest
  // of each statement's wait: moving the bytes and the protocol (HTTP, loopback).
  double coordinator_ms = 0, shard_ms = 0, network_ms = 0;
  // Resources per request: CPU of every server (query_log), bytes both ways.
  double shard_cpu_ms = 0, shard_cpu_wait_ms = 0;
  double bytes_sent = 0, bytes_received = 0;
  nlohmann::json ToJson() const;
};
ProfileSplit Split(const Profile& profile);

// A deployment to predict: `shards` shards, `hosts` machines holding them round robin (0:
// every shard on one host, as a local profile ran), each with `host_cores` cores (0: the
// profile's), the links at `bandwidth_mbps` (0: as profiled).
struct Deployment {
  int shards = 1;
  int hosts = 0;
  int host_cores = 0;
  double bandwidth_mbps = 0;
};

// The what-if model fitted to one profile (docs/profile.md, "The model").
struct WhatIfModel {
  int profiled_shards = 0;
  int cores = 0;
  // A sampled read's CPU on its shard: fixed + per branch + per row it aggregates.
  double read_fixed_ms = 0, read_branch_ms = 0, read_row_ns = 0;
  // A read's CPU over its server time without waiting for a core (threads it keeps busy).
  double read_parallelism = 1;
  // A read's time beyond the server's, without contention: the protocol and the wire.
  double transport_ms = 0;
  // Exact statements through the Distributed tables: CPU of one branch's part on one more
  // shard (measured from the shards' sub-queries when the profile had several shards; else
  // assumed twice a one-branch read's fixed cost: one statement on the shard, one to receive
  // it), and their CPU per wall time.
  double exact_part_ms = 0;
  bool exact_part_measured = false;
  double exact_parallelism = 1;
  int reads_fitted = 0;
  nlohmann::json ToJson() const;
};
Result<WhatIfModel> FitModel(const Profile& profile);

struct WhatIfPrediction {
  Deployment deployment;
  double latency_ms = 0;        // mean request latency, sequential requests
  double throughput_rps = 0;    // requests per second with every core busy (the bottleneck's)
  std::string bottleneck;       // "shard CPU" | "coordinator CPU" | "network"
  double shard_cpu_ms = 0;      // per request
  double bytes = 0;             // per request, both ways
  nlohmann::json ToJson() const;
};
// Replays `profile`'s statements (the same strata and rows) at `deployment`.
WhatIfPrediction Predict(const Profile& profile, const WhatIfModel& model, const Deployment& deployment);

}  // namespace apx::eval

#endif  // APX_EVAL_PROFILE_H_
