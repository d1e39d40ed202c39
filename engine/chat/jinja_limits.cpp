// The per-render budget: steps, run-time nesting, and the bytes of strings and lists built.
#include "engine/chat/jinja_limits.h"

#include <string>

namespace tiller::jinja {

namespace {

thread_local RenderBudget* running = nullptr;
thread_local int walking = 0;

std::string mib(size_t bytes) {
  return bytes % (1u << 20) == 0 ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes) + " bytes";
}

const char* const kHint =
    "a chat template that loops, recurses or grows without end, or one given far more data than a conversation holds";

}  // namespace

RenderBudget::RenderBudget(const RenderLimits& limits) : limits_(limits), previous_(running) { running = this; }

RenderBudget::~RenderBudget() { running = previous_; }

void RenderBudget::too_many_steps() const {
  throw_runtime("the template ran more than " + std::to_string(limits_.max_steps) +
                    " steps (statements and expressions) and was stopped",
                kHint);
}

void RenderBudget::too_deep() const {
  throw_runtime("the template nested statements, expressions or macro calls more than " +
                    std::to_string(limits_.max_depth) + " levels deep while rendering",
                kHint);
}

ValueWalk::ValueWalk() {
  if (++walking > kMaxValueDepth + 24) {
    --walking;
    throw_runtime("a value nested more than " + std::to_string(kMaxValueDepth) +
                      " levels deep (or containing itself through a namespace) cannot be printed or compared",
                  kHint);
  }
}

ValueWalk::~ValueWalk() { --walking; }

void check_size(size_t bytes, const char* what) {
  if (running && bytes > running->limits_.max_value_bytes) {
    throw_runtime(std::string("the template built ") + (bytes == SIZE_MAX ? "an oversized " : "a ") + what +
                      (bytes == SIZE_MAX ? "" : " of " + std::to_string(bytes) + " bytes") + ", more than the " +
                      mib(running->limits_.max_value_bytes) + " one value may hold",
                  kHint);
  }
}

void check_size(size_t count, size_t each, const char* what) {
  check_size(each != 0 && count > SIZE_MAX / each ? SIZE_MAX : count * each, what);
}

void charge_built(size_t bytes) {
  if (!running) return;
  running->built_ += bytes;
  if (running->built_ > running->limits_.max_total_bytes) {
    running->built_ = 0;  // the error unwinds through code that may still build its message
    throw_runtime("the template built more than " + mib(running->limits_.max_total_bytes) +
                      " of strings and lists in one render and was stopped",
                  kHint);
  }
}

}  // namespace tiller::jinja
