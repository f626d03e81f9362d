// The what-if model on profiles built by hand (no servers): the fit recovers known costs, the
// prediction follows the model's two bounds, and bad profiles are refused.
#include "eval/profile.h"

#include <gtest/gtest.h>

#include <cmath>

namespace apx::eval {
namespace {

// A profile at `k` shards on one host with `cores` cores whose reads cost exactly
// fixed + branch * b + row_ns * rows of CPU, run on one thread, plus `transport` ms.
Profile Synthetic(int k, int cores, double fixed, double branch, double row_ns, double transport) {
  Profile p;
  p.pipeline = "synthetic";
  p.shards = k;
  p.cores = cores;
  p.run_id = "t";
  for (int i = 0; i < 60; ++i) {
    ProfiledStatement s;
    s.request = i;
    s.branches = 1 + i % 4;
    s.coordinator_ms = 0.1;
    double wall = 0;
    for (int b = 0; b < s.branches; ++b) {
      s.s_begin.push_back(0);
      s.s_end.push_back(4 + 2 * (i % 5));
      s.branch_rows.push_back(1000 * (1 + (i * 7 + b * 3) % 11));
      s.rows += s.branch_rows.back();
    }
    for (int j = 0; j < k; ++j) {
      ProfiledRead r;
      r.shard = j;
      r.used = r.logged = true;
      double rows = 0;
      for (size_t b = 0; b < s.branch_rows.size(); ++b) {
        int mine = 0;
        for (int st = s.s_begin[b]; st < s.s_end[b]; ++st) mine += st % k == j;
        rows += static_cast<double>(s.branch_rows[b]) * mine / (s.s_end[b] - s.s_begin[b]);
      }
      r.rows = static_cast<int64_t>(rows);
      r.cpu_ms = fixed + branch * s.branches + row_ns * rows / 1e6;
      r.server_ms = std::floor(r.cpu_ms);  // whole milliseconds, as query_log has them
      r.wall_ms = r.cpu_ms + transport;
      r.bytes_sent = 500;
      r.bytes_received = 200;
      wall = std::max(wall, r.wall_ms);
      s.reads.push_back(r);
    }
    s.wall_ms = wall + s.coordinator_ms;
    p.requests.push_back({.total_ms = s.wall_ms + 1.0, .statements_ms = s.wall_ms, .rounds = 1});
    p.statements.push_back(s);
  }
  return p;
}

TEST(ProfileModel, FitRecoversTheReadsCosts) {
  const Profile p = Synthetic(1, 2, 0.3, 1.2, 40, 0.8);
  Result<WhatIfModel> m = FitModel(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_NEAR(m->read_fixed_ms, 0.3, 1e-6);
  EXPECT_NEAR(m->read_branch_ms, 1.2, 1e-6);
  EXPECT_NEAR(m->read_row_ns, 40, 1e-3);
  EXPECT_EQ(m->reads_fitted, 60);
  // query_log's whole milliseconds are half a millisecond short on average: the protocol's
  // time comes out near the 0.8 ms put in, not 0.8 + 0.5.
  EXPECT_NEAR(m->transport_ms, 0.8, 0.35);
}

TEST(ProfileModel, PredictsItsOwnProfileAndTheSharedCoresBound) {
  const Profile p = Synthetic(1, 2, 0.3, 1.2, 40, 0.8);
  Result<WhatIfModel> m = FitModel(p);
  ASSERT_TRUE(m.ok());
  const ProfileSplit split = Split(p);
  const WhatIfPrediction at1 = Predict(p, *m, {.shards = 1});
  EXPECT_NEAR(at1.latency_ms, split.latency_ms, 0.05 * split.latency_ms);
  // At 4 shards on one 2-core host, each round's reads (each mostly fixed cost) queue for the
  // cores: slower than at 1 shard. With a host per shard they run side by side: faster than
  // on one host, and the CPU per request is the same either way.
  const WhatIfPrediction one_host = Predict(p, *m, {.shards = 4});
  const WhatIfPrediction spread = Predict(p, *m, {.shards = 4, .hosts = 4});
  EXPECT_GT(one_host.latency_ms, at1.latency_ms);
  EXPECT_LT(spread.latency_ms, one_host.latency_ms);
  EXPECT_NEAR(spread.shard_cpu_ms, one_host.shard_cpu_ms, 1e-9);
  // Shard CPU per request: 4 fixed parts instead of 1, the same rows.
  double fixed_parts = 0;
  for (const ProfiledStatement& s : p.statements) fixed_parts += 3 * (0.3 + 1.2 * s.branches);
  EXPECT_NEAR(one_host.shard_cpu_ms - at1.shard_cpu_ms, fixed_parts / 60, 1e-6);
  // A slow link sets the round's time: 4 reads of 700 bytes each way through the
  // coordinator's link at 1 Mbit/s (125 bytes per ms), after the request's own 1 ms.
  const WhatIfPrediction slow = Predict(p, *m, {.shards = 4, .hosts = 4, .bandwidth_mbps = 1});
  EXPECT_GT(slow.latency_ms, spread.latency_ms);
  EXPECT_GE(slow.latency_ms, 1.0 + 4 * 700 / 125.0);
  EXPECT_EQ(slow.bottleneck, "network");  // 2.8 KB per request at 125 bytes per ms
}

TEST(ProfileModel, RefusesTooFewReadsAndBadProfiles) {
  Profile p = Synthetic(2, 2, 0.3, 1.2, 40, 0.8);
  p.statements.resize(4);
  EXPECT_EQ(FitModel(p).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Profile::FromJson(nlohmann::json::parse("{\"format\": \"other\"}")).status().code(),
            StatusCode::kInvalidArgument);
  nlohmann::json j = Synthetic(1, 2, 0.3, 1.2, 40, 0.8).ToJson();
  ASSERT_TRUE(Profile::FromJson(j).ok());
  EXPECT_EQ(Profile::FromJson(j)->statements.size(), 60u);
  j["statements"][0]["request"] = 999;
  EXPECT_EQ(Profile::FromJson(j).status().code(), StatusCode::kInvalidArgument);
  j = Synthetic(1, 2, 0.3, 1.2, 40, 0.8).ToJson();
  j["statements"][3]["reads"][0].erase("cpu_ms");
  EXPECT_EQ(Profile::FromJson(j).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apx::eval
