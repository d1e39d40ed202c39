// Internal interfaces of the Jinja interpreter: scopes, the evaluator, and Python's operators,
// attribute rules, filters, tests, methods and globals that the evaluator dispatches to.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/chat/jinja.h"
#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_limits.h"

namespace tiller::jinja {

// One scope. Loop iterations, macro calls, {% with %} and block bodies get a child frame;
// lookups walk the parents, assignments write to the innermost frame (Jinja's scoping).
struct Frame {
  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find_local(std::string_view name) const;
  void set(const std::string& name, Value value);
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { Normal, Break, Continue };

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options) : options_(options), budget_(options.limits) {}

  std::string render(const Body& body, const DictData& variables);
  Value eval(const Expr& e, const FramePtr& frame);
  Flow exec(const Body& body, const FramePtr& frame, std::string& out);
  Value lookup(const std::string& name, const FramePtr& frame) const;
  const RenderOptions& options() const { return options_; }

  // Macro calls nest; a runaway recursion stops with an error instead of a crash.
  int call_depth = 0;

  // Values can form reference cycles (a macro stored in the frame it closes over, a namespace
  // holding itself); render() clears what it tracked here when it ends so nothing leaks.
  void track(std::shared_ptr<Frame> frame) { frames_.push_back(std::move(frame)); }
  void track(std::shared_ptr<ObjectData> ns) { namespaces_.push_back(std::move(ns)); }

 private:
  const RenderOptions& options_;
  RenderBudget budget_;  // this thread's running budget while the interpreter lives
  std::vector<std::shared_ptr<Frame>> frames_;
  std::vector<std::shared_ptr<ObjectData>> namespaces_;

  Flow exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out);
  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out);
  void assign(const Target& t, const Value& v, const FramePtr& frame);
  Value eval_call(const Expr& e, const FramePtr& frame);
  CallArgs eval_args(const CallSpec& spec, const FramePtr& frame);
  Value eval_filter(const Expr& e, const FramePtr& frame, const Value* block_input);
  Value make_macro(const Stmt& s, const FramePtr& frame);
};

// --- Python operators and data model (jinja_ops.cpp) ---------------------------------------------

// Python iteration: strings give characters, dicts their keys, undefined nothing. Generators
// (results of select/map/...) are consumed, as in Python.
std::vector<Value> iterate(const Value& v);
// len(v); throws for values without a length.
int64_t py_len(const Value& v);
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value unary_op(const std::string& op, const Value& a);
// hash(v) would succeed (dict keys, unique, `in` a dict).
bool is_hashable(const Value& v);
// Python's `item in container`.
bool py_contains(const Value& container, const Value& item);
// Jinja's sandboxed getattr (obj.name) and getitem (obj[key]) with their fallbacks.
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);
Value call_value(Interpreter& in, const Value& callee, CallArgs& args);
// A fresh generator-like sequence (what Python's select/map/... return).
Value make_iterator(std::vector<Value> items);

// --- Builtins (jinja_filters.cpp, jinja_tests_globals.cpp, jinja_methods.cpp) --------------------

Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);
const Value* find_global(const std::string& name);
// Bound method `obj.name` of a str, dict, list or loop object; Undefined when there is none.
Value get_method(const Value& obj, const std::string& name, bool& found);
// Python's `fmt % args` for strings.
Value percent_format(const Value& fmt, const Value& args);

// Python's float(str) and int(str, base); nullopt where Python raises ValueError.
std::optional<double> parse_py_float(const std::string& text);
std::optional<int64_t> parse_py_int(const std::string& text, int64_t base);

// Binds call arguments to parameter names like a Python signature with defaults.
class ArgReader {
 public:
  ArgReader(const std::string& func, const CallArgs& args, std::vector<std::string> names, size_t required = 0);
  const Value* get(size_t i) const { return values_[i].is_undefined() && !given_[i] ? nullptr : &values_[i]; }
  bool has(size_t i) const { return given_[i]; }
  Value value_or(size_t i, Value def) const { return given_[i] ? values_[i] : std::move(def); }
  bool bool_or(size_t i, bool def) const;
  int64_t int_or(size_t i, int64_t def) const;

 private:
  std::string func_;
  std::vector<std::string> names_;
  std::vector<Value> values_;
  std::vector<bool> given_;
};

}  // namespace tiller::jinja
