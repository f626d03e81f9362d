// The fault proxy in front of an in-process HTTP server (cpp-httplib): bytes come through
// unchanged, each fault does what it says, the draws are seeded, and Stop() always returns.
// Timing checks are lower bounds only (plus very generous upper bounds).
#include "fault/fault_proxy.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace apx::fault {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kBigBytes = 1 << 20;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// kBigBytes of seeded bytes (all 256 values, no pattern httplib could shorten).
std::string BigBody(uint32_t seed) {
  std::string out(kBigBytes, '\0');
  uint32_t x = seed;
  for (char& c : out) {
    x = x * 1664525u + 1013904223u;  // Numerical Recipes LCG
    c = static_cast<char>(x >> 24);
  }
  return out;
}

// An HTTP server on 127.0.0.1: POST /echo, GET /big, GET /sleep?ms=N.
class Upstream {
 public:
  Upstream() {
    server_.set_keep_alive_max_count(100000);
    server_.set_keep_alive_timeout(1);
    // Headers and body go out as separate writes: without this, Nagle and delayed ACKs cost
    // ~40 ms a request, with or without the proxy.
    server_.set_tcp_nodelay(true);
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "application/octet-stream");
    });
    server_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(BigBody(301), "application/octet-stream");
    });
    server_.Get("/sleep", [](const httplib::Request& req, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(req.get_param_value("ms"))));
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Upstream() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A port nothing listens on (bound, then released).
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A raw client socket connected to 127.0.0.1:port (-1 on failure).
int ConnectRaw(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<FaultProxy> StartProxy(int upstream_port, const FaultSpec& spec) {
  auto proxy = FaultProxy::Start("127.0.0.1", 0, "127.0.0.1", upstream_port, spec);
  EXPECT_TRUE(proxy.ok()) << proxy.status().ToString();
  return proxy.ok() ? std::move(proxy).value() : nullptr;
}

std::unique_ptr<httplib::Client> MakeClient(const FaultProxy& proxy, int read_timeout_ms = 5000) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", proxy.port());
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_connection_timeout(2);
  client->set_read_timeout(read_timeout_ms / 1000, (read_timeout_ms % 1000) * 1000);
  return client;
}

// Waits (up to 2 s) for `done`.
template <typename Fn>
bool Eventually(Fn done) {
  const Clock::time_point start = Clock::now();
  while (!done()) {
    if (MsSince(start) > 2000) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(FaultProxyTest, PassForwardsBytesExactly) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  for (int i = 0; i < 50; ++i) {
    const std::string body = "request " + std::to_string(i) + std::string(i * 37, 'x');
    auto res = client->Post("/echo", body, "application/octet-stream");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->body, body);
  }
  const std::string big_request = BigBody(7);
  auto echo = client->Post("/echo", big_request, "application/octet-stream");
  ASSERT_TRUE(echo) << httplib::to_string(echo.error());
  EXPECT_TRUE(echo->body == big_request);
  auto big = client->Get("/big");
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_TRUE(big->body == BigBody(301));
  const FaultProxy::Counters c = proxy->counters();
  EXPECT_GE(c.exchanges, 52);
  EXPECT_EQ(c.connections, 1);  // keep-alive held
  EXPECT_EQ(c.slowed + c.delayed + c.cut + c.refused + c.hung, 0);
}

TEST(FaultProxyTest, ConcurrentClientsGetTheirOwnAnswers) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {});
  ASSERT_NE(proxy, nullptr);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto client = MakeClient(*proxy);
      for (int i = 0; i < 25; ++i) {
        const std::string body =
            std::to_string(t) + ":" + std::to_string(i) + std::string(1000 * t, 'y');
        auto res = client->Post("/echo", body, "text/plain");
        if (res && res->body == body) ++good;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), 100);
  EXPECT_EQ(proxy->counters().connections, 4);
  EXPECT_GE(proxy->counters().exchanges, 100);
}

TEST(FaultProxyTest, DelayHoldsEveryAnswer) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {.delay_ms = 100});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  for (int i = 0; i < 2; ++i) {
    const Clock::time_point start = Clock::now();
    auto res = client->Get("/sleep?ms=0");
    const double ms = MsSince(start);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->body, "ok");
    EXPECT_GE(ms, 100);
    EXPECT_LT(ms, 5000);
  }
  // A held answer larger than the socket buffers is queued, then delivered whole.
  const Clock::time_point start = Clock::now();
  auto big = client->Get("/big");
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_GE(MsSince(start), 100);
  EXPECT_TRUE(big->body == BigBody(301));
  EXPECT_EQ(proxy->counters().delayed, 3);
}

TEST(FaultProxyTest, SlowScalesTheTimeToFirstByte) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {.slow_fraction = 1, .slow_factor = 10});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  const Clock::time_point start = Clock::now();
  auto res = client->Get("/sleep?ms=30");
  const double ms = MsSince(start);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "ok");
  EXPECT_GE(ms, 270);  // 10 x (>= 30 ms)
  EXPECT_LT(ms, 5000);
  EXPECT_EQ(proxy->counters().slowed, 1);

  ASSERT_TRUE(proxy->Set({.slow_fraction = 0, .slow_factor = 10}).ok());
  auto fast = client->Get("/sleep?ms=30");
  ASSERT_TRUE(fast) << httplib::to_string(fast.error());
  EXPECT_EQ(proxy->counters().slowed, 1);  // no new slowed exchange
  EXPECT_EQ(proxy->counters().exchanges, 2);
}

TEST(FaultProxyTest, DrawsAreSeededAtTheRequestedRate) {
  auto draws = [](uint64_t seed, bool slow) {
    std::set<int64_t> out;
    for (int64_t k = 0; k < 10000; ++k) {
      const bool drawn =
          slow ? FaultProxy::SlowDraw(seed, k, 0.01) : FaultProxy::CutDraw(seed, k, 0.01);
      if (drawn) out.insert(k);
    }
    return out;
  };
  const std::set<int64_t> a = draws(1, true);
  EXPECT_EQ(draws(1, true), a);
  EXPECT_NE(draws(2, true), a);
  EXPECT_NE(draws(1, false), a);  // slow and cut are separate streams
  // Binomial(10000, 0.01): mean 100, sd ~9.95; 60..140 is 4 sd.
  for (const std::set<int64_t>& s : {a, draws(2, true), draws(1, false)}) {
    EXPECT_GE(s.size(), 60u);
    EXPECT_LE(s.size(), 140u);
  }
  for (int64_t k = 0; k < 1000; ++k) {
    EXPECT_FALSE(FaultProxy::SlowDraw(5, k, 0));
    EXPECT_TRUE(FaultProxy::SlowDraw(5, k, 1));
    EXPECT_FALSE(FaultProxy::CutDraw(5, k, 0));
    EXPECT_TRUE(FaultProxy::CutDraw(5, k, 1));
  }
}

TEST(FaultProxyTest, SequentialRequestsGetTheSeedsFaults) {
  Upstream upstream;
  constexpr uint64_t kSeed = 42;
  auto proxy =
      StartProxy(upstream.port(), {.slow_fraction = 0.05, .slow_factor = 1, .seed = kSeed});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  for (int i = 0; i < 200; ++i) {
    auto res = client->Post("/echo", std::to_string(i), "text/plain");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->body, std::to_string(i));
  }
  const FaultProxy::Counters c = proxy->counters();
  EXPECT_GE(c.exchanges, 200);
  int64_t expected = 0;
  for (int64_t k = 0; k < c.exchanges; ++k) expected += FaultProxy::SlowDraw(kSeed, k, 0.05);
  EXPECT_EQ(c.slowed, expected);
  EXPECT_GT(c.slowed, 0);
}

TEST(FaultProxyTest, CutNeverDeliversTheWholeAnswer) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {.cut_fraction = 1});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  auto res = client->Get("/big");
  EXPECT_TRUE(!res || res->body.size() < kBigBytes);
  EXPECT_GE(proxy->counters().cut, 1);
  // The proxy goes on: a pass spec and a new client get the whole answer.
  ASSERT_TRUE(proxy->Set({}).ok());
  auto again = MakeClient(*proxy)->Get("/big");
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_TRUE(again->body == BigBody(301));
}

TEST(FaultProxyTest, DownClosesAtOnce) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {});
  ASSERT_NE(proxy, nullptr);
  auto client = MakeClient(*proxy);
  ASSERT_TRUE(client->Get("/sleep?ms=0"));
  // An open connection is closed at its next exchange; a new one at once.
  ASSERT_TRUE(proxy->Set({.mode = FaultSpec::Mode::kDown}).ok());
  const Clock::time_point start = Clock::now();
  EXPECT_FALSE(client->Get("/sleep?ms=0"));
  EXPECT_FALSE(MakeClient(*proxy)->Get("/sleep?ms=0"));
  EXPECT_LT(MsSince(start), 2000);
  EXPECT_GE(proxy->counters().refused, 2);
}

TEST(FaultProxyTest, HangNeverAnswersUntilSetBack) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {.mode = FaultSpec::Mode::kHang});
  ASSERT_NE(proxy, nullptr);
  {
    auto client = MakeClient(*proxy, /*read_timeout_ms=*/300);
    const Clock::time_point start = Clock::now();
    auto res = client->Get("/sleep?ms=0");
    ASSERT_FALSE(res);
    EXPECT_EQ(res.error(), httplib::Error::Read);
    EXPECT_GE(MsSince(start), 250);
  }
  EXPECT_EQ(proxy->counters().hung, 1);
  ASSERT_TRUE(proxy->Set({}).ok());
  auto client = MakeClient(*proxy, /*read_timeout_ms=*/300);
  auto res = client->Get("/sleep?ms=0");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "ok");
  // An open connection hangs from its next exchange on.
  ASSERT_TRUE(proxy->Set({.mode = FaultSpec::Mode::kHang}).ok());
  EXPECT_FALSE(client->Get("/sleep?ms=0"));
  EXPECT_EQ(proxy->counters().hung, 2);
}

TEST(FaultProxyTest, UpstreamRefusingIsSurvived) {
  auto proxy = StartProxy(ClosedPort(), {});
  ASSERT_NE(proxy, nullptr);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(MakeClient(*proxy)->Get("/sleep?ms=0"));
  EXPECT_EQ(proxy->counters().refused, 3);
  EXPECT_EQ(proxy->counters().exchanges, 0);
  const Clock::time_point start = Clock::now();
  proxy->Stop();
  EXPECT_LT(MsSince(start), 2000);
}

TEST(FaultProxyTest, UpstreamClosingMidAnswerIsSurvived) {
  // A raw upstream that answers half a response, then closes.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::thread server([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    char buf[4096];
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request.append(buf, n);
    }
    const std::string half = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part";
    (void)!::send(fd, half.data(), half.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  auto proxy = StartProxy(ntohs(addr.sin_port), {});
  ASSERT_NE(proxy, nullptr);
  auto res = MakeClient(*proxy)->Get("/x");
  EXPECT_TRUE(!res || res->body.size() < 100);
  server.join();
  ::close(listener);
  EXPECT_EQ(proxy->counters().exchanges, 1);
  proxy->Stop();
}

TEST(FaultProxyTest, ClientClosingMidRequestIsSurvived) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {});
  ASSERT_NE(proxy, nullptr);
  const int fd = ConnectRaw(proxy->port());
  ASSERT_GE(fd, 0);
  const std::string partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(partial.size()));
  ::close(fd);
  auto res = MakeClient(*proxy)->Post("/echo", "whole", "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "whole");
}

TEST(FaultProxyTest, StopReturnsWithAHungConnection) {
  Upstream upstream;
  auto proxy = StartProxy(upstream.port(), {.mode = FaultSpec::Mode::kHang});
  ASSERT_NE(proxy, nullptr);
  const int fd = ConnectRaw(proxy->port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /sleep?ms=0 HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  ASSERT_TRUE(Eventually([&] { return proxy->counters().hung == 1; }));
  const Clock::time_point start = Clock::now();
  proxy->Stop();
  EXPECT_LT(MsSince(start), 2000);
  proxy->Stop();  // idempotent
  char byte;
  EXPECT_LE(::recv(fd, &byte, 1, 0), 0);  // the proxy closed it, without an answer
  ::close(fd);
  proxy.reset();  // the destructor after Stop()
}

TEST(FaultProxyTest, StartAndSetRefuseBadInput) {
  Upstream upstream;
  auto bad = FaultProxy::Start("127.0.0.1", 0, "127.0.0.1", upstream.port(), {.slow_fraction = 2});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FaultProxy::Start("127.0.0.1", 0, "127.0.0.1", 0, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(FaultProxy::Start("127.0.0.1", 0, "no-such-host.invalid", 80, {}).status().code(),
            StatusCode::kInvalidArgument);
  auto proxy = StartProxy(upstream.port(), {.delay_ms = 5});
  ASSERT_NE(proxy, nullptr);
  // The port is taken.
  EXPECT_EQ(FaultProxy::Start("127.0.0.1", proxy->port(), "127.0.0.1", upstream.port(), {})
                .status()
                .code(),
            StatusCode::kIoError);
  const Status s = proxy->Set({.cut_fraction = -0.5});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cut_fraction"), std::string::npos) << s.message();
  EXPECT_EQ(proxy->spec().delay_ms, 5);  // unchanged
}

TEST(FaultSpecTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate({}).ok());
  EXPECT_TRUE(
      Validate({.slow_fraction = 1, .slow_factor = 1, .delay_ms = 0, .cut_fraction = 0}).ok());
  struct Case {
    FaultSpec spec;
    const char* field;
  };
  const Case cases[] = {
      {{.slow_fraction = NAN}, "slow_fraction"},
      {{.slow_fraction = 1.5}, "slow_fraction"},
      {{.slow_fraction = -0.1}, "slow_fraction"},
      {{.cut_fraction = NAN}, "cut_fraction"},
      {{.cut_fraction = 1.5}, "cut_fraction"},
      {{.slow_factor = 0.5}, "slow_factor"},
      {{.slow_factor = NAN}, "slow_factor"},
      {{.slow_factor = INFINITY}, "slow_factor"},
      {{.delay_ms = -1}, "delay_ms"},
  };
  for (const Case& c : cases) {
    const Status s = Validate(c.spec);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
}

TEST(FaultSpecTest, ModeNamesRoundTrip) {
  for (FaultSpec::Mode m :
       {FaultSpec::Mode::kPass, FaultSpec::Mode::kDown, FaultSpec::Mode::kHang}) {
    auto parsed = ParseMode(ModeName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(ParseMode("slow").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMode("").status().code(), StatusCode::kInvalidArgument);
}

TEST(EndpointTest, ParsesStrictly) {
  auto e = ParseEndpoint("127.0.0.1:9000");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 9000);
  auto v6 = ParseEndpoint("[::1]:65535");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 65535);
  EXPECT_TRUE(ParseEndpoint("localhost:0", /*allow_any_port=*/true).ok());
  for (const char* bad : {"", "host", ":80", "host:", "host:0", "host:65536", "host:80x", "host:-1",
                          "host: 80", "::1:80", "[::1]80", "[::1]", "host:000000080"}) {
    const auto r = ParseEndpoint(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace apx::fault
