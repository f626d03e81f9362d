// serve/worker_pool.h
//
// A fixed set of worker threads fed from one bounded FIFO queue. Each task receives the index
// of the worker running it, so that tasks can use per-worker state (pipeline sessions) without
// locks. TrySubmit never blocks and never grows the queue past its capacity: a full queue is
// the caller's signal to reject (load shedding), which keeps memory bounded under any load.
// A task may carry an expiry: if it is still waiting then, a reaper thread takes it out of the
// queue and runs its `on_expire` instead (a refusal at the deadline, not when a worker gets to
// it).
//
// Thread safety: all methods may be called from any thread.
#ifndef APX_SERVE_WORKER_POOL_H_
#define APX_SERVE_WORKER_POOL_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace apx::serve {

class WorkerPool {
 public:
  using Task = std::function<void(int worker)>;
  using Clock = std::chrono::steady_clock;

  // Starts `workers` threads (>= 1) with a queue of at most `capacity` (>= 1) waiting tasks.
  WorkerPool(int workers, size_t capacity);
  // Runs every task already queued, then joins the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false (task dropped, not run) when the queue is full or the pool stops.
  // With an `on_expire`, exactly one of task and on_expire runs: on_expire (on the reaper
  // thread) when the task is still queued at `expire_at`. Neither may block.
  bool TrySubmit(Task task, Clock::time_point expire_at = Clock::time_point::max(),
                 std::function<void()> on_expire = nullptr);

  int workers() const { return static_cast<int>(threads_.size()); }
  size_t capacity() const { return capacity_; }
  size_t queued() const;  // tasks waiting (not running)
  int busy() const;       // tasks running

 private:
  void Run(int worker);
  void Reap();

  struct Entry {
    Task task;
    Clock::time_point expire_at;
    std::function<void()> on_expire;
  };

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable reaper_cv_;
  std::deque<Entry> queue_;  // GUARDED_BY(mu_)
  int busy_ = 0;            // GUARDED_BY(mu_)
  bool stopping_ = false;   // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
  std::thread reaper_;
};

}  // namespace apx::serve

#endif  // APX_SERVE_WORKER_POOL_H_
