// `apxserve fault-proxy` (fault/fault_proxy.h): a seeded fault injector in front of one server.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "fault/fault_proxy.h"

namespace apx::cli {
namespace {

// fault::Validate and fault::ParseMode start their messages with the spec field's name; the
// user typed the flag ("--slow-fraction is 1.5; must be in [0, 1]").
Status NameTheFlag(const Status& s) {
  static const std::pair<std::string_view, std::string_view> kFlags[] = {
      {"slow_fraction", "--slow-fraction"},
      {"slow_factor", "--slow-factor"},
      {"delay_ms", "--delay-ms"},
      {"cut_fraction", "--cut-fraction"},
      {"mode", "--mode"}};
  for (const auto& [field, flag] : kFlags) {
    if (s.message().compare(0, field.size(), field) == 0) {
      return Status(s.code(), std::string(flag) + s.message().substr(field.size()));
    }
  }
  return s;
}

// "--listen '...' is not host:port (...)".
Result<fault::Endpoint> EndpointFlag(const char* flag, const std::string& text,
                                     bool allow_any_port) {
  Result<fault::Endpoint> e = fault::ParseEndpoint(text, allow_any_port);
  if (!e.ok()) return Status(e.status().code(), std::string(flag) + " " + e.status().message());
  return e;
}

std::string HostPort(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

Status RunFaultProxy(const FaultProxyArgs& args) {
  // Every flag is checked before anything listens.
  APX_ASSIGN_OR_RETURN(const fault::Endpoint listen_at,
                       EndpointFlag("--listen", args.listen, true));
  APX_ASSIGN_OR_RETURN(const fault::Endpoint upstream,
                       EndpointFlag("--upstream", args.upstream, false));
  Result<fault::FaultSpec::Mode> mode = fault::ParseMode(args.mode);
  if (!mode.ok()) return NameTheFlag(mode.status());
  const fault::FaultSpec spec{.mode = *mode,
                              .slow_fraction = args.slow_fraction,
                              .slow_factor = args.slow_factor,
                              .delay_ms = args.delay_ms,
                              .cut_fraction = args.cut_fraction,
                              .seed = args.seed};
  if (Status s = fault::Validate(spec); !s.ok()) return NameTheFlag(s);

  // SIGINT/SIGTERM are taken by sigwait below; block them before any thread starts, so that
  // every proxy thread inherits the mask and none is interrupted. A shell starts background
  // jobs with SIGINT ignored, and Linux drops an ignored signal even while it is blocked: the
  // default action is restored (it never runs, the signals stay blocked) so `kill -INT` works.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  APX_ASSIGN_OR_RETURN(
      std::unique_ptr<fault::FaultProxy> proxy,
      fault::FaultProxy::Start(listen_at.host, listen_at.port, upstream.host, upstream.port, spec));
  std::fprintf(
      stderr,
      "fault-proxy: %s -> %s (mode %s, slow %g x%g, delay %lld ms, cut %g, seed %llu) pid %d\n",
      HostPort(listen_at.host, proxy->port()).c_str(),
      HostPort(upstream.host, upstream.port).c_str(),
      std::string(fault::ModeName(spec.mode)).c_str(), spec.slow_fraction, spec.slow_factor,
      static_cast<long long>(spec.delay_ms), spec.cut_fraction,
      static_cast<unsigned long long>(spec.seed), static_cast<int>(::getpid()));
  std::fflush(stderr);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  proxy->Stop();
  const fault::FaultProxy::Counters c = proxy->counters();
  const nlohmann::ordered_json out = {{"connections", c.connections},
                                      {"exchanges", c.exchanges},
                                      {"slowed", c.slowed},
                                      {"delayed", c.delayed},
                                      {"cut", c.cut},
                                      {"refused", c.refused},
                                      {"hung", c.hung},
                                      {"signal", sig}};
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
  return Status::Ok();
}

}  // namespace apx::cli
