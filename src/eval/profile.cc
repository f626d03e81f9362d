// eval/profile.cc: tracing a pipeline's statements and joining them with system.query_log.
#include "eval/profile.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "backend/clickhouse_backend.h"
#include "common/progress.h"
#include "common/stats.h"
#include "eval/requests.h"
#include "pipeline/session.h"

namespace apx::eval {
namespace {

using backend::ClickHouseClient;

// Collects the traces of one profile run, tagging each with the request in progress.
class Collector : public backend::StatementTracer {
 public:
  explicit Collector(std::string run_id) : run_id_(std::move(run_id)) {}
  std::string NextQueryId() override {
    std::lock_guard<std::mutex> lock(mu_);
    return "apxprof-" + run_id_ + "-" + std::to_string(next_id_++);
  }
  void Record(backend::StatementTrace trace) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (request_ >= 0) traces_.emplace_back(request_, std::move(trace));
  }
  void set_request(int request) {
    std::lock_guard<std::mutex> lock(mu_);
    request_ = request;
  }
  std::vector<std::pair<int, backend::StatementTrace>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(traces_);
  }

 private:
  std::mutex mu_;
  std::string run_id_;
  int64_t next_id_ = 0;
  int request_ = -1;  // < 0: not profiled (warm-up)
  std::vector<std::pair<int, backend::StatementTrace>> traces_;
};

struct LogEntry {
  int server = 0;  // the shard whose log holds it
  std::string initial_query_id;
  bool initial = true;
  double server_ms = 0, cpu_ms = 0, cpu_wait_ms = 0, net_wait_ms = 0;
  int64_t read_rows = 0, read_bytes = 0, result_bytes = 0;
};

// The finished statements of this run in `server`'s query_log, by query_id (and the
// sub-queries of exact statements, by initial_query_id).
Status LoadQueryLog(const ClickHouseClient& server, int index, const std::string& run_id, std::unordered_map<std::string, LogEntry>* by_id,
                    std::unordered_multimap<std::string, LogEntry>* sub) {
  APX_RETURN_IF_ERROR(server.Execute("SYSTEM FLUSH LOGS").WithPrefix("profile: flushing the query log at " + server.config().url));
  Result<std::string> exists =
      server.Query("SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'");
  APX_RETURN_IF_ERROR(exists.status());
  if (exists->rfind("0", 0) == 0) return Status::Ok();  // nothing logged there yet
  const std::string like = backend::QuoteString("apxprof-" + run_id + "-%");
  const auto event = [](const char* name) {
    return std::string("ProfileEvents.Values[indexOf(ProfileEvents.Names, '") + name + "')]";
  };
  const std::string sql =
      "SELECT query_id, initial_query_id, is_initial_query, query_duration_ms, " + event("OSCPUVirtualTimeMicroseconds") + ", " +
      event("OSCPUWaitMicroseconds") + ", read_rows, read_bytes, result_bytes, " + event("NetworkReceiveElapsedMicroseconds") + " FROM system.query_log WHERE type = 2 AND event_date >= yesterday() AND (query_id LIKE " +
      like + " OR initial_query_id LIKE " + like + ")";
  APX_ASSIGN_OR_RETURN(std::string body, server.Query(sql, std::chrono::milliseconds(60000)));
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string_view line(body.data() + pos, end - pos);
    pos = end + 1;
    const std::vector<std::string_view> sv = backend::SplitTabs(line);
    const std::vector<std::string> f(sv.begin(), sv.end());
    if (f.size() != 10) return Status::Internal("profile: unexpected query_log line from " + server.config().url);
    LogEntry e;
    e.server = index;
    e.initial_query_id = f[1];
    e.initial = f[2] == "1";
    try {
      e.server_ms = std::stod(f[3]);
      e.cpu_ms = std::stod(f[4]) / 1000.0;
      e.cpu_wait_ms = std::stod(f[5]) / 1000.0;
      e.read_rows = std::stoll(f[6]);
      e.read_bytes = std::stoll(f[7]);
      e.result_bytes = std::stoll(f[8]);
      e.net_wait_ms = std::stod(f[9]) / 1000.0;
    } catch (const std::exception&) {
      return Status::Internal("profile: unreadable query_log line from " + server.config().url);
    }
    if (e.initial) {
      (*by_id)[f[0]] = e;
    } else {
      sub->emplace(e.initial_query_id, e);
    }
  }
  return Status::Ok();
}

void Apply(const LogEntry& e, ProfiledRead* r) {
  r->logged = true;
  r->shard = e.server;
  r->server_ms = e.server_ms;
  r->cpu_ms = e.cpu_ms;
  r->cpu_wait_ms = e.cpu_wait_ms;
  r->net_wait_ms = e.net_wait_ms;
  r->read_rows = e.read_rows;
  r->read_bytes = e.read_bytes;
}

nlohmann::json ReadJson(const ProfiledRead& r) {
  return {{"shard", r.shard},        {"wall_ms", r.wall_ms},   {"bytes_sent", r.bytes_sent},
          {"bytes_received", r.bytes_received}, {"rows", r.rows}, {"used", r.used},
          {"logged", r.logged},      {"server_ms", r.server_ms}, {"cpu_ms", r.cpu_ms},
          {"cpu_wait_ms", r.cpu_wait_ms}, {"net_wait_ms", r.net_wait_ms}, {"read_rows", r.read_rows}, {"read_bytes", r.read_bytes}};
}

ProfiledRead ReadFromJson(const nlohmann::json& j) {
  ProfiledRead r;
  r.shard = j.at("shard").get<int>();
  r.wall_ms = j.at("wall_ms").get<double>();
  r.bytes_sent = j.at("bytes_sent").get<int64_t>();
  r.bytes_received = j.at("bytes_received").get<int64_t>();
  r.rows = j.at("rows").get<int64_t>();
  r.used = j.at("used").get<bool>();
  r.logged = j.at("logged").get<bool>();
  r.server_ms = j.at("server_ms").get<double>();
  r.cpu_ms = j.at("cpu_ms").get<double>();
  r.cpu_wait_ms = j.at("cpu_wait_ms").get<double>();
  r.net_wait_ms = j.value("net_wait_ms", 0.0);
  r.read_rows = j.at("read_rows").get<int64_t>();
  r.read_bytes = j.at("read_bytes").get<int64_t>();
  return r;
}

}  // namespace

nlohmann::json Profile::ToJson() const {
  nlohmann::json reqs = nlohmann::json::array();
  for (const ProfiledRequest& r : requests) {
    reqs.push_back({{"total_ms", r.total_ms}, {"statements_ms", r.statements_ms}, {"rounds", r.rounds},
                    {"cut_over", r.cut_over}, {"degraded", r.degraded}});
  }
  nlohmann::json stmts = nlohmann::json::array();
  for (const ProfiledStatement& s : statements) {
    nlohmann::json reads = nlohmann::json::array(), sub = nlohmann::json::array();
    for (const ProfiledRead& r : s.reads) reads.push_back(ReadJson(r));
    for (const ProfiledRead& r : s.sub) sub.push_back(ReadJson(r));
    stmts.push_back({{"request", s.request}, {"exact", s.exact}, {"branches", s.branches}, {"wall_ms", s.wall_ms},
                     {"coordinator_ms", s.coordinator_ms}, {"rows", s.rows}, {"s_begin", s.s_begin},
                     {"s_end", s.s_end}, {"branch_rows", s.branch_rows}, {"reads", reads}, {"sub", sub}});
  }
  return {{"format", "apxserve-profile-1"}, {"pipeline", pipeline}, {"shards", shards}, {"hosts", hosts}, {"cores", cores},
          {"run_id", run_id}, {"reads_unlogged", reads_unlogged}, {"requests", reqs}, {"statements", stmts}};
}

Result<Profile> Profile::FromJson(const nlohmann::json& j) {
  try {
    if (!j.is_object() || j.value("format", "") != "apxserve-profile-1") {
      return Status::InvalidArgument("not an apxserve profile (format apxserve-profile-1)");
    }
    Profile p;
    p.pipeline = j.at("pipeline").get<std::string>();
    p.shards = j.at("shards").get<int>();
    p.hosts = j.value("hosts", 1);
    p.cores = j.at("cores").get<int>();
    p.run_id = j.at("run_id").get<std::string>();
    p.reads_unlogged = j.at("reads_unlogged").get<int>();
    for (const auto& r : j.at("requests")) {
      p.requests.push_back({.total_ms = r.at("total_ms").get<double>(),
                            .statements_ms = r.at("statements_ms").get<double>(),
                            .rounds = r.at("rounds").get<int>(),
                            .cut_over = r.at("cut_over").get<bool>(),
                            .degraded = r.at("degraded").get<bool>()});
    }
    for (const auto& s : j.at("statements")) {
      ProfiledStatement st;
      st.request = s.at("request").get<int>();
      st.exact = s.at("exact").get<bool>();
      st.branches = s.at("branches").get<int>();
      st.wall_ms = s.at("wall_ms").get<double>();
      st.coordinator_ms = s.at("coordinator_ms").get<double>();
      st.rows = s.at("rows").get<int64_t>();
      st.s_begin = s.at("s_begin").get<std::vector<int>>();
      st.s_end = s.at("s_end").get<std::vector<int>>();
      st.branch_rows = s.at("branch_rows").get<std::vector<int64_t>>();
      for (const auto& r : s.at("reads")) st.reads.push_back(ReadFromJson(r));
      for (const auto& r : s.at("sub")) st.sub.push_back(ReadFromJson(r));
      if (st.request < 0 || st.request >= static_cast<int>(p.requests.size())) {
        return Status::InvalidArgument("profile: a statement names request " + std::to_string(st.request));
      }
      p.statements.push_back(std::move(st));
    }
    if (p.shards < 1 || p.cores < 1) return Status::InvalidArgument("profile: shards and cores must be >= 1");
    return p;
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("profile: ") + e.what());
  }
}

Profile Profile::SampledOnly() const {
  Profile out = *this;
  out.statements.clear();
  for (const ProfiledStatement& s : statements) {
    if (!s.exact) {
      out.statements.push_back(s);
      continue;
    }
    ProfiledRequest& r = out.requests[static_cast<size_t>(s.request)];
    r.total_ms = std::max(0.0, r.total_ms - s.wall_ms);
    r.statements_ms = std::max(0.0, r.statements_ms - s.wall_ms);
  }
  return out;
}

Status Profile::Append(const Profile& other) {
  if (other.pipeline != pipeline || other.shards != shards) {
    return Status::InvalidArgument("profile: cannot add a profile of '" + other.pipeline + "' at " +
                                   std::to_string(other.shards) + " shards to one of '" + pipeline + "' at " +
                                   std::to_string(shards));
  }
  const int offset = static_cast<int>(requests.size());
  requests.insert(requests.end(), other.requests.begin(), other.requests.end());
  for (ProfiledStatement s : other.statements) {
    s.request += offset;
    statements.push_back(std::move(s));
  }
  reads_unlogged += other.reads_unlogged;
  return Status::Ok();
}

Result<Profile> RunProfile(const pipeline::Pipeline& pipeline, const ProfileOptions& options) {
  const pipeline::PipelineSpec& spec = pipeline.spec();
  const auto* ch = dynamic_cast<const backend::ClickHouseBackend*>(&pipeline.backend());
  if (ch == nullptr || spec.backend.cluster.empty()) {
    return Status::InvalidArgument("profile: pipeline '" + spec.name +
                                   "' does not read ClickHouse shard by shard (backend: {type: clickhouse, cluster: ..., "
                                   "shards: [...]} or APX_CLICKHOUSE_URLS)");
  }
  if (options.n < 1) return Status::InvalidArgument("profile: --n must be >= 1");
  APX_ASSIGN_OR_RETURN(auto coordinator, pipeline::ConnectClickHouse(spec.backend));
  APX_ASSIGN_OR_RETURN(auto shards, pipeline::ConnectShards(spec.backend, /*check=*/true));

  pipeline::RequestSetSpec set = spec.test;
  set.n = options.n;
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  APX_RETURN_IF_ERROR(MakeRequests(pipeline, set, &requests, &labels));

  std::random_device rd;
  Profile out;
  out.pipeline = spec.name;
  out.shards = ch->num_shards();
  out.cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  out.run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000000) + "x" +
               std::to_string(rd() % 100000);
  {
    std::set<std::string> hosts;
    for (const auto& s : shards) {
      const std::string& url = s->config().url;
      const size_t colon = url.rfind(':');
      hosts.insert(colon == std::string::npos || colon < 7 ? url : url.substr(0, colon));
    }
    out.hosts = std::max<int>(1, static_cast<int>(hosts.size()));
  }
  Collector collector(out.run_id);
  struct Detach {
    const backend::ClickHouseBackend* b;
    ~Detach() { b->set_tracer(nullptr); }
  } detach{ch};
  ch->set_tracer(&collector);

  pipeline::Session session(pipeline);
  pipeline::PredictOptions opts{.exact = false, .delta = options.delta, .tau = options.tau};
  pipeline::Prediction pred;
  // Warm-up (not profiled): the cost model learns the servers' costs, connections open.
  for (size_t i = 0; i < std::min<size_t>(requests.size(), 20); ++i) {
    APX_RETURN_IF_ERROR(session.Predict(requests[i], opts, &pred));
  }
  {
    ProgressBar bar("profile " + spec.name, static_cast<int64_t>(requests.size()), options.progress);
    for (size_t i = 0; i < requests.size(); ++i) {
      collector.set_request(static_cast<int>(i));
      APX_RETURN_IF_ERROR(session.Predict(requests[i], opts, &pred));
      out.requests.push_back({.total_ms = pred.total_ms,
                              .rounds = pred.rounds,
                              .cut_over = pred.cut_over,
                              .degraded = pred.shards_answered < pred.shards});
      bar.Update(static_cast<int64_t>(i + 1));
    }
    collector.set_request(-1);
  }
  ch->set_tracer(nullptr);

  // Every server's own accounting of the run, numbered as the backend numbers them: the
  // shards' primaries, then each shard's other replicas in turn.
  APX_ASSIGN_OR_RETURN(auto replicas, pipeline::ConnectReplicas(spec.backend, /*check=*/true));
  std::vector<std::shared_ptr<const ClickHouseClient>> servers(shards.begin(), shards.end());
  std::vector<int> shard_of;
  for (size_t j = 0; j < shards.size(); ++j) shard_of.push_back(static_cast<int>(j));
  for (size_t j = 0; j < replicas.size(); ++j) {
    for (const auto& r : replicas[j]) {
      servers.push_back(r);
      shard_of.push_back(static_cast<int>(j));
    }
  }
  std::vector<std::unordered_map<std::string, LogEntry>> by_id(servers.size());
  std::unordered_map<std::string, LogEntry> coordinator_log;
  std::unordered_multimap<std::string, LogEntry> sub, ignored;
  bool coordinator_seen = false;
  for (size_t s = 0; s < servers.size(); ++s) {
    APX_RETURN_IF_ERROR(LoadQueryLog(*servers[s], shard_of[s], out.run_id, &by_id[s], &sub));
    if (servers[s]->config().url == coordinator->config().url) {
      coordinator_log = by_id[s];
      coordinator_seen = true;
    }
  }
  if (!coordinator_seen) APX_RETURN_IF_ERROR(LoadQueryLog(*coordinator, -1, out.run_id, &coordinator_log, &ignored));

  for (auto& [request, trace] : collector.Take()) {
    ProfiledStatement st;
    st.request = request;
    st.exact = trace.exact;
    st.branches = trace.branches;
    st.wall_ms = static_cast<double>(trace.wall_ns) / 1e6;
    st.coordinator_ms = static_cast<double>(trace.coordinator_ns) / 1e6;
    st.rows = trace.rows;
    st.s_begin = trace.s_begin;
    st.s_end = trace.s_end;
    st.branch_rows = trace.branch_rows;
    for (const backend::ShardReadTrace& t : trace.reads) {
      ProfiledRead r;
      r.shard = t.shard;
      r.wall_ms = static_cast<double>(t.wall_ns) / 1e6;
      r.bytes_sent = t.bytes_sent;
      r.bytes_received = t.bytes_received;
      r.rows = t.rows;
      r.used = t.used;
      static const std::unordered_map<std::string, LogEntry> kNone;
      const auto& log = trace.exact ? coordinator_log
                        : static_cast<size_t>(t.server) < by_id.size() ? by_id[static_cast<size_t>(t.server)]
                                                                       : kNone;
      if (auto it = log.find(t.query_id); it != log.end()) {
        Apply(it->second, &r);
        r.shard = t.shard;
      }
      if (!r.logged) ++out.reads_unlogged;
      st.reads.push_back(r);
      if (trace.exact) {
        auto [lo, hi] = sub.equal_range(t.query_id);
        for (auto it = lo; it != hi; ++it) {
          ProfiledRead s;
          Apply(it->second, &s);
          // What the shard sent the coordinator (its part's mergeable state: for an exact
          // quantile, every value).
          s.bytes_received = it->second.result_bytes;
          st.sub.push_back(s);
        }
      }
    }
    out.requests[static_cast<size_t>(request)].statements_ms += st.wall_ms;
    out.statements.push_back(std::move(st));
  }
  return out;
}

}  // namespace apx::eval

namespace apx::eval {
namespace {

// query_duration_ms is whole milliseconds, cut down: half a millisecond on average.
constexpr double kDurationRounding = 0.5;
// Bytes on the wire per exchange beyond the statement and its answer, which the tracer
// counts: HTTP headers both ways (~550 bytes with ClickHouse's X-ClickHouse-* headers and a
// query_id) and TCP/IP headers of the segments and their ACKs (~52 bytes each).
constexpr double kExchangeOverheadBytes = 1000;

double ServerMs(const ProfiledRead& r) { return std::min(r.wall_ms, r.server_ms + kDurationRounding); }

// Least squares for y ~ x (columns), each coefficient kept >= 0 (a negative cost is noise:
// its column is dropped and the rest refitted). Empty x: zeros.
std::vector<double> NonNegativeFit(const std::vector<std::vector<double>>& x, const std::vector<double>& y, size_t cols) {
  std::vector<bool> active(cols, true);
  std::vector<double> coef(cols, 0.0);
  for (size_t pass = 0; pass < cols; ++pass) {
    std::vector<size_t> idx;
    for (size_t c = 0; c < cols; ++c) {
      if (active[c]) idx.push_back(c);
    }
    const size_t n = idx.size();
    if (n == 0 || x.empty()) return std::vector<double>(cols, 0.0);
    std::vector<std::vector<double>> a(n, std::vector<double>(n + 1, 0.0));
    for (size_t r = 0; r < x.size(); ++r) {
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j) a[i][j] += x[r][idx[i]] * x[r][idx[j]];
        a[i][n] += x[r][idx[i]] * y[r];
      }
    }
    for (size_t i = 0; i < n; ++i) a[i][i] += 1e-9 * (1.0 + a[i][i]);  // a column of zeros
    for (size_t c = 0; c < n; ++c) {
      size_t piv = c;
      for (size_t r = c + 1; r < n; ++r) {
        if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
      }
      std::swap(a[c], a[piv]);
      for (size_t r = 0; r < n; ++r) {
        if (r == c || a[c][c] == 0) continue;
        const double f = a[r][c] / a[c][c];
        for (size_t k = c; k <= n; ++k) a[r][k] -= f * a[c][k];
      }
    }
    coef.assign(cols, 0.0);
    bool negative = false;
    for (size_t i = 0; i < n; ++i) {
      coef[idx[i]] = a[i][i] != 0 ? a[i][n] / a[i][i] : 0.0;
      if (coef[idx[i]] < 0) {
        active[idx[i]] = false;
        negative = true;
      }
    }
    if (!negative) return coef;
  }
  for (double& c : coef) c = std::max(0.0, c);
  return coef;
}

// Rows each of k shards holds of a sampled statement: a branch's rows spread evenly over
// its strata, stratum s on shard s % k.
std::vector<double> RowsPerShard(const ProfiledStatement& s, int k) {
  std::vector<double> out(static_cast<size_t>(k), 0.0);
  for (size_t i = 0; i < s.s_begin.size() && i < s.branch_rows.size() && i < s.s_end.size(); ++i) {
    const int n = s.s_end[i] - s.s_begin[i];
    if (n <= 0) continue;
    for (int st = s.s_begin[i]; st < s.s_end[i]; ++st) {
      out[static_cast<size_t>(st % k)] += static_cast<double>(s.branch_rows[i]) / n;
    }
  }
  return out;
}

// Branches of a sampled statement with strata on shard j of k: the ones its read there
// carries (a shard holding none of the statement's strata is not read at all).
int BranchesOn(const ProfiledStatement& s, int j, int k) {
  int out = 0;
  for (size_t i = 0; i < s.s_begin.size() && i < s.s_end.size(); ++i) {
    bool on = false;
    for (int st = s.s_begin[i]; st < s.s_end[i] && !on; ++st) on = st % k == j;
    out += on ? 1 : 0;
  }
  return out;
}

double ExactCpu(const ProfiledStatement& s) {
  double cpu = 0;
  for (const ProfiledRead& r : s.reads) cpu += r.cpu_ms;
  for (const ProfiledRead& r : s.sub) cpu += r.cpu_ms;
  return cpu;
}

}  // namespace

nlohmann::json ProfileSplit::ToJson() const {
  return {{"requests", requests},         {"latency_ms", latency_ms},   {"p50_ms", p50_ms},
          {"p99_ms", p99_ms},             {"statements", statements},   {"rounds", rounds},
          {"exact", exact},               {"coordinator_ms", coordinator_ms}, {"shard_ms", shard_ms},
          {"network_ms", network_ms},     {"shard_cpu_ms", shard_cpu_ms}, {"shard_cpu_wait_ms", shard_cpu_wait_ms},
          {"bytes_sent", bytes_sent},     {"bytes_received", bytes_received}};
}

ProfileSplit Split(const Profile& profile) {
  ProfileSplit out;
  const size_t n = profile.requests.size();
  out.requests = static_cast<int>(n);
  if (n == 0) return out;
  std::vector<double> totals;
  for (const ProfiledRequest& r : profile.requests) {
    out.latency_ms += r.total_ms;
    out.coordinator_ms += std::max(0.0, r.total_ms - r.statements_ms);
    totals.push_back(r.total_ms);
  }
  for (const ProfiledStatement& s : profile.statements) {
    (s.exact ? out.exact : out.rounds) += 1;
    out.coordinator_ms += s.coordinator_ms;
    const double waited = std::max(0.0, s.wall_ms - s.coordinator_ms);
    // The statement waited for its slowest read that was merged (or for the one it left
    // out, if that one set the round's end): its server time, then the rest.
    const ProfiledRead* slowest = nullptr;
    for (const ProfiledRead& r : s.reads) {
      if (slowest == nullptr || r.wall_ms > slowest->wall_ms) slowest = &r;
      out.shard_cpu_ms += r.cpu_ms;
      out.shard_cpu_wait_ms += r.cpu_wait_ms;
      out.bytes_sent += static_cast<double>(r.bytes_sent);
      out.bytes_received += static_cast<double>(r.bytes_received);
    }
    for (const ProfiledRead& r : s.sub) {
      out.shard_cpu_ms += r.cpu_ms;
      out.shard_cpu_wait_ms += r.cpu_wait_ms;
      out.bytes_received += static_cast<double>(r.bytes_received);
    }
    const double server = slowest != nullptr && slowest->logged ? std::min(waited, ServerMs(*slowest)) : 0.0;
    out.shard_ms += server;
    out.network_ms += waited - server;
  }
  const double dn = static_cast<double>(n);
  for (double* v : {&out.latency_ms, &out.coordinator_ms, &out.shard_ms, &out.network_ms, &out.shard_cpu_ms,
                    &out.shard_cpu_wait_ms, &out.bytes_sent, &out.bytes_received, &out.rounds, &out.exact}) {
    *v /= dn;
  }
  out.statements = out.rounds + out.exact;
  out.p50_ms = Percentile(totals, 50);
  out.p99_ms = Percentile(totals, 99);
  return out;
}

nlohmann::json WhatIfModel::ToJson() const {
  return {{"profiled_shards", profiled_shards},
          {"cores", cores},
          {"read_fixed_ms", read_fixed_ms},
          {"read_branch_ms", read_branch_ms},
          {"read_row_ns", read_row_ns},
          {"read_parallelism", read_parallelism},
          {"transport_ms", transport_ms},
          {"exact_part_ms", exact_part_ms},
          {"exact_part_measured", exact_part_measured},
          {"exact_parallelism", exact_parallelism},
          {"reads_fitted", reads_fitted}};
}

Result<WhatIfModel> FitModel(const Profile& profile) {
  WhatIfModel m;
  m.profiled_shards = profile.shards;
  m.cores = profile.cores;
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  double cpu = 0, busy = 0, transport = 0;
  for (const ProfiledStatement& s : profile.statements) {
    if (s.exact) continue;
    for (const ProfiledRead& r : s.reads) {
      if (!r.used || !r.logged) continue;
      x.push_back({1.0, static_cast<double>(BranchesOn(s, r.shard, std::max(1, profile.shards))), static_cast<double>(r.rows)});
      y.push_back(r.cpu_ms);
      const double server = ServerMs(r);
      // Without waiting for a core: the server's time less its threads' wait (a thread
      // waiting is one of several, so at most the server time's share).
      const double running = std::max(0.1 * server, server - r.cpu_wait_ms);
      cpu += r.cpu_ms;
      busy += running;
      // The protocol's time stretches as the server's did.
      transport += std::max(0.0, r.wall_ms - server) * (server > 0 ? running / server : 1.0);
    }
  }
  m.reads_fitted = static_cast<int>(y.size());
  if (m.reads_fitted < 10) {
    return Status::FailedPrecondition("profile: " + std::to_string(m.reads_fitted) +
                                      " sampled reads with a query_log entry; the model needs at least 10 (profile more "
                                      "requests, or with --no-cut-over)");
  }
  const std::vector<double> coef = NonNegativeFit(x, y, 3);
  m.read_fixed_ms = coef[0];
  m.read_branch_ms = coef[1];
  m.read_row_ns = coef[2] * 1e6;
  m.read_parallelism = std::clamp(busy > 0 ? cpu / busy : 1.0, 1.0, static_cast<double>(m.cores));
  m.transport_ms = transport / static_cast<double>(m.reads_fitted);

  // Exact statements: the fixed CPU of a branch's part on a shard, from the shards'
  // sub-queries (CPU ~ fixed + per row scanned), counted twice: on the shard and to receive it.
  std::vector<std::vector<double>> sx;
  std::vector<double> sy;
  double exact_cpu = 0, exact_wall = 0;
  for (const ProfiledStatement& s : profile.statements) {
    if (!s.exact) continue;
    exact_cpu += ExactCpu(s);
    exact_wall += std::max(1e-3, s.wall_ms - s.coordinator_ms);
    for (const ProfiledRead& r : s.sub) {
      sx.push_back({1.0, static_cast<double>(r.read_rows)});
      sy.push_back(r.cpu_ms);
    }
  }
  if (sy.size() >= 10) {
    m.exact_part_ms = 2 * NonNegativeFit(sx, sy, 2)[0];
    m.exact_part_measured = true;
  } else {
    m.exact_part_ms = 2 * (m.read_fixed_ms + m.read_branch_ms);
  }
  m.exact_parallelism = exact_wall > 0 ? std::clamp(exact_cpu / exact_wall, 0.05, static_cast<double>(m.cores)) : 1.0;
  return m;
}

nlohmann::json WhatIfPrediction::ToJson() const {
  return {{"shards", deployment.shards},
          {"hosts", deployment.hosts},
          {"host_cores", deployment.host_cores},
          {"bandwidth_mbps", deployment.bandwidth_mbps},
          {"latency_ms", latency_ms},
          {"throughput_rps", throughput_rps},
          {"bottleneck", bottleneck},
          {"shard_cpu_ms", shard_cpu_ms},
          {"bytes", bytes}};
}

WhatIfPrediction Predict(const Profile& profile, const WhatIfModel& m, const Deployment& d) {
  WhatIfPrediction out;
  out.deployment = d;
  const int k = std::max(1, d.shards);
  const int hosts = d.hosts <= 0 ? 1 : std::min(d.hosts, k);
  const double cores = d.host_cores > 0 ? d.host_cores : m.cores;
  const double k0 = std::max(1, profile.shards);
  // Bytes per millisecond of one link; 0: as profiled (inside the transport time).
  const double link = d.bandwidth_mbps > 0 ? d.bandwidth_mbps * 1e6 / 8 / 1000 : 0;
  const size_t n = profile.requests.size();
  if (n == 0) return out;
  std::vector<double> latency(n, 0.0);
  double coordinator_cpu = 0, shard_cpu = 0, bytes = 0;
  std::vector<double> host_cpu(static_cast<size_t>(hosts), 0.0);
  for (size_t i = 0; i < n; ++i) {
    const ProfiledRequest& r = profile.requests[i];
    latency[i] = std::max(0.0, r.total_ms - r.statements_ms);
    coordinator_cpu += latency[i];
  }
  for (const ProfiledStatement& s : profile.statements) {
    double& lat = latency[static_cast<size_t>(s.request)];
    lat += s.coordinator_ms;
    coordinator_cpu += s.coordinator_ms;
    if (s.exact) {
      const double cpu0 = ExactCpu(s);
      const double cpu = cpu0 + m.exact_part_ms * s.branches * (k - k0);
      // Its wall time: the part the coordinator waited for the other shards' parts (their
      // mergeable states; for an exact quantile, every value) grows with the share of rows on
      // other shards, (k - 1) / k (not measurable at one shard: none); the rest is CPU-bound
      // at the parallelism profiled, never faster than every core of its hosts.
      const double wall0 = std::max(0.0, s.wall_ms - s.coordinator_ms);
      double net0 = 0;
      for (const ProfiledRead& rd : s.reads) net0 += rd.net_wait_ms;
      net0 = std::min(net0, wall0);
      const double net = k0 > 1 ? net0 * ((k - 1.0) / k) / ((k0 - 1) / k0) : 0.0;
      const double scaled = (cpu0 > 0 ? (wall0 - net0) * cpu / cpu0 : wall0 - net0) + net;
      // The shards' parts come to the coordinator over its link: at k shards, (k - 1) / k of
      // the state bytes its sub-queries sent at k0 shards, scaled from (k0 - 1) / k0 (at one
      // shard there were none to measure).
      double b = 0, parts = 0;
      for (const ProfiledRead& rd : s.reads) b += static_cast<double>(rd.bytes_sent + rd.bytes_received) + kExchangeOverheadBytes;
      for (const ProfiledRead& rd : s.sub) parts += static_cast<double>(rd.bytes_received) + kExchangeOverheadBytes;
      if (k0 > 1) parts *= (static_cast<double>(k - 1) / k) / ((k0 - 1) / k0);
      const double wire = link > 0 ? (b + parts) / link : 0;
      lat += std::max(scaled, cpu / (cores * hosts)) + wire;
      shard_cpu += cpu;
      for (int h = 0; h < hosts; ++h) host_cpu[static_cast<size_t>(h)] += cpu / hosts;
      bytes += b + parts;
      continue;
    }
    // A sampled round: one read per shard holding some of its strata, each on its shard's
    // share of them.
    double answer_bytes = 0, sent = 0;
    int counted = 0;
    for (const ProfiledRead& rd : s.reads) {
      answer_bytes += static_cast<double>(rd.bytes_received);
      sent = static_cast<double>(rd.bytes_sent);
      ++counted;
    }
    answer_bytes = counted > 0 ? answer_bytes / counted : 0;  // an answer's size barely depends on k
    sent += kExchangeOverheadBytes;
    const std::vector<double> rows = RowsPerShard(s, k);
    std::vector<double> demand(static_cast<size_t>(hosts), 0.0);
    double critical = 0;
    int reads = 0;
    for (int j = 0; j < k; ++j) {
      const int branches = BranchesOn(s, j, k);
      if (branches == 0) continue;
      ++reads;
      const double cpu = m.read_fixed_ms + m.read_branch_ms * branches + m.read_row_ns * rows[static_cast<size_t>(j)] / 1e6;
      const double wire = link > 0 ? (sent + answer_bytes) / link : 0;
      critical = std::max(critical, cpu / m.read_parallelism + m.transport_ms + wire);
      // On loopback the protocol is CPU work too, on the same cores.
      demand[static_cast<size_t>(j % hosts)] += cpu + m.transport_ms;
      shard_cpu += cpu;
      host_cpu[static_cast<size_t>(j % hosts)] += cpu + m.transport_ms;
      bytes += sent + answer_bytes;
    }
    // The slowest read sets the round's end, unless the reads sharing a host's cores take
    // longer together; the last answer still has its protocol time after the work.
    double phase = critical;
    for (double dem : demand) phase = std::max(phase, dem / cores + m.transport_ms);
    // Every answer comes in over the coordinator's one link.
    if (link > 0) phase = std::max(phase, reads * (sent + answer_bytes) / link + m.transport_ms);
    lat += phase;
  }
  double sum = 0;
  for (double v : latency) sum += v;
  const double dn = static_cast<double>(n);
  out.latency_ms = sum / dn;
  out.shard_cpu_ms = shard_cpu / dn;
  out.bytes = bytes / dn;
  // Throughput with every resource busy: the most loaded one sets it.
  double worst_host = 0;
  for (double c : host_cpu) worst_host = std::max(worst_host, c / dn);
  double rps_shards = 0, rps_coord = 0;
  if (d.hosts <= 0) {
    // One host for everything (as profiled locally): the coordinator shares the cores.
    rps_shards = 1000.0 * cores / std::max(1e-9, worst_host + coordinator_cpu / dn);
    rps_coord = rps_shards;
  } else {
    rps_shards = 1000.0 * cores / std::max(1e-9, worst_host);
    rps_coord = 1000.0 * m.cores / std::max(1e-9, coordinator_cpu / dn);
  }
  const double rps_net = link > 0 && out.bytes > 0 ? 1000.0 * link / out.bytes : std::numeric_limits<double>::infinity();
  out.throughput_rps = std::min({rps_shards, rps_coord, rps_net});
  out.bottleneck = out.throughput_rps == rps_net ? "network" : (out.throughput_rps == rps_shards ? "shard CPU" : "coordinator CPU");
  return out;
}

}  // namespace apx::eval
