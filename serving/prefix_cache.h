// Cross-request prefix caching: the full KV blocks of earlier prompts, found again by a hash chain
// of their tokens, so a shared system prompt or few-shot scaffold is prefilled once.
//
// Each entry is a pinned KvCache sequence holding whole blocks of one earlier prompt. A request
// whose prompt starts with the same blocks forks that sequence (KvCache::fork shares the blocks,
// nothing is copied) and prefills only the rest. Only whole blocks are cached, so no later write
// ever lands in a shared block. Entries are dropped least recently used first when the scheduler
// needs their blocks back.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/kv_cache.h"

namespace tiller::serving {

class PrefixCache {
 public:
  PrefixCache(KvCache& kv, int64_t max_entries);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Hit {
    SeqId seq = -1;       // a new sequence holding the first `length` tokens (-1: no hit)
    int64_t length = 0;   // a multiple of the block size
  };
  // The longest cached run of whole blocks that starts `tokens`, at most `limit` tokens long,
  // computed with the same adapter (a steered and an unsteered prompt never share keys).
  Hit acquire(std::span<const int32_t> tokens, int64_t limit, int32_t adapter = 0);

  // Remembers the whole blocks of `seq`, whose cache holds `tokens` (at least), computed with `adapter`.
  void insert(SeqId seq, std::span<const int32_t> tokens, int32_t adapter = 0);

  // Drops entries, least recently used first, until the cache has `free_wanted` free blocks or
  // no entry is left. Returns whether the target was reached.
  bool reclaim(int64_t free_wanted);
  // Blocks held by the cache alone (freed if every entry were dropped).
  int64_t reclaimable_blocks() const;
  void clear();

  int64_t entries() const { return int64_t(lru_.size()); }
  uint64_t hits() const { return hits_; }
  uint64_t lookups() const { return lookups_; }
  uint64_t tokens_reused() const { return tokens_reused_; }

 private:
  struct Entry {
    SeqId seq;
    int32_t adapter;
    std::vector<int32_t> tokens;   // whole blocks only
    std::vector<uint64_t> hashes;  // [blocks] chained hash of blocks 0..i
  };
  using EntryList = std::list<Entry>;  // front: most recently used
  struct Where {
    EntryList::iterator entry;
    int64_t blocks;  // the hash covers the entry's first `blocks` blocks
  };

  std::vector<uint64_t> chain_hashes(std::span<const int32_t> tokens, int64_t n_blocks, int32_t adapter) const;
  void drop(EntryList::iterator it);

  KvCache& kv_;
  int64_t max_entries_;
  EntryList lru_;
  std::unordered_map<uint64_t, Where> index_;
  uint64_t hits_ = 0, lookups_ = 0, tokens_reused_ = 0;
};

}  // namespace tiller::serving
