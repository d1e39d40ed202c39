// Jinja's built-in tests (`x is defined`, `x is string`, ...) and the global functions HF's
// environment provides (range, dict, namespace, raise_exception, strftime_now).
#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <locale>
#include <set>
#include <sstream>
#include <unordered_map>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {
namespace {

using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

const Value& one_arg(const char* name, CallArgs& a) {
  if (a.args.size() + a.kwargs.size() != 1) throw_runtime(std::string("test '") + name + "' takes one argument");
  return a.args.empty() ? a.kwargs[0].second : a.args[0];
}

void no_args(const char* name, CallArgs& a) {
  if (!a.args.empty() || !a.kwargs.empty()) throw_runtime(std::string("test '") + name + "' takes no arguments");
}

bool t_defined(Interpreter&, const Value& v, CallArgs& a) { return no_args("defined", a), !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs& a) { return no_args("undefined", a), v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs& a) { return no_args("none", a), v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs& a) { return no_args("boolean", a), v.kind() == Kind::Bool; }
bool t_true(Interpreter&, const Value& v, CallArgs& a) { return no_args("true", a), v.kind() == Kind::Bool && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs& a) { return no_args("false", a), v.kind() == Kind::Bool && !v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs& a) { return no_args("integer", a), v.kind() == Kind::Int; }
bool t_float(Interpreter&, const Value& v, CallArgs& a) { return no_args("float", a), v.kind() == Kind::Float; }
bool t_number(Interpreter&, const Value& v, CallArgs& a) { return no_args("number", a), v.is_number(); }
bool t_string(Interpreter&, const Value& v, CallArgs& a) { return no_args("string", a), v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs& a) { return no_args("mapping", a), v.is_dict(); }
bool t_escaped(Interpreter&, const Value& v, CallArgs& a) { return no_args("escaped", a), v.is_markup(); }

bool t_callable(Interpreter&, const Value& v, CallArgs& a) {
  no_args("callable", a);
  // jinja2's Undefined and LoopContext define __call__.
  return v.kind() == Kind::Function || v.is_undefined() ||
         (v.kind() == Kind::Object && v.object().type == ObjectData::Type::Loop);
}

bool t_sequence(Interpreter&, const Value& v, CallArgs& a) {
  no_args("sequence", a);  // len() and __getitem__ both exist
  if (v.is_undefined() || v.is_string() || v.is_dict()) return true;
  if (!v.is_list()) return false;
  SeqKind k = v.seq_kind();
  return k == SeqKind::List || k == SeqKind::Tuple || k == SeqKind::Range;
}

bool t_iterable(Interpreter&, const Value& v, CallArgs& a) {
  no_args("iterable", a);
  return v.is_undefined() || v.is_string() || v.is_dict() || v.is_list();
}

bool parity(const Value& v, const char* name, int64_t want) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) throw_runtime(std::string("test '") + name + "' needs a number, not " + type_name(v));
  Value m = binary_op("%", v, Value::integer(2));
  return py_equal(m, Value::integer(want));
}
bool t_odd(Interpreter&, const Value& v, CallArgs& a) { return no_args("odd", a), parity(v, "odd", 1); }
bool t_even(Interpreter&, const Value& v, CallArgs& a) { return no_args("even", a), parity(v, "even", 0); }

bool t_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  return py_equal(binary_op("%", v, one_arg("divisibleby", a)), Value::integer(0));
}

bool t_lower(Interpreter&, const Value& v, CallArgs& a) { return no_args("lower", a), py_is_case(py_str(v), false); }
bool t_upper(Interpreter&, const Value& v, CallArgs& a) { return no_args("upper", a), py_is_case(py_str(v), true); }

bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return py_equal(v, one_arg("eq", a)); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !py_equal(v, one_arg("ne", a)); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return py_less(v, one_arg("lt", a)); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return py_less(one_arg("gt", a), v); }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return !py_less(one_arg("le", a), v); }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return !py_less(v, one_arg("ge", a)); }
bool t_in(Interpreter&, const Value& v, CallArgs& a) { return py_contains(one_arg("in", a), v); }

bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value& o = one_arg("sameas", a);
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::None:
    case Kind::Undefined:
      return true;
    case Kind::Bool:
      return v.as_bool() == o.as_bool();
    case Kind::Int:  // CPython caches small ints; larger equal ints are distinct objects
      return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::List:
    case Kind::Dict:
    case Kind::Object:
    case Kind::Function:
      return v.identity() == o.identity();
    default:
      throw_unsupported("'sameas' test on " + type_name(v) + " values", "object identity of strings is a CPython detail");
  }
}

bool t_filter(Interpreter&, const Value& v, CallArgs& a) { return no_args("filter", a), v.is_string() && filter_exists(v.str()); }
bool t_test(Interpreter&, const Value& v, CallArgs& a) { return no_args("test", a), v.is_string() && test_exists(v.str()); }

const std::unordered_map<std::string, TestFn>& test_table() {
  static const std::unordered_map<std::string, TestFn> table = {
      {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},         {"boolean", t_boolean},
      {"true", t_true},         {"false", t_false},         {"integer", t_integer},   {"float", t_float},
      {"number", t_number},     {"string", t_string},       {"mapping", t_mapping},   {"sequence", t_sequence},
      {"iterable", t_iterable}, {"callable", t_callable},   {"odd", t_odd},           {"even", t_even},
      {"divisibleby", t_divisibleby}, {"lower", t_lower},   {"upper", t_upper},       {"escaped", t_escaped},
      {"sameas", t_sameas},     {"in", t_in},               {"filter", t_filter},     {"test", t_test},
      {"==", t_eq},             {"eq", t_eq},               {"equalto", t_eq},        {"!=", t_ne},
      {"ne", t_ne},             {"<", t_lt},                {"lt", t_lt},             {"lessthan", t_lt},
      {"<=", t_le},             {"le", t_le},               {">", t_gt},              {"gt", t_gt},
      {"greaterthan", t_gt},    {">=", t_ge},               {"ge", t_ge},
  };
  return table;
}

// --- globals ------------------------------------------------------------------------------------

Value g_range(Interpreter&, CallArgs& a) {
  if (!a.kwargs.empty()) throw_runtime("range() takes no keyword arguments");
  if (a.args.empty() || a.args.size() > 3) throw_runtime("range expected 1 to 3 arguments");
  for (const Value& v : a.args)
    if (!v.is_integral()) throw_runtime(quoted_type(v) + " object cannot be interpreted as an integer");
  int64_t start = 0, stop, step = 1;
  if (a.args.size() == 1) {
    stop = a.args[0].as_int();
  } else {
    start = a.args[0].as_int();
    stop = a.args[1].as_int();
    if (a.args.size() == 3) step = a.args[2].as_int();
  }
  if (step == 0) throw_runtime("range() arg 3 must not be zero");
  ListData d;
  d.kind = SeqKind::Range;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (d.items.size() >= 100000)  // jinja2.sandbox.MAX_RANGE
      throw_runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    d.items.push_back(Value::integer(i));
  }
  d.range_start = start;
  d.range_stop = stop;
  d.range_step = step;
  return Value::list(std::move(d));
}

// dict(*args, **kwargs) as Python builds it: from a mapping or (key, value) pairs, then keywords.
DictData build_dict(const char* func, CallArgs& a) {
  if (a.args.size() > 1) throw_runtime(std::string(func) + "() expected at most 1 positional argument");
  DictData d;
  if (!a.args.empty()) {
    const Value& src = a.args[0];
    if (src.is_dict()) {
      d = src.dict();
    } else {
      for (const Value& pair : iterate(src)) {
        if (!pair.is_list() || pair.items().size() != 2 || !pair.items()[0].is_string())
          throw_runtime(std::string(func) + "(): expected (str, value) pairs");
        d.set(pair.items()[0].str(), pair.items()[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kwargs) d.set(k, v);
  return d;
}

Value g_dict(Interpreter&, CallArgs& a) { return Value::dict(build_dict("dict", a)); }

Value g_namespace(Interpreter& in, CallArgs& a) {
  auto ns = std::make_shared<ObjectData>();
  ns->type = ObjectData::Type::Namespace;
  ns->attrs = build_dict("namespace", a);
  in.track(ns);
  return Value::object(std::move(ns));
}

Value g_raise_exception(Interpreter&, CallArgs& a) {
  ArgReader r("raise_exception", a, {"message"}, 1);
  throw JinjaError(JinjaError::Kind::Raised, py_str(*r.get(0)));
}

Value g_strftime_now(Interpreter& in, CallArgs& a) {
  ArgReader r("strftime_now", a, {"format"}, 1);
  if (!r.get(0)->is_string()) throw_runtime("strftime() argument 1 must be str, not " + type_name(*r.get(0)));
  std::tm tm{};
  long micros = 0;
  if (in.options().now) {
    tm = *in.options().now;
  } else {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    localtime_r(&t, &tm);
    micros = static_cast<long>(std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000);
  }
  // datetime.now() is naive: Python prints %z and %Z as empty and supports %f (microseconds).
  std::string fmt;
  const std::string& in_fmt = r.get(0)->str();
  for (size_t i = 0; i < in_fmt.size(); ++i) {
    if (in_fmt[i] == '%' && i + 1 < in_fmt.size()) {
      char c = in_fmt[i + 1];
      if (c == 'z' || c == 'Z') {
        ++i;
        continue;
      }
      if (c == 'f') {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%06ld", micros);
        fmt += buf;
        ++i;
        continue;
      }
      fmt += in_fmt.substr(i, 2);
      ++i;
      continue;
    }
    fmt.push_back(in_fmt[i]);
  }
  // The "C" locale's names (Jul, Friday), as Python prints them unless LC_TIME was changed.
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << std::put_time(&tm, fmt.c_str());
  return Value::string(os.str());
}

Value g_refused(const std::string& name) {
  return Value::function(name, [name](Interpreter&, CallArgs&) -> Value {
    throw_unsupported(name + "()", "this global is not implemented by this interpreter");
  });
}

}  // namespace

bool test_exists(const std::string& name) { return test_table().count(name) > 0; }

bool apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto it = test_table().find(name);
  if (it == test_table().end()) throw_runtime("no test named '" + name + "'", "jinja2 has no such test either");
  return it->second(in, input, args);
}

const Value* find_global(const std::string& name) {
  static const std::unordered_map<std::string, Value> globals = {
      {"range", Value::function("range", g_range)},
      {"dict", Value::function("dict", g_dict)},
      {"namespace", Value::function("namespace", g_namespace)},
      {"raise_exception", Value::function("raise_exception", g_raise_exception)},
      {"strftime_now", Value::function("strftime_now", g_strftime_now)},
      {"cycler", g_refused("cycler")},
      {"joiner", g_refused("joiner")},
      {"lipsum", g_refused("lipsum")},
  };
  auto it = globals.find(name);
  return it == globals.end() ? nullptr : &it->second;
}

}  // namespace tiller::jinja
