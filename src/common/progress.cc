#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace apx {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::SetTotal(int64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = std::max<int64_t>(total, 1);
}

void ProgressBar::Update(int64_t done) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  Draw(done);
}

void ProgressBar::Finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  last_decile_ = -1;
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "%s%s: done in %.1f s\n", tty_ ? "\r\033[K" : "", label_.c_str(), secs);
}

void ProgressBar::Draw(int64_t done) {
  done = std::clamp<int64_t>(done, 0, total_);
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
    std::fprintf(stderr, "\r\033[K%s [%s] %3d%% (%lld/%lld, %.0f s left)", label_.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), static_cast<long long>(done),
                 static_cast<long long>(total_), eta);
    std::fflush(stderr);
    return;
  }
  const int decile = static_cast<int>(frac * 10);
  if (decile == last_decile_) return;
  last_decile_ = decile;
  std::fprintf(stderr, "%s: %d%% (%lld/%lld)\n", label_.c_str(), decile * 10,
               static_cast<long long>(done), static_cast<long long>(total_));
}

}  // namespace apx
