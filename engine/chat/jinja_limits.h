// Internal: the running render's RenderLimits and what it has used. A render runs on one thread,
// so the code that builds values (operators, filters, string methods, Value itself) reaches its
// budget through a thread-local pointer instead of an extra argument; outside a render nothing is
// limited. Every refusal is a Runtime JinjaError that names the limit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/chat/jinja.h"

namespace tiller::jinja {

class RenderBudget {
 public:
  explicit RenderBudget(const RenderLimits& limits);  // becomes this thread's running budget
  ~RenderBudget();                                    // restores the one before
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  // One statement run or expression evaluated (`n`: work that costs as much as n of them).
  void step(int64_t n = 1) {
    if ((steps_ += n) > limits_.max_steps) too_many_steps();
  }
  // One level of run-time nesting (a statement inside a block, an operand, a macro call), held
  // for as long as the Level lives.
  struct Level {
    RenderBudget& b;
    explicit Level(RenderBudget& budget) : b(budget) {
      if (++b.depth_ > b.limits_.max_depth) b.too_deep();
    }
    ~Level() { --b.depth_; }
  };

  const RenderLimits& limits() const { return limits_; }
  int64_t steps() const { return steps_; }

 private:
  friend void check_size(size_t, const char*);
  friend void charge_built(size_t);
  [[noreturn]] void too_many_steps() const;
  [[noreturn]] void too_deep() const;

  const RenderLimits& limits_;
  RenderBudget* previous_;
  int64_t steps_ = 0;
  int depth_ = 0;
  size_t built_ = 0;  // bytes of strings and lists built so far
};

// Before building a string of `bytes` (or a list of bytes / 16 items): refuses it when it passes
// the running render's max_value_bytes. `what` names it in the error ("string", "output", ...).
void check_size(size_t bytes, const char* what);
// check_size(count * each) without overflow.
void check_size(size_t count, size_t each, const char* what);
// A string or list of `bytes` was built: counts toward max_total_bytes.
void charge_built(size_t bytes);

// Lists and dicts may nest this deep (JSON data passed in may nest 512 levels); deeper values
// are refused when built, so printing, comparing or freeing one cannot exhaust the stack.
inline constexpr int kMaxValueDepth = 1000;

// Held by every function that walks a value recursively (printing, comparing, JSON): namespaces
// are mutable, so a value can reach itself or a long chain of them through one.
struct ValueWalk {
  ValueWalk();
  ~ValueWalk();
  ValueWalk(const ValueWalk&) = delete;
  ValueWalk& operator=(const ValueWalk&) = delete;
};

// What Value charges for a list item and for any value's own allocation.
inline constexpr size_t kItemBytes = 16;
inline constexpr size_t kValueOverhead = 64;

}  // namespace tiller::jinja
