// A Jinja2 interpreter for chat templates, configured as HF transformers configures jinja2:
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), with HF's
// tojson, raise_exception and strftime_now. Parse once, render many times (render is const and
// thread-safe). Constructs outside the supported subset raise JinjaError instead of rendering
// something different from Python.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "engine/chat/jinja_error.h"
#include "engine/chat/jinja_value.h"

namespace tiller::jinja {

struct Stmt;

// Bounds on one render, so a template (or the data it is given) that would loop, recurse or grow
// without end stops with a Runtime JinjaError instead of hanging or exhausting memory. The
// defaults are far above what published chat templates need (they render a long conversation in
// a few thousand steps and copy the messages a few times).
struct RenderLimits {
  int64_t max_steps = 5'000'000;       // statements run + expressions evaluated (a loop iteration: 4), < 1 s
  int max_depth = 500;                 // statements and expressions nested at run time (macros included)
  size_t max_value_bytes = 32u << 20;  // the output, and any one string or list (16 bytes an item) built
  size_t max_total_bytes = 512u << 20; // all strings and lists built during the render together
};

struct RenderOptions {
  // The time strftime_now() formats; unset means the current local time, as HF does.
  std::optional<std::tm> now;
  RenderLimits limits;
};

class Template {
 public:
  // Parses `source`; throws JinjaError (Syntax or Unsupported) with the line and column.
  // `name` only labels error messages.
  explicit Template(const std::string& source, std::string name = {});

  // Renders with the given top-level variables. Throws JinjaError (Runtime, Raised, Unsupported).
  std::string render(const DictData& variables, const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
  std::string name_;
};

// Parses a date for RenderOptions::now: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS]" or "26 Jul 2024".
// Throws tiller::Error naming the accepted forms.
std::tm parse_fixed_date(const std::string& text);

}  // namespace tiller::jinja
