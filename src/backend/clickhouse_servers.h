// backend/clickhouse_servers.h: private ClickHouse servers for tests (scripts/clickhouse.sh:
// loopback, a temporary folder, stopped by PID). Test-only; header-only.
#ifndef APX_BACKEND_CLICKHOUSE_SERVERS_H_
#define APX_BACKEND_CLICKHOUSE_SERVERS_H_

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace apx::testutil {

// A shell command's standard output (its standard error goes to the test's).
inline std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 512> buf{};
  while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  pclose(p);
  return out;
}

// Servers for one test suite, stopped by PID at its end. Skips only where clickhouse-server
// is not installed; installed but not starting fails (dir stays empty).
struct Servers {
  bool installed = false;
  std::string dir;  // empty: not running
  int port = 0;     // server i: HTTP port + i, native port + 1000 + i

  // `port_base` + a per-process offset, so parallel test binaries do not collide.
  // `extra`: more scripts/clickhouse.sh start options (--cluster-port I=Q).
  void Start(int shards, int port_base, const std::string& extra = "") {
    installed = std::filesystem::exists("/usr/sbin/clickhouse-server") ||
                !Shell("command -v clickhouse-server").empty();
    if (!installed) return;
    port = PortFor(port_base);
    std::string out = Shell("bash scripts/clickhouse.sh start --shards " + std::to_string(shards) +
                            " --port " + std::to_string(port) + " " + extra);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    dir = out.substr(out.rfind('\n') + 1);
    if (!std::filesystem::exists(dir + "/pids")) dir.clear();
  }
  // A server i of a suite uses HTTP port + i, native + 1000 + i, interserver + 2000 + i
  // (fault_test's proxies + 4001, + 4003): within [base, base + 5000) for up to 8 servers, so
  // suites whose bases are 5,000 apart never share a port, whichever binaries run at once
  // (10000, 15000, 20000: below the ephemeral range). The per-process offset keeps two runs
  // of one binary apart.
  static int PortFor(int port_base) { return port_base + static_cast<int>(getpid() % 100) * 8; }
  // Stops server `shard` and starts it again on the same data; true once it answers.
  bool Restart(int shard) const {
    return Shell("bash scripts/clickhouse.sh restart --dir " + dir + " --shard " + std::to_string(shard) +
                 " >/dev/null 2>&1 && echo ok") == "ok\n";
  }
  void Stop() {
    if (!dir.empty()) Shell("bash scripts/clickhouse.sh stop --dir " + dir + " 2>&1");
    dir.clear();
  }
  std::string Url(int shard) const { return "http://127.0.0.1:" + std::to_string(port + shard); }
};

}  // namespace apx::testutil

#endif  // APX_BACKEND_CLICKHOUSE_SERVERS_H_
