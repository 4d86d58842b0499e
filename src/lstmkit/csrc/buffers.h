// The engine's large working buffers (the (T, B, .) tensors that forward saves for backward, and backward's
// chunk buffers), kept for reuse between calls instead of being handed back to the OS.
//
// Why: each call needs a hundred MB or more of fresh buffers (T=100, B=64, H=512: ~140 MB). From
// glibc they are new mappings every time (anything over 32 MB is mmapped and unmapped on free), so every call
// page-faulted and zeroed all of it again. Measured with two threads: a layer-norm forward+backward at T=150,
// B=64, H=256 spent 100-490 ms of system time (28,000 page faults) in a 180-510 ms call, the larger figure once
// other modules' calls had come in between. A reused buffer is already mapped: no faults, no zeroing.
//
// Blocks are whole 2 MB pages, aligned and advised for transparent huge pages (Linux); buffers under 1 MB are
// plain at::empty. A request takes the smallest cached block that is large enough but at most twice its size.
// Freed blocks return to the cache while it holds less than the cap (LSTMKIT_CACHE_MB, default 1024; 0 turns the
// cache off); when a request misses and the cache is over the cap with it, the cache is emptied first, so the
// memory held stays near one call's working set. `release_buffers()` (lstmkit.engines.fused.release_memory in
// Python) empties it. The output y is an ordinary tensor; a trace's records (gates, c_seq) come from the cache and
// return to it when the caller drops them (their storage cannot be resized, as with torch.from_numpy).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace lstmkit {

// Ask Linux to back [p, p + bytes) with 2 MB pages before its first touch; only the 2 MB-aligned interior is
// advised, nothing outside the range. A hint: a no-op where transparent huge pages are off or not on Linux.
inline void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t end = begin + bytes;
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

class BufferCache {
 public:
  static BufferCache& get() {
    static BufferCache* cache = new BufferCache();  // never destroyed: tensors may be freed at interpreter exit
    return *cache;
  }

  void* take(size_t bytes, size_t* block) {
    const size_t want = round_up(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(want);
      if (it != free_.end() && it->first <= 2 * want) {
        void* p = it->second;
        *block = it->first;
        cached_ -= it->first;
        free_.erase(it);
        return p;
      }
      if (cached_ + want > cap_) release_locked();
    }
    *block = want;
    void* p = std::aligned_alloc(kHuge, *block);
    if (p == nullptr) {  // the cache may hold what the system now lacks: give it back and try once more
      release();
      p = std::aligned_alloc(kHuge, *block);
      TORCH_CHECK(p != nullptr, "lstmkit: out of memory allocating ", *block, " bytes");
    }
    advise_huge_pages(p, *block);
    return p;
  }

  void give_back(void* p, size_t block) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + block <= cap_) {
      free_.emplace(block, p);
      cached_ += block;
    } else {
      std::free(p);
    }
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static constexpr size_t kHuge = size_t(2) << 20;
  static size_t round_up(size_t n) { return (std::max<size_t>(n, 1) + kHuge - 1) / kHuge * kHuge; }

  BufferCache() {
    const char* env = std::getenv("LSTMKIT_CACHE_MB");
    cap_ = (env != nullptr ? std::strtoull(env, nullptr, 10) : 1024) << 20;
  }

  void release_locked() {
    for (auto& [size, p] : free_) std::free(p);
    free_.clear();
    cached_ = 0;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // block size -> block
  size_t cached_ = 0, cap_ = 0;
};

// An uninitialised tensor of `sizes` whose memory comes from (and returns to) the cache; under 1 MB it is a plain
// at::empty (glibc serves those from its heap without new mappings, and a 2 MB block each would waste memory).
inline at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const size_t bytes = size_t(n) * options.dtype().itemsize();
  if (bytes < (size_t(1) << 20)) return at::empty(sizes, options);
  size_t block = 0;
  void* p = BufferCache::get().take(bytes, &block);
  return at::from_blob(p, sizes, [block](void* q) { BufferCache::get().give_back(q, block); }, options);
}

}  // namespace lstmkit
