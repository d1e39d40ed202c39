// The evaluator: walks the syntax tree with Jinja's scoping rules (loop iterations, macros,
// {% with %} and blocks get their own frames) and locates every error at its template node.
#include <iomanip>
#include <locale>
#include <sstream>

#include "engine/chat/jinja_interp.h"

namespace tiller::jinja {
namespace {

constexpr int kMaxCallDepth = 200;

FramePtr child_frame(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

// Rethrows errors raised below `pos` without a location of their own, located at `pos`.
template <class F>
auto located(Pos pos, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const JinjaError& e) {
    if (e.located()) throw;
    throw e.at(pos.line, pos.col);
  }
}

}  // namespace

namespace {

// What jinja2's optimizer folds to a constant before code generation.
bool is_const_expr(const Expr& e) {
  switch (e.kind) {
    case ExprKind::Const:
      return true;
    case ExprKind::Unary:
      return is_const_expr(*e.a);
    case ExprKind::Binary:
      return e.name != "and" && e.name != "or" && is_const_expr(*e.a) && is_const_expr(*e.b);
    default:
      return false;
  }
}

}  // namespace

Value Interpreter::lookup(const std::string& name, const FramePtr& frame) const {
  for (const Frame* f = frame.get(); f; f = f->parent.get())
    if (const Value* v = f->find_local(name)) return *v;
  if (const Value* g = find_global(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

std::string Interpreter::render(const Body& body, const DictData& variables) {
  struct BreakCycles {
    Interpreter& in;
    ~BreakCycles() {
      for (auto& f : in.frames_) f->vars.clear();
      for (auto& ns : in.namespaces_) ns->attrs.entries.clear();
    }
  } break_cycles{*this};
  auto root = std::make_shared<Frame>();
  track(root);
  for (const auto& [k, v] : variables.entries) root->set(k, v);
  std::string out;
  exec(body, root, out);
  return out;
}

Flow Interpreter::exec(const Body& body, const FramePtr& frame, std::string& out) {
  for (const auto& s : body) {
    Flow flow = located(s->pos, [&] {
      Flow f = exec_stmt(*s, frame, out);
      check_size(out.size(), "output");
      return f;
    });
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Flow Interpreter::exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out) {
  budget_.step();
  RenderBudget::Level level(budget_);
  switch (s.kind) {
    case StmtKind::Data:
      out += s.text;
      return Flow::Normal;
    case StmtKind::Output: {
      Value v = eval(*s.expr, frame);
      located(s.expr->pos, [&] { out += py_str(v); });
      return Flow::Normal;
    }
    case StmtKind::If:
      for (const auto& b : s.branches)
        if (truthy(eval(*b.test, frame))) return exec(b.body, frame, out);
      return exec(s.else_body, frame, out);
    case StmtKind::For:
      return exec_for(s, frame, out);
    case StmtKind::Set:
      assign(s.target, eval(*s.expr, frame), frame);
      return Flow::Normal;
    case StmtKind::SetBlock: {
      std::string body;
      exec(s.body, child_frame(frame), body);
      Value v = Value::string(std::move(body));
      if (s.filter) v = eval_filter(*s.filter, frame, &v);
      assign(s.target, v, frame);
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      std::string body;
      exec(s.body, child_frame(frame), body);
      Value input = Value::string(std::move(body));
      out += py_str(eval_filter(*s.filter, frame, &input));
      return Flow::Normal;
    }
    case StmtKind::Macro:
      track(frame);
      frame->set(s.name, make_macro(s, frame));
      return Flow::Normal;
    case StmtKind::With: {
      FramePtr inner = child_frame(frame);
      for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], eval(*s.values[i], frame), inner);
      return exec(s.body, inner, out);
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
    case StmtKind::Generation:
      return exec(s.body, frame, out);
  }
  return Flow::Normal;
}

Flow Interpreter::exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
  std::vector<Value> items = located(s.expr->pos, [&] { return iterate(eval(*s.expr, frame)); });
  if (s.test) {  // `for x in xs if cond`: filtered before the loop, so loop.length counts matches
    std::vector<Value> kept;
    for (const Value& item : items) {
      FramePtr f = child_frame(frame);
      assign(s.target, item, f);
      if (truthy(eval(*s.test, f))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    budget_.step(4);  // an iteration makes a frame and a loop object: an empty body still costs it
    FramePtr f = child_frame(frame);
    assign(s.target, items[static_cast<size_t>(i)], f);
    auto loop = std::make_shared<ObjectData>();
    loop->type = ObjectData::Type::Loop;
    DictData& a = loop->attrs;
    a.entries.reserve(11);
    a.entries.emplace_back("index", Value::integer(i + 1));
    a.entries.emplace_back("index0", Value::integer(i));
    a.entries.emplace_back("revindex", Value::integer(n - i));
    a.entries.emplace_back("revindex0", Value::integer(n - i - 1));
    a.entries.emplace_back("first", Value::boolean(i == 0));
    a.entries.emplace_back("last", Value::boolean(i == n - 1));
    a.entries.emplace_back("length", Value::integer(n));
    a.entries.emplace_back("depth", Value::integer(1));
    a.entries.emplace_back("depth0", Value::integer(0));
    a.entries.emplace_back("previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                                             : Value::undefined("there is no previous item"));
    a.entries.emplace_back("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)]
                                                 : Value::undefined("there is no next item"));
    f->set("loop", Value::object(std::move(loop)));
    Flow flow = exec(s.body, f, out);
    if (flow == Flow::Break) break;
  }
  if (n == 0) exec(s.else_body, child_frame(frame), out);
  return Flow::Normal;
}

void Interpreter::assign(const Target& t, const Value& v, const FramePtr& frame) {
  located(t.pos, [&] {
    switch (t.kind) {
      case Target::Kind::Name:
        frame->set(t.name, v);
        return;
      case Target::Kind::NsAttr: {
        Value ns = lookup(t.name, frame);
        if (ns.kind() != Kind::Object || ns.object().type != ObjectData::Type::Namespace)
          throw_runtime("cannot assign attribute on non-namespace object '" + t.name + "'",
                        "create it with {% set " + t.name + " = namespace() %}");
        ns.object().attrs.set(t.attr, v);
        return;
      }
      case Target::Kind::Tuple: {
        std::vector<Value> parts = iterate(v);
        if (parts.size() != t.items.size())
          throw_runtime(parts.size() > t.items.size()
                            ? "too many values to unpack (expected " + std::to_string(t.items.size()) + ")"
                            : "not enough values to unpack (expected " + std::to_string(t.items.size()) +
                                  ", got " + std::to_string(parts.size()) + ")");
        for (size_t i = 0; i < parts.size(); ++i) assign(t.items[i], parts[i], frame);
        return;
      }
    }
  });
}

Value Interpreter::make_macro(const Stmt& s, const FramePtr& frame) {
  const Stmt* macro = &s;
  FramePtr closure = frame;
  return Value::function(s.name, [macro, closure](Interpreter& in, CallArgs& args) -> Value {
    const Stmt& m = *macro;
    if (in.call_depth >= kMaxCallDepth)
      throw_runtime("macro '" + m.name + "' recursed more than " + std::to_string(kMaxCallDepth) + " levels");
    FramePtr f = child_frame(closure);
    const size_t np = m.params.size();
    if (args.args.size() > np && !m.uses_varargs)
      throw_runtime("macro '" + m.name + "' takes not more than " + std::to_string(np) + " argument(s)");
    std::vector<bool> given(np, false);
    for (size_t i = 0; i < np && i < args.args.size(); ++i) {
      f->set(m.params[i], args.args[i]);
      given[i] = true;
    }
    DictData extra_kwargs;
    for (const auto& [k, v] : args.kwargs) {
      size_t i = 0;
      while (i < np && m.params[i] != k) ++i;
      if (i < np) {
        if (given[i]) throw_runtime("macro '" + m.name + "' got multiple values for argument '" + k + "'");
        f->set(k, v);
        given[i] = true;
      } else if (m.uses_kwargs) {
        extra_kwargs.set(k, v);
      } else {
        throw_runtime("macro '" + m.name + "' takes no keyword argument '" + k + "'");
      }
    }
    const size_t first_default = np - m.defaults.size();
    for (size_t i = 0; i < np; ++i) {
      if (given[i]) continue;
      // Defaults are evaluated at call time in the macro's scope, so they can use earlier parameters.
      f->set(m.params[i], i >= first_default ? in.eval(*m.defaults[i - first_default], f)
                                             : Value::undefined("parameter '" + m.params[i] + "' was not provided"));
    }
    if (m.uses_varargs) {
      std::vector<Value> rest;
      for (size_t i = np; i < args.args.size(); ++i) rest.push_back(args.args[i]);
      f->set("varargs", Value::list(std::move(rest), SeqKind::Tuple));
    }
    if (m.uses_kwargs) f->set("kwargs", Value::dict(std::move(extra_kwargs)));
    std::string out;
    ++in.call_depth;
    try {
      in.exec(m.body, f, out);
    } catch (...) {
      --in.call_depth;
      throw;
    }
    --in.call_depth;
    return Value::string(std::move(out));
  });
}

CallArgs Interpreter::eval_args(const CallSpec& spec, const FramePtr& frame) {
  CallArgs args;
  for (const auto& a : spec.args) args.args.push_back(eval(*a, frame));
  for (const auto& k : spec.kwargs) args.kwargs.emplace_back(k.name, eval(*k.value, frame));
  if (spec.dyn_args)
    for (Value& v : iterate(eval(*spec.dyn_args, frame))) args.args.push_back(std::move(v));
  if (spec.dyn_kwargs) {
    Value d = eval(*spec.dyn_kwargs, frame);
    if (!d.is_dict()) throw_runtime("argument after ** must be a mapping, not " + type_name(d));
    for (const auto& [k, v] : d.dict().entries) args.kwargs.emplace_back(k, v);
  }
  return args;
}

Value Interpreter::eval_filter(const Expr& e, const FramePtr& frame, const Value* block_input) {
  budget_.step();
  RenderBudget::Level level(budget_);
  Value input = e.a ? (e.a->kind == ExprKind::Filter ? eval_filter(*e.a, frame, block_input) : eval(*e.a, frame))
                    : *block_input;
  CallArgs args = eval_args(e.call, frame);
  return located(e.pos, [&] { return apply_filter(*this, e.name, input, args); });
}

Value Interpreter::eval_call(const Expr& e, const FramePtr& frame) {
  Value callee = eval(*e.a, frame);
  CallArgs args = eval_args(e.call, frame);
  return located(e.pos, [&] { return call_value(*this, callee, args); });
}

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  budget_.step();
  RenderBudget::Level level(budget_);
  return located(e.pos, [&]() -> Value {
    switch (e.kind) {
      case ExprKind::Const:
        return e.value;
      case ExprKind::Name:
        return lookup(e.name, frame);
      case ExprKind::Getattr:
        return get_attr(eval(*e.a, frame), e.name);
      case ExprKind::Getitem: {
        Value obj = eval(*e.a, frame);
        if (e.b->kind == ExprKind::Slice) {
          const Expr& sl = *e.b;
          auto part = [&](const ExprPtr& p) { return p ? eval(*p, frame) : Value::none(); };
          Value lo = part(sl.a), hi = part(sl.b), st = part(sl.c);
          return slice_value(obj, lo, hi, st);
        }
        return get_item(obj, eval(*e.b, frame));
      }
      case ExprKind::Slice:
        throw_runtime("a slice can only appear inside [ ]");
      case ExprKind::Call:
        return eval_call(e, frame);
      case ExprKind::Filter:
        return eval_filter(e, frame, nullptr);
      case ExprKind::Test: {
        Value input = eval(*e.a, frame);
        CallArgs args = eval_args(e.call, frame);
        return Value::boolean(apply_test(*this, e.name, input, args));
      }
      case ExprKind::Unary:
        return unary_op(e.name, eval(*e.a, frame));
      case ExprKind::Binary: {
        if (e.name == "and") {
          Value l = eval(*e.a, frame);
          return truthy(l) ? eval(*e.b, frame) : l;
        }
        if (e.name == "or") {
          Value l = eval(*e.a, frame);
          return truthy(l) ? l : eval(*e.b, frame);
        }
        Value l = eval(*e.a, frame);
        Value r = eval(*e.b, frame);
        if (e.name == "**" && l.is_number() && l.as_float() < 0 && is_const_expr(*e.a) && !is_const_expr(*e.b)) {
          // jinja2 folds the constant base and writes it unparenthesized: `-3 ** x` runs as -(3 ** x).
          return unary_op("-", binary_op("**", unary_op("-", l), r));
        }
        return binary_op(e.name, l, r);
      }
      case ExprKind::Concat: {
        std::string s;  // `~` is str_join with autoescape off: plain str() of each operand
        for (const auto& item : e.items) {
          s += py_str(eval(*item, frame));
          check_size(s.size(), "string");
        }
        return Value::string(std::move(s));
      }
      case ExprKind::Compare: {
        Value left = eval(*e.items[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.items[i + 1], frame);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") {
            ok = py_equal(left, right);
          } else if (op == "!=") {
            ok = !py_equal(left, right);
          } else if (op == "<") {
            ok = py_less(left, right);
          } else if (op == ">") {
            ok = py_less(right, left);
          } else if (op == "<=") {
            ok = py_less(left, right) || py_equal(left, right);
          } else if (op == ">=") {
            ok = py_less(right, left) || py_equal(left, right);
          } else if (op == "in") {
            ok = py_contains(right, left);
          } else {
            ok = !py_contains(right, left);
          }
          if (!ok) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::CondExpr:
        if (truthy(eval(*e.a, frame))) return eval(*e.b, frame);
        if (e.c) return eval(*e.c, frame);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
      case ExprKind::List:
      case ExprKind::Tuple: {
        std::vector<Value> items;
        for (const auto& item : e.items) items.push_back(eval(*item, frame));
        return Value::list(std::move(items), e.kind == ExprKind::Tuple ? SeqKind::Tuple : SeqKind::List);
      }
      case ExprKind::Dict: {
        DictData d;
        for (const auto& [k, v] : e.pairs) {
          Value key = eval(*k, frame);
          if (!key.is_string())
            throw_unsupported("dict literal with a " + type_name(key) + " key", "only string keys are supported");
          d.set(key.str(), eval(*v, frame));
        }
        return Value::dict(std::move(d));
      }
    }
    throw_runtime("unknown expression");
  });
}

// --- Template -------------------------------------------------------------------------------------

Template::Template(const std::string& source, std::string name) : name_(std::move(name)) {
  try {
    body_ = std::make_shared<const Body>(parse_template(source));
  } catch (const JinjaError& e) {
    throw e.named(name_);
  }
}

std::string Template::render(const DictData& variables, const RenderOptions& options) const {
  Interpreter in(options);
  try {
    return in.render(*body_, variables);
  } catch (const JinjaError& e) {
    throw e.named(name_);
  }
}

std::tm parse_fixed_date(const std::string& text) {
  static const char* const kFormats[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%d %b %Y"};
  for (const char* fmt : kFormats) {
    std::tm t{};
    std::istringstream is(text);
    is.imbue(std::locale::classic());
    is >> std::get_time(&t, fmt);
    if (!is.fail() && is.peek() == EOF) {
      t.tm_isdst = -1;
      std::tm copy = t;
      std::mktime(&copy);  // fills in the weekday and day of the year for %a, %A, %j
      t.tm_wday = copy.tm_wday;
      t.tm_yday = copy.tm_yday;
      return t;
    }
  }
  fail("date '", text, "' is not understood: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or '26 Jul 2024'");
}

}  // namespace tiller::jinja
