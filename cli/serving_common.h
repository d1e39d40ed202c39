// What `tiller serve` and `tiller batch` share: scheduler flags, their defaults, and the
// start-up summary of the settings in force.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/common.h"
#include "serving/scheduler.h"
#include "serving/served_model.h"

namespace tiller::cli {

// --max-batch, --ctx, --kv-memory, --batch-tokens, --no-prefix-cache, --chat-template
std::vector<Flag> scheduler_flags();

// Scheduler settings from the flags. The KV cache defaults to room for max-batch sequences of
// ctx tokens, capped at a quarter of the machine's memory on the CPU; --kv-memory overrides.
serving::SchedulerOptions scheduler_options(const Args& args, const Model& model, int64_t max_queue);

// --route-by-language, --route LANG=NAME
std::vector<Flag> routing_flags();

// The served model's description (name: --served-model-name or the folder's name), with the
// session's per-request profiles, the default profile ("default") and the language routes.
serving::ServedModel served_model(const Args& args, const Session& session, int64_t ctx);

// The scheduler, applying the session's per-request profiles.
std::unique_ptr<serving::Scheduler> make_scheduler(const Args& args, Session& session, int64_t max_queue);

// The profiles and language routes in force, for stderr at start-up ("" without profiles).
std::string routing_summary(const serving::ServedModel& model);

// One line per setting, for stderr at start-up.
std::string settings_summary(const serving::Scheduler& scheduler, const Session& session);

}  // namespace tiller::cli
