// fault/fault_proxy.cc: the accept loop and one forwarding thread per connection (non-blocking
// sockets, poll(), a stop pipe that wakes every thread at once).
#include "fault/fault_proxy.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace apx::fault {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 64 << 10;  // bytes per recv()
// Bytes queued per direction before the proxy stops reading that side. Large, so that a held
// answer never stops the proxy reading the upstream in practice (a ClickHouse answer to an
// apxserve round is a few KiB).
constexpr size_t kMaxQueued = 64 << 20;
constexpr std::chrono::milliseconds kConnectTimeout{5000};
constexpr int kListenBacklog = 128;

// Separate hash streams, so that whether an exchange is slowed says nothing about its cut.
constexpr uint64_t kSlowStream = 0x736c6f7700000001ULL;  // "slow"
constexpr uint64_t kCutStream = 0x0063757400000002ULL;   // "cut"

// splitmix64's output function (Steele, Lea, Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014; the constants are Vigna's, as in java.util.SplittableRandom).
uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Element k of the splitmix64 sequence whose state starts at a hash of (seed, stream), mapped to
// [0, 1) with 53 bits, compared with fraction.
bool Draw(uint64_t seed, uint64_t stream, int64_t k, double fraction) {
  if (!(fraction > 0)) return false;
  if (fraction >= 1) return true;
  const uint64_t state =
      SplitMix64(seed ^ stream) + static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL;
  const double u = static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;
  return u < fraction;
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

bool Retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Bytes waiting to be sent in one direction, with stream positions (appended() and consumed()
// count every byte since the connection opened).
class ByteQueue {
 public:
  const char* data() const { return buf_.data() + head_; }
  size_t size() const { return buf_.size() - head_; }
  bool empty() const { return size() == 0; }
  uint64_t appended() const { return appended_; }
  uint64_t consumed() const { return consumed_; }

  void Append(const char* bytes, size_t n) {
    buf_.append(bytes, n);
    appended_ += n;
  }
  void Consume(size_t n) {
    head_ += n;
    consumed_ += n;
    if (head_ == buf_.size()) {
      buf_.clear();
      head_ = 0;
    } else if (head_ >= kReadChunk && head_ * 2 >= buf_.size()) {
      buf_.erase(0, head_);  // amortised: at most as many bytes moved as were consumed
      head_ = 0;
    }
  }
  void Clear() { Consume(size()); }

 private:
  std::string buf_;
  size_t head_ = 0;
  uint64_t appended_ = 0;
  uint64_t consumed_ = 0;
};

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

// `what` names the host in errors ("upstream host").
Result<std::vector<Address>> Resolve(const std::string& what, const std::string& host, int port,
                                     bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Status::InvalidArgument(what + " '" + host +
                                   "' does not resolve: " + ::gai_strerror(rc));
  }
  std::vector<Address> out;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address& address = out.emplace_back();
    std::memcpy(&address.addr, a->ai_addr, a->ai_addrlen);
    address.len = a->ai_addrlen;
    address.family = a->ai_family;
  }
  ::freeaddrinfo(found);
  if (out.empty()) return Status::InvalidArgument(what + " '" + host + "' has no stream address");
  return out;
}

void SetNoDelay(int fd) {
  // Forwarded writes keep their size: no 40 ms Nagle / delayed-ACK stall on small answers.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

std::string_view ModeName(FaultSpec::Mode mode) {
  switch (mode) {
    case FaultSpec::Mode::kPass:
      return "pass";
    case FaultSpec::Mode::kDown:
      return "down";
    case FaultSpec::Mode::kHang:
      return "hang";
  }
  return "?";
}

Result<FaultSpec::Mode> ParseMode(std::string_view text) {
  for (FaultSpec::Mode m :
       {FaultSpec::Mode::kPass, FaultSpec::Mode::kDown, FaultSpec::Mode::kHang}) {
    if (text == ModeName(m)) return m;
  }
  return Status::InvalidArgument("mode '" + std::string(text) + "' is not pass, down or hang");
}

Status Validate(const FaultSpec& spec) {
  auto fraction = [](const char* field, double v) {
    if (v >= 0 && v <= 1) return Status::Ok();  // false for NaN
    return Status::InvalidArgument(std::string(field) + " is " + Number(v) + "; must be in [0, 1]");
  };
  APX_RETURN_IF_ERROR(fraction("slow_fraction", spec.slow_fraction));
  APX_RETURN_IF_ERROR(fraction("cut_fraction", spec.cut_fraction));
  if (!(spec.slow_factor >= 1) || std::isinf(spec.slow_factor)) {
    return Status::InvalidArgument("slow_factor is " + Number(spec.slow_factor) +
                                   "; must be a finite number >= 1");
  }
  if (spec.delay_ms < 0) {
    return Status::InvalidArgument("delay_ms is " + std::to_string(spec.delay_ms) +
                                   "; must be >= 0");
  }
  switch (spec.mode) {
    case FaultSpec::Mode::kPass:
    case FaultSpec::Mode::kDown:
    case FaultSpec::Mode::kHang:
      return Status::Ok();
  }
  return Status::InvalidArgument("mode " + std::to_string(static_cast<int>(spec.mode)) +
                                 " is not a mode");
}

Result<Endpoint> ParseEndpoint(std::string_view text, bool allow_any_port) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not host:port (" + why + ")");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("expected [IPv6-address]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no ':port'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad("write an IPv6 address as [address]:port");
    }
  }
  if (host.empty()) return bad("empty host");
  const bool digits =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  const int min_port = allow_any_port ? 0 : 1;
  const int value = digits ? std::stoi(std::string(port)) : -1;
  if (value < min_port || value > 65535) {
    return bad("the port must be a number in " + std::to_string(min_port) + "..65535");
  }
  return Endpoint{.host = std::string(host), .port = value};
}

bool FaultProxy::SlowDraw(uint64_t seed, int64_t k, double fraction) {
  return Draw(seed, kSlowStream, k, fraction);
}

bool FaultProxy::CutDraw(uint64_t seed, int64_t k, double fraction) {
  return Draw(seed, kCutStream, k, fraction);
}

// Everything the accept thread and the connection threads share.
class FaultProxy::Impl {
 public:
  Impl(UniqueFd listener, int port, std::vector<Address> upstream, const FaultSpec& spec,
       UniqueFd stop_read, UniqueFd stop_write)
      : listener_(std::move(listener)),
        port_(port),
        upstream_(std::move(upstream)),
        stop_read_(std::move(stop_read)),
        stop_write_(std::move(stop_write)),
        spec_(spec) {}
  ~Impl() { Stop(); }

  void StartAccepting() {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  void Stop();
  int port() const { return port_; }
  Status Set(const FaultSpec& spec) {
    APX_RETURN_IF_ERROR(Validate(spec));
    std::lock_guard<std::mutex> lock(spec_mu_);
    spec_ = spec;
    return Status::Ok();
  }
  FaultSpec spec() const {
    std::lock_guard<std::mutex> lock(spec_mu_);
    return spec_;
  }
  Counters counters() const {
    return {.connections = connections_.load(),
            .exchanges = next_exchange_.load(),
            .slowed = slowed_.load(),
            .delayed = delayed_.load(),
            .cut = cut_.load(),
            .refused = refused_.load(),
            .hung = hung_.load()};
  }

 private:
  class Connection;
  // A connection thread; `done` is set as its last act, so the accept thread may join it.
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop();
  void Reap();  // REQUIRES: workers_mu_ held

  UniqueFd listener_;
  const int port_;
  const std::vector<Address> upstream_;
  // Stop() writes one byte and nobody reads it: the read end stays readable, so every poll()
  // that includes it returns, now and later.
  UniqueFd stop_read_;
  UniqueFd stop_write_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex spec_mu_;
  FaultSpec spec_;  // GUARDED_BY(spec_mu_)

  std::atomic<int64_t> next_exchange_{0};  // the next exchange's k; also the count so far
  // Moving average (1/8 per answer) of whole answers' durations, ns; 0 before the first.
  std::atomic<int64_t> typical_ns_{0};
  void RecordAnswer(Clock::duration d) {
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    if (ns <= 0) return;
    int64_t old = typical_ns_.load(std::memory_order_relaxed);
    while (!typical_ns_.compare_exchange_weak(old, old == 0 ? ns : old + (ns - old) / 8, std::memory_order_relaxed)) {
    }
  }
  Clock::duration typical() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(typical_ns_.load(std::memory_order_relaxed)));
  }
  std::atomic<int64_t> connections_{0}, slowed_{0}, delayed_{0}, cut_{0}, refused_{0}, hung_{0};

  std::mutex stop_mu_;    // one Stop() at a time; a second waits for the first
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
  std::thread accept_thread_;
  std::mutex workers_mu_;
  std::list<std::unique_ptr<Worker>> workers_;  // GUARDED_BY(workers_mu_)
};

// One client connection and its upstream connection, owned by one thread.
class FaultProxy::Impl::Connection {
 public:
  Connection(Impl& proxy, UniqueFd client)
      : proxy_(proxy), client_(std::move(client)), buf_(kReadChunk) {}

  // Returns when either side has closed (and what could be delivered was), or on Stop().
  void Run() {
    const FaultSpec spec = proxy_.spec();
    if (spec.mode == FaultSpec::Mode::kDown) {
      ++proxy_.refused_;
      return;
    }
    if (spec.mode == FaultSpec::Mode::kHang) {
      ++proxy_.hung_;
      hang_ = true;
    } else if (!ConnectUpstream()) {
      if (!proxy_.stopping_.load()) ++proxy_.refused_;
      return;
    }
    Forward();
  }

 private:
  // Non-blocking connect to each upstream address in turn, each within kConnectTimeout.
  bool ConnectUpstream() {
    for (const Address& a : proxy_.upstream_) {
      UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) continue;
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
        if (errno != EINPROGRESS) continue;
        pollfd fds[2] = {{proxy_.stop_read_.get(), POLLIN, 0}, {fd.get(), POLLOUT, 0}};
        const int n = ::poll(fds, 2, static_cast<int>(kConnectTimeout.count()));
        if (fds[0].revents != 0) return false;
        int err = 0;
        socklen_t len = sizeof(err);
        if (n <= 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
          continue;  // refused, unreachable or no answer in time: the next address
        }
      }
      SetNoDelay(fd.get());
      upstream_ = std::move(fd);
      return true;
    }
    return false;
  }

  // How many queued answer bytes may go to the client now.
  size_t Sendable(Clock::time_point now) {
    if (holding_ && now >= hold_until_) holding_ = false;
    if (!holding_) return to_client_.size();
    const uint64_t sent = to_client_.consumed();
    return hold_from_ > sent ? std::min<uint64_t>(hold_from_ - sent, to_client_.size()) : 0;
  }

  void Forward() {
    for (;;) {
      const Clock::time_point now = Clock::now();
      const size_t sendable = Sendable(now);
      pollfd fds[3];
      fds[0] = {proxy_.stop_read_.get(), POLLIN, 0};
      short client_events = 0;
      if (!client_eof_ && (hang_ || to_upstream_.size() < kMaxQueued)) client_events |= POLLIN;
      if (sendable > 0) client_events |= POLLOUT;
      fds[1] = {client_.get(), client_events, 0};
      short upstream_events = 0;
      if (upstream_.valid() && to_client_.size() < kMaxQueued) upstream_events |= POLLIN;
      if (upstream_.valid() && !to_upstream_.empty()) upstream_events |= POLLOUT;
      // poll() skips a negative fd: a full queue must not spin on an upstream's POLLHUP.
      fds[2] = {upstream_events != 0 ? upstream_.get() : -1, upstream_events, 0};
      int timeout_ms = -1;
      if (holding_ && to_client_.size() > sendable) {
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(hold_until_ - now).count();
        timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 1, INT_MAX));
      }
      if (::poll(fds, 3, timeout_ms) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents != 0) return;  // Stop()

      const short cr = fds[1].revents;
      if ((client_events & POLLIN) && (cr & (POLLIN | POLLHUP | POLLERR))) {
        if (!ReadClient()) return;
      } else if (cr & (POLLHUP | POLLERR)) {
        return;  // reset (we never shut the client's direction down ourselves)
      }
      const short ur = fds[2].revents;
      if ((upstream_events & POLLIN) && (ur & (POLLIN | POLLHUP | POLLERR))) {
        ReadUpstream();
      } else if (ur & (POLLHUP | POLLERR)) {
        CloseUpstream();
      }
      if (upstream_.valid() && (ur & POLLOUT) && !to_upstream_.empty()) WriteUpstream();
      if ((cr & POLLOUT) && !WriteClient()) return;

      if (hang_) {
        if (client_eof_) return;
        continue;
      }
      if (!upstream_.valid() && to_client_.empty()) return;  // everything it said is delivered
      if (client_eof_ && upstream_.valid() && to_upstream_.empty() && !upstream_shut_) {
        // Pass the client's end of request on; the answer still comes back.
        ::shutdown(upstream_.get(), SHUT_WR);
        upstream_shut_ = true;
      }
    }
  }

  // False: close the connection now.
  bool ReadClient() {
    const ssize_t n = ::recv(client_.get(), buf_.data(), buf_.size(), 0);
    if (n < 0) return Retryable(errno);
    if (n == 0) {
      client_eof_ = true;
      return true;
    }
    if (hang_ || !upstream_.valid()) return true;  // discarded: nobody will answer
    if (!exchange_started_ || upstream_replied_) {
      if (!StartExchange()) return false;
      if (hang_) return true;
    }
    to_upstream_.Append(buf_.data(), static_cast<size_t>(n));
    return true;
  }

  // False: the spec is kDown (close the connection).
  bool StartExchange() {
    const FaultSpec spec = proxy_.spec();
    if (spec.mode == FaultSpec::Mode::kDown) {
      ++proxy_.refused_;
      return false;
    }
    if (spec.mode == FaultSpec::Mode::kHang) {
      ++proxy_.hung_;
      hang_ = true;
      CloseUpstream();
      to_client_.Clear();
      holding_ = false;
      return true;
    }
    // The previous answer on this connection, whole: its duration feeds `typical`.
    if (exchange_started_ && answer_bytes_ >= 64) proxy_.RecordAnswer(last_byte_ - start_);
    answer_bytes_ = 0;
    const int64_t k = proxy_.next_exchange_.fetch_add(1);
    exchange_started_ = true;
    upstream_replied_ = false;
    first_byte_seen_ = false;
    start_ = Clock::now();
    slow_ = SlowDraw(spec.seed, k, spec.slow_fraction);
    slow_factor_ = spec.slow_factor;
    cut_ = CutDraw(spec.seed, k, spec.cut_fraction);
    delay_ = std::chrono::milliseconds(spec.delay_ms);
    if (slow_) ++proxy_.slowed_;
    if (spec.delay_ms > 0) ++proxy_.delayed_;
    return true;
  }

  void ReadUpstream() {
    const ssize_t n = ::recv(upstream_.get(), buf_.data(), buf_.size(), 0);
    if (n < 0 && Retryable(errno)) return;
    if (n <= 0) {
      CloseUpstream();  // closed or reset: deliver what came, then close the client
      return;
    }
    upstream_replied_ = true;
    size_t keep = static_cast<size_t>(n);
    bool cut_now = false;
    const Clock::time_point now = Clock::now();
    last_byte_ = now;
    answer_bytes_ += static_cast<uint64_t>(n);
    if (exchange_started_ && !first_byte_seen_) {
      first_byte_seen_ = true;
      const auto ttfb = now - start_;
      const auto base = std::max<Clock::duration>(ttfb, proxy_.typical());
      const auto answer_at =
          start_ + delay_ + ttfb +
          (slow_ ? std::chrono::duration_cast<Clock::duration>(base * (slow_factor_ - 1)) : Clock::duration::zero());
      if (answer_at > now) {
        // A hold still running (pipelined requests) keeps its start and may only grow.
        if (!holding_) hold_from_ = to_client_.appended();
        hold_until_ = holding_ ? std::max(hold_until_, answer_at) : answer_at;
        holding_ = true;
      }
      if (cut_) {
        keep /= 2;
        cut_now = true;
      }
    }
    to_client_.Append(buf_.data(), keep);
    if (cut_now) {
      ++proxy_.cut_;
      CloseUpstream();
    }
  }

  void WriteUpstream() {
    const ssize_t n =
        ::send(upstream_.get(), to_upstream_.data(), to_upstream_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (!Retryable(errno)) CloseUpstream();
      return;
    }
    to_upstream_.Consume(static_cast<size_t>(n));
  }

  // False: the client is gone.
  bool WriteClient() {
    const size_t sendable = Sendable(Clock::now());
    if (sendable == 0) return true;
    const ssize_t n = ::send(client_.get(), to_client_.data(), sendable, MSG_NOSIGNAL);
    if (n < 0) return Retryable(errno);
    to_client_.Consume(static_cast<size_t>(n));
    return true;
  }

  void CloseUpstream() {
    upstream_.Reset();
    to_upstream_.Clear();
  }

  Impl& proxy_;
  UniqueFd client_;
  UniqueFd upstream_;
  std::vector<char> buf_;
  ByteQueue to_upstream_;
  ByteQueue to_client_;
  bool hang_ = false;
  bool client_eof_ = false;
  bool upstream_shut_ = false;  // our write direction to the upstream is shut down

  // The current exchange.
  bool exchange_started_ = false;  // false until the client's first bytes
  bool upstream_replied_ = false;  // upstream bytes arrived since it started
  bool first_byte_seen_ = false;
  Clock::time_point start_;
  Clock::time_point last_byte_;  // the current answer's last byte so far
  uint64_t answer_bytes_ = 0;    // the current answer's bytes so far
  bool slow_ = false;
  double slow_factor_ = 1;
  bool cut_ = false;
  std::chrono::milliseconds delay_{0};

  // Answer bytes from stream position hold_from_ on wait until hold_until_.
  bool holding_ = false;
  uint64_t hold_from_ = 0;
  Clock::time_point hold_until_;
};

void FaultProxy::Impl::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{stop_read_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (fds[0].revents != 0) return;
    if ((fds[1].revents & POLLIN) == 0) continue;
    for (;;) {
      UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!client.valid()) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // EAGAIN: all taken. EMFILE and the like: wait a little rather than spin.
        if (!Retryable(errno)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        break;
      }
      ++connections_;
      SetNoDelay(client.get());
      std::lock_guard<std::mutex> lock(workers_mu_);
      Reap();
      auto worker = std::make_unique<Worker>();
      Worker* w = worker.get();
      w->thread = std::thread([this, w, fd = std::move(client)]() mutable {
        Connection(*this, std::move(fd)).Run();
        w->done.store(true, std::memory_order_release);
      });
      workers_.push_back(std::move(worker));
    }
  }
}

void FaultProxy::Impl::Reap() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if ((*it)->done.load(std::memory_order_acquire)) {
      (*it)->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void FaultProxy::Impl::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  const char byte = 1;
  while (::write(stop_write_.get(), &byte, 1) < 0 && errno == EINTR) {
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  listener_.Reset();
  // The accept thread is gone: nobody adds workers any more.
  std::list<std::unique_ptr<Worker>> workers;
  {
    std::lock_guard<std::mutex> lock(workers_mu_);
    workers.swap(workers_);
  }
  for (const std::unique_ptr<Worker>& w : workers) w->thread.join();
}

FaultProxy::FaultProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FaultProxy::~FaultProxy() { Stop(); }

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& listen_host,
                                                      int listen_port,
                                                      const std::string& upstream_host,
                                                      int upstream_port, const FaultSpec& spec) {
  APX_RETURN_IF_ERROR(Validate(spec).WithPrefix("fault proxy"));
  if (listen_port < 0 || listen_port > 65535) {
    return Status::InvalidArgument("fault proxy: listen port " + std::to_string(listen_port) +
                                   " is not in 0..65535");
  }
  if (upstream_port < 1 || upstream_port > 65535) {
    return Status::InvalidArgument("fault proxy: upstream port " + std::to_string(upstream_port) +
                                   " is not in 1..65535");
  }
  const std::string host = listen_host.empty() ? "127.0.0.1" : listen_host;
  APX_ASSIGN_OR_RETURN(const std::vector<Address> listen_addresses,
                       Resolve("fault proxy: listen host", host, listen_port, true));
  APX_ASSIGN_OR_RETURN(std::vector<Address> upstream,
                       Resolve("fault proxy: upstream host", upstream_host, upstream_port, false));

  const std::string where = host + ":" + std::to_string(listen_port);
  UniqueFd listener;
  std::string error = "no address";
  for (const Address& a : listen_addresses) {
    UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (fd.valid() && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0 &&
        ::listen(fd.get(), kListenBacklog) == 0) {
      listener = std::move(fd);
      break;
    }
    error = std::strerror(errno);
  }
  if (!listener.valid()) {
    return Status::IoError("fault proxy: cannot listen on " + where + ": " + error);
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return Status::IoError("fault proxy: getsockname on " + where + ": " + std::strerror(errno));
  }
  const int port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::IoError(std::string("fault proxy: pipe: ") + std::strerror(errno));
  }
  auto impl = std::make_unique<Impl>(std::move(listener), port, std::move(upstream), spec,
                                     UniqueFd(pipe_fds[0]), UniqueFd(pipe_fds[1]));
  impl->StartAccepting();
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(impl)));
}

void FaultProxy::Stop() { impl_->Stop(); }
int FaultProxy::port() const { return impl_->port(); }
Status FaultProxy::Set(const FaultSpec& spec) { return impl_->Set(spec).WithPrefix("fault proxy"); }
FaultSpec FaultProxy::spec() const { return impl_->spec(); }
FaultProxy::Counters FaultProxy::counters() const { return impl_->counters(); }

}  // namespace apx::fault
