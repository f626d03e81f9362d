// common/progress.h
//
// A progress bar on stderr for long work (ingest, training, evaluation). On a terminal it
// redraws one line; otherwise (CI logs) it prints a line every 10 %.
//
// Thread safety: Update() may be called from several threads.
#ifndef APX_COMMON_PROGRESS_H_
#define APX_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace apx {

class ProgressBar {
 public:
  // `enabled` false makes every call a no-op (e.g. for --json output or --quiet).
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  ~ProgressBar();

  // Sets the absolute amount done (clamped to total).
  void Update(int64_t done);
  // Sets a new total (e.g. once it becomes known).
  void SetTotal(int64_t total);
  // Completes the bar and ends its line.
  void Finish();

 private:
  void Draw(int64_t done);

  std::string label_;
  int64_t total_;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mu_;
};

}  // namespace apx

#endif  // APX_COMMON_PROGRESS_H_
