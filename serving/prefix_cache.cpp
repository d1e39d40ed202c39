// Prefix cache: hash chain of whole blocks -> pinned KV sequence.
#include "serving/prefix_cache.h"

#include <algorithm>

namespace tiller::serving {

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

PrefixCache::PrefixCache(KvCache& kv, int64_t max_entries) : kv_(kv), max_entries_(std::max<int64_t>(1, max_entries)) {}

PrefixCache::~PrefixCache() { clear(); }

std::vector<uint64_t> PrefixCache::chain_hashes(std::span<const int32_t> tokens, int64_t n_blocks, int32_t adapter) const {
  const int64_t bs = kv_.block_size();
  std::vector<uint64_t> out(static_cast<size_t>(n_blocks));
  uint64_t h = mix(0x51ed2701f3a5c7b9ull, uint64_t(uint32_t(adapter)));  // the adapter starts the chain
  for (int64_t b = 0; b < n_blocks; b++) {
    for (int64_t i = b * bs; i < (b + 1) * bs; i++) h = mix(h, uint64_t(uint32_t(tokens[size_t(i)])));
    out[size_t(b)] = h;
  }
  return out;
}

PrefixCache::Hit PrefixCache::acquire(std::span<const int32_t> tokens, int64_t limit, int32_t adapter) {
  lookups_++;
  const int64_t bs = kv_.block_size();
  const int64_t max_blocks = std::min<int64_t>(int64_t(tokens.size()), limit) / bs;
  if (max_blocks <= 0 || lru_.empty()) return {};
  const std::vector<uint64_t> hashes = chain_hashes(tokens, max_blocks, adapter);
  // Hash chains make prefixes nested: the first miss ends the search.
  const Where* best = nullptr;
  for (int64_t b = 0; b < max_blocks; b++) {
    auto it = index_.find(hashes[size_t(b)]);
    if (it == index_.end()) break;
    best = &it->second;
  }
  if (!best) return {};
  const EntryList::iterator entry = best->entry;
  const int64_t length = best->blocks * bs;
  // A hash collision must never hand out another prompt's keys.
  if (entry->adapter != adapter || !std::equal(tokens.begin(), tokens.begin() + length, entry->tokens.begin())) return {};
  lru_.splice(lru_.begin(), lru_, entry);
  const SeqId seq = kv_.fork(entry->seq);
  if (kv_.length(seq) > length) kv_.truncate(seq, length);
  hits_++;
  tokens_reused_ += uint64_t(length);
  return {seq, length};
}

void PrefixCache::insert(SeqId seq, std::span<const int32_t> tokens, int32_t adapter) {
  const int64_t bs = kv_.block_size();
  const int64_t n_blocks = std::min<int64_t>(int64_t(tokens.size()), kv_.length(seq)) / bs;
  if (n_blocks <= 0) return;
  const std::vector<uint64_t> hashes = chain_hashes(tokens, n_blocks, adapter);
  if (auto it = index_.find(hashes.back()); it != index_.end()) {  // already cached whole
    lru_.splice(lru_.begin(), lru_, it->second.entry);
    return;
  }
  // Entries this one extends are redundant: their blocks are its first blocks.
  std::vector<EntryList::iterator> covered;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const size_t n = it->hashes.size();
    if (n <= hashes.size() && it->hashes.back() == hashes[n - 1]) covered.push_back(it);
  }
  for (auto it : covered) drop(it);
  while (int64_t(lru_.size()) >= max_entries_) drop(std::prev(lru_.end()));

  Entry e{kv_.fork(seq), adapter, std::vector<int32_t>(tokens.begin(), tokens.begin() + n_blocks * bs), hashes};
  kv_.truncate(e.seq, n_blocks * bs);
  lru_.push_front(std::move(e));
  for (int64_t b = 0; b < n_blocks; b++) index_[hashes[size_t(b)]] = Where{lru_.begin(), b + 1};
}

void PrefixCache::drop(EntryList::iterator it) {
  for (size_t b = 0; b < it->hashes.size(); b++) {
    auto found = index_.find(it->hashes[b]);
    if (found == index_.end() || found->second.entry != it) continue;
    index_.erase(found);
    // Another entry may share this prefix; point the hash at it instead.
    for (auto other = lru_.begin(); other != lru_.end(); ++other) {
      if (other != it && other->hashes.size() > b && other->hashes[b] == it->hashes[b]) {
        index_[it->hashes[b]] = Where{other, int64_t(b) + 1};
        break;
      }
    }
  }
  kv_.release(it->seq);
  lru_.erase(it);
}

bool PrefixCache::reclaim(int64_t free_wanted) {
  while (kv_.free_blocks() < free_wanted && !lru_.empty()) drop(std::prev(lru_.end()));
  return kv_.free_blocks() >= free_wanted;
}

int64_t PrefixCache::reclaimable_blocks() const {
  // A block is the cache's alone when every reference to it comes from an entry.
  std::unordered_map<int32_t, int32_t> refs;
  for (const Entry& e : lru_)
    for (int32_t b : kv_.block_table(e.seq)) refs[b]++;
  int64_t n = 0;
  for (const auto& [block, count] : refs) n += kv_.block_refcount(block) == count ? 1 : 0;
  return n;
}

void PrefixCache::clear() {
  while (!lru_.empty()) drop(std::prev(lru_.end()));
}

}  // namespace tiller::serving
