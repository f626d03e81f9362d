// fault/fault_proxy.h
//
// A seeded TCP fault injector for tests and benchmarks: a proxy in front of one server (a
// ClickHouse shard, any request/response TCP service) that makes it slow, down, hung, or cut
// mid-answer, while forwarding every byte it lets through unchanged.
//
// Each accepted connection gets its own upstream connection (opened at accept, within 5 s) and
// its own thread (poll() on both sockets and a stop pipe). Traffic is split into exchanges: an
// exchange starts when client bytes arrive and either they are the connection's first or the
// upstream has sent at least one byte since the previous exchange started (HTTP/1.1 keep-alive
// and ClickHouse's native protocol both work this way; the native protocol's Hello is the
// first exchange of each connection; pipelined requests merge into one). Exchanges are
// numbered k = 0, 1, 2 ... by one counter per proxy, in the order they start, and an
// exchange's fate (slowed? cut?) is a pure function of (seed, k): with one client at a time a
// seed gives the same faults every run. Concurrent clients keep the rates but not the order
// (which connection gets which k depends on timing). Where a cut falls depends on how the
// kernel splits the answer into reads; that it happens does not.
//
// A held answer (slow, delay) is still read from the upstream into memory (up to 64 MiB per
// connection), so the upstream never waits on the proxy; when the hold ends everything goes out
// in order and later bytes of the answer pass at once. A side that closes closes the other:
// the client's end of input is passed on (shutdown for writing) and the answer still
// delivered; the upstream's close or reset is passed on once what it sent is delivered.
//
// Thread safety: every method may be called from any thread, concurrently.
#ifndef APX_FAULT_FAULT_PROXY_H_
#define APX_FAULT_FAULT_PROXY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace apx::fault {

// What the proxy does to the traffic. Fields are read at the start of each exchange.
struct FaultSpec {
  enum class Mode {
    kPass,  // forward (with the slow, delay and cut faults below)
    kDown,  // accept and close at once; an open connection is closed at its next exchange
    kHang,  // accept, read and discard what the client sends, never answer, until the client
            // or the proxy closes; an open connection hangs from its next exchange on
  };
  Mode mode = Mode::kPass;
  // An exchange's first answer byte reaches the client at
  //   start + delay_ms + ttfb                                   (not slowed)
  //   start + delay_ms + ttfb + (slow_factor - 1) x max(ttfb, typical)   (slowed)
  // where ttfb is the exchange's own time from start to the upstream's first byte, and
  // `typical` the proxy's moving average of whole answers (start to last byte, answers of at
  // least 64 bytes). Over HTTP the two are close; ClickHouse's native protocol sends a
  // header block before it computes, so there only `typical` makes the answer ~slow_factor
  // times slower.
  double slow_fraction = 0;  // share of exchanges slowed, in [0, 1]
  double slow_factor = 10;   // >= 1
  int64_t delay_ms = 0;      // >= 0, every exchange
  // Share of exchanges whose answer is cut, in [0, 1]: the first half of the first upstream
  // chunk read (at least 1 byte when it has more than 1) is forwarded, then both sides closed.
  double cut_fraction = 0;
  uint64_t seed = 1;
};

// "pass", "down", "hang".
std::string_view ModeName(FaultSpec::Mode mode);
// The inverse of ModeName; InvalidArgument naming the accepted words otherwise.
Result<FaultSpec::Mode> ParseMode(std::string_view text);

// InvalidArgument whose message starts with the field's name ("slow_fraction is nan; must be in
// [0, 1]") for a fraction outside [0, 1] or NaN, slow_factor < 1, infinite or NaN, delay_ms < 0.
Status Validate(const FaultSpec& spec);

// host:port, as given on a command line.
struct Endpoint {
  std::string host;
  int port = 0;
};
// Parses "host:port" or "[v6]:port" strictly: non-empty host, port all digits in 1..65535
// (0..65535 when allow_any_port: 0 asks for any free port). InvalidArgument quoting `text`.
Result<Endpoint> ParseEndpoint(std::string_view text, bool allow_any_port = false);

class FaultProxy {
 public:
  struct Counters {
    int64_t connections = 0;  // client connections accepted
    int64_t exchanges = 0;    // exchanges forwarded (numbered; excludes hung and refused ones)
    int64_t slowed = 0;       // exchanges drawn for slowing (SlowDraw true)
    int64_t delayed = 0;      // exchanges started with delay_ms > 0
    int64_t cut = 0;          // answers actually cut (a drawn exchange that got no answer is not)
    int64_t refused = 0;      // connections closed by kDown, or because the upstream refused
    int64_t hung = 0;         // connections put into kHang (at accept or at an exchange)
  };

  // Listens on listen_host:listen_port (empty host: 127.0.0.1; port 0: any free port, see
  // port()) and forwards each accepted connection to upstream_host:upstream_port over a new
  // upstream connection. Errors: InvalidArgument for a spec that fails Validate, a port out of
  // range or a host that does not resolve; IoError when it cannot bind or listen.
  static Result<std::unique_ptr<FaultProxy>> Start(const std::string& listen_host, int listen_port,
                                                   const std::string& upstream_host,
                                                   int upstream_port, const FaultSpec& spec);
  ~FaultProxy();  // Stop()
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Closes the listener and every connection and joins every thread; idempotent. Returns
  // promptly even with hung connections (it never waits for a peer).
  void Stop();

  int port() const;  // the port it listens on

  // Replaces the spec from the next exchange (and the next accepted connection) on.
  // InvalidArgument (and the spec unchanged) when it fails Validate.
  Status Set(const FaultSpec& spec);
  FaultSpec spec() const;

  // A snapshot; each field is read atomically, the fields not together.
  Counters counters() const;

  // The fate of exchange k under `seed`: true with probability `fraction` (0: never, 1:
  // always), from a splitmix64 hash of (seed, stream, k), with separate streams for slow and
  // cut so the two faults are independent. Exposed for tests.
  static bool SlowDraw(uint64_t seed, int64_t k, double fraction);
  static bool CutDraw(uint64_t seed, int64_t k, double fraction);

 private:
  class Impl;  // fault_proxy.cc
  explicit FaultProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace apx::fault

#endif  // APX_FAULT_FAULT_PROXY_H_
