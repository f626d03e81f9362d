#include "serve/worker_pool.h"

#include <algorithm>
#include <vector>

namespace apx::serve {

WorkerPool::WorkerPool(int workers, size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {
  for (int w = 0; w < std::max(workers, 1); ++w) threads_.emplace_back([this, w] { Run(w); });
  reaper_ = std::thread([this] { Reap(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  reaper_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  reaper_.join();
}

bool WorkerPool::TrySubmit(Task task, Clock::time_point expire_at, std::function<void()> on_expire) {
  const bool expires = on_expire != nullptr && expire_at != Clock::time_point::max();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= capacity_) return false;
    queue_.push_back({std::move(task), expires ? expire_at : Clock::time_point::max(), std::move(on_expire)});
  }
  cv_.notify_one();
  if (expires) reaper_cv_.notify_one();
  return true;
}

void WorkerPool::Reap() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<std::function<void()>> expired;
  while (!stopping_) {
    Clock::time_point next = Clock::time_point::max();
    for (const Entry& e : queue_) next = std::min(next, e.expire_at);
    if (next == Clock::time_point::max()) {
      reaper_cv_.wait(lock);
    } else {
      reaper_cv_.wait_until(lock, next);
    }
    const Clock::time_point now = Clock::now();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->expire_at <= now) {
        expired.push_back(std::move(it->on_expire));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (expired.empty()) continue;
    lock.unlock();
    for (auto& fn : expired) fn();
    expired.clear();
    lock.lock();
  }
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

int WorkerPool::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void WorkerPool::Run(int worker) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    Task task = std::move(queue_.front().task);
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    task(worker);
    lock.lock();
    --busy_;
  }
}

}  // namespace apx::serve
