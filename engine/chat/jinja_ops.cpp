// Python's operators and data model as Jinja exposes them: iteration, len, arithmetic, `in`,
// attribute/item lookup with the sandbox's fallbacks, slicing and calls; plus argument binding
// and Python's str-to-number parsing that the builtins share.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {

const Value* Frame::find_local(std::string_view name) const {
  for (const auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Frame::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

Value make_iterator(std::vector<Value> items) { return Value::list(std::move(items), SeqKind::Iterator); }

namespace {

[[noreturn]] void type_error(const std::string& msg) { throw_runtime(msg); }

std::vector<Value> string_chars(const Value& s) {
  std::vector<Value> out;
  const std::string& text = s.str();
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8_char_len(text, i);
    out.push_back(Value::string(text.substr(i, n)));
    i += n;
  }
  return out;
}

[[noreturn]] void overflow() {
  throw_unsupported("integer arithmetic beyond 64 bits", "Python integers are unbounded; this interpreter's are not");
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t checked_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

// Python's float floor division and modulo (the result takes the divisor's sign).
void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value::string("", seq.is_markup()) : Value::list({}, seq.seq_kind());
  if (seq.is_string()) {
    check_size(static_cast<size_t>(n), seq.str().size(), "string");
    const size_t total = static_cast<size_t>(n) * seq.str().size();
    std::string out = seq.str();
    out.reserve(total);
    while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));  // doubling copies
    return Value::string(std::move(out), seq.is_markup());
  }
  check_size(static_cast<size_t>(n), seq.items().size() * kItemBytes, "list");
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.seq_kind());
}

bool is_plain_sequence(const Value& v) {
  return v.is_list() && (v.seq_kind() == SeqKind::List || v.seq_kind() == SeqKind::Tuple);
}

std::string undefined_attr_hint(const Value& obj, const std::string& name) {
  std::string hint = quoted_type(obj);
  hint.insert(hint.size() - 1, " object");
  hint += " has no attribute '";
  hint += name;
  hint += '\'';
  return hint;
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return {};
    case Kind::String:
      return string_chars(v);
    case Kind::List: {
      if (v.seq_kind() != SeqKind::Iterator) return v.items();
      ListData& st = v.iterator_state();
      std::vector<Value> rest(st.items.begin() + static_cast<ptrdiff_t>(st.consumed), st.items.end());
      st.consumed = st.items.size();
      return rest;
    }
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& e : v.dict().entries) keys.push_back(Value::string(e.first));
      return keys;
    }
    default:
      type_error("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return 0;
    case Kind::String:
      return static_cast<int64_t>(utf8_length(v.str()));
    case Kind::List:
      if (v.seq_kind() == SeqKind::Iterator) type_error("object of type 'generator' has no len(); use |list first");
      return static_cast<int64_t>(v.items().size());
    case Kind::Dict:
      return static_cast<int64_t>(v.dict().entries.size());
    default:
      type_error("object of type '" + type_name(v) + "' has no len()");
  }
}

Value unary_op(const std::string& op, const Value& a) {
  if (op == "not") return Value::boolean(!truthy(a));
  if (a.is_undefined()) fail_undefined(a);
  if (!a.is_number()) type_error("bad operand type for unary " + op + ": '" + type_name(a) + "'");
  if (op == "+") return a.kind() == Kind::Bool ? Value::integer(a.as_int()) : a;
  if (a.kind() == Kind::Float) return Value::number(-a.as_float());
  return Value::integer(checked_sub(int64_t{0}, a.as_int()));
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (op == "%" && a.is_string()) return percent_format(a, b);  // Undefined counts as a mapping there
  if (b.is_undefined()) fail_undefined(b);
  auto unsupported = [&]() -> Value {
    type_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  };
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  if (op == "+") {
    if (ints) {
      return Value::integer(checked_add(a.as_int(), b.as_int()));
    }
    if (numbers) return Value::number(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      check_size(a.str().size() + b.str().size(), "string");
      // markupsafe: adding plain text to Markup escapes the plain side.
      if (a.is_markup() || b.is_markup()) {
        std::string l = a.is_markup() ? a.str() : html_escape_text(a.str());
        std::string r = b.is_markup() ? b.str() : html_escape_text(b.str());
        return Value::string(l + r, true);
      }
      return Value::string(a.str() + b.str());
    }
    if (is_plain_sequence(a) && is_plain_sequence(b) && a.seq_kind() == b.seq_kind()) {
      check_size(a.items().size() + b.items().size(), kItemBytes, "list");
      std::vector<Value> out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return Value::list(std::move(out), a.seq_kind());
    }
    if (a.is_list() || a.is_string())
      type_error("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
    return unsupported();
  }
  if (op == "-") {
    if (ints) {
      return Value::integer(checked_sub(a.as_int(), b.as_int()));
    }
    if (numbers) return Value::number(a.as_float() - b.as_float());
    return unsupported();
  }
  if (op == "*") {
    if (ints) {
      return Value::integer(checked_mul(a.as_int(), b.as_int()));
    }
    if (numbers) return Value::number(a.as_float() * b.as_float());
    if ((a.is_string() || is_plain_sequence(a)) && b.is_integral()) return repeat(a, b.as_int());
    if ((b.is_string() || is_plain_sequence(b)) && a.is_integral()) return repeat(b, a.as_int());
    return unsupported();
  }
  if (op == "/") {
    if (!numbers) return unsupported();
    if (b.as_float() == 0.0) type_error("division by zero");
    return Value::number(a.as_float() / b.as_float());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return percent_format(a, b);
    if (!numbers) return unsupported();
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) type_error("integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) overflow();
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        q -= 1;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    if (b.as_float() == 0.0) type_error("float division or modulo by zero");
    double fd, fm;
    float_divmod(a.as_float(), b.as_float(), fd, fm);
    return Value::number(op == "//" ? fd : fm);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1) r = checked_mul(r, base);
        e >>= 1;
        if (e > 0) base = checked_mul(base, base);
      }
      return Value::integer(r);
    }
    if (!numbers) return unsupported();
    if (a.as_float() == 0.0 && b.as_float() < 0) type_error("0.0 cannot be raised to a negative power");
    double r = std::pow(a.as_float(), b.as_float());
    if (std::isinf(r) && std::isfinite(a.as_float()) && std::isfinite(b.as_float()))
      type_error("(34, 'Numerical result out of range')");
    if (std::isnan(r) && !std::isnan(a.as_float()) && !std::isnan(b.as_float()))
      throw_unsupported("complex result of '**'", "Python would return a complex number");
    return Value::number(r);
  }
  throw_runtime("unknown operator " + op);
}

bool is_hashable(const Value& v) {
  ValueWalk walk;
  if (v.is_dict() || v.kind() == Kind::Object) return false;
  if (!v.is_list()) return true;
  switch (v.seq_kind()) {
    case SeqKind::Range:
    case SeqKind::Iterator:
      return true;
    case SeqKind::Tuple:
      for (const Value& x : v.items())
        if (!is_hashable(x)) return false;
      return true;
    default:
      return false;
  }
}

bool py_contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::Undefined:
      return false;
    case Kind::String:
      if (!item.is_string())
        type_error("'in <string>' requires string as left operand, not " + type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case Kind::Dict:
      if (!is_hashable(item)) type_error("unhashable type: '" + type_name(item) + "'");
      return item.is_string() && container.dict().find(item.str()) != nullptr;
    case Kind::List:
      if ((container.seq_kind() == SeqKind::DictKeys || container.seq_kind() == SeqKind::DictItems) &&
          !is_hashable(item))
        type_error("unhashable type: '" + type_name(item) + "'");  // dict views look the item up by hash
      for (const Value& v : iterate(container))
        if (py_equal(v, item)) return true;
      return false;
    default:
      type_error("argument of type '" + type_name(container) + "' is not iterable");
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.kind() == Kind::Object) {
    if (const Value* v = obj.object().attrs.find(name)) return *v;
  }
  bool found = false;
  Value method = get_method(obj, name, found);
  if (found) return method;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find(name)) return *v;
  }
  return Value::undefined(undefined_attr_hint(obj, name));
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  switch (obj.kind()) {
    case Kind::Dict:
      if (key.is_string()) {
        if (const Value* v = obj.dict().find(key.str())) return *v;
      }
      break;
    case Kind::List: {
      SeqKind k = obj.seq_kind();
      if (key.is_integral() && k != SeqKind::Iterator && k != SeqKind::DictItems && k != SeqKind::DictKeys &&
          k != SeqKind::DictValues) {
        const auto& items = obj.items();
        int64_t i = key.as_int();
        int64_t n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
        return Value::undefined(type_name(obj) + " object has no element " + std::to_string(key.as_int()));
      }
      break;
    }
    case Kind::String:
      if (key.is_integral()) {
        std::u32string s = utf8_decode(obj.str());
        int64_t i = key.as_int();
        int64_t n = static_cast<int64_t>(s.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          std::string c;
          utf8_append(c, s[static_cast<size_t>(i)]);
          return Value::string(std::move(c), obj.is_markup());
        }
        return Value::undefined("str object has no element " + std::to_string(key.as_int()));
      }
      break;
    case Kind::Object:
      if (key.is_string()) return get_attr(obj, key.str());
      break;
    default:
      break;
  }
  if (key.is_string()) {
    // jinja2 falls back to the attribute of the same name (dict.items, str.upper, ...).
    bool found = false;
    Value method = get_method(obj, key.str(), found);
    if (found) return method;
    return Value::undefined(obj.is_dict() ? "'dict object' has no attribute '" + key.str() + "'"
                                          : undefined_attr_hint(obj, key.str()));
  }
  std::string hint = quoted_type(obj);
  hint.insert(hint.size() - 1, " object");
  hint += " has no element ";
  hint += py_repr(key);
  return Value::undefined(hint);
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  auto index_arg = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_integral()) type_error(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  std::optional<int64_t> lo = index_arg(start, "start"), hi = index_arg(stop, "stop"), st = index_arg(step, "step");
  int64_t s = st.value_or(1);
  if (s == 0) type_error("slice step cannot be zero");
  bool is_str = obj.is_string();
  bool is_seq = obj.is_list() && (obj.seq_kind() == SeqKind::List || obj.seq_kind() == SeqKind::Tuple ||
                                  obj.seq_kind() == SeqKind::Range);
  // jinja2 compiles slices to plain Python subscripts (no getitem fallback), so errors propagate.
  if (obj.is_dict()) throw_runtime("unhashable type: 'slice'");
  if (!is_str && !is_seq) throw_runtime(quoted_type(obj) + " object is not subscriptable");
  std::u32string chars;
  int64_t n;
  if (is_str) {
    chars = utf8_decode(obj.str());
    n = static_cast<int64_t>(chars.size());
  } else {
    n = static_cast<int64_t>(obj.items().size());
  }
  // PySlice_AdjustIndices
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = s < 0 ? -1 : 0;
    } else if (x >= n) {
      x = s < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t b = adjust(lo, s < 0 ? n - 1 : 0);
  int64_t e = adjust(hi, s < 0 ? -1 : n);
  std::vector<int64_t> idx;
  for (int64_t i = b; s > 0 ? i < e : i > e; i += s) idx.push_back(i);
  if (is_str) {
    std::u32string out;
    for (int64_t i : idx) out.push_back(chars[static_cast<size_t>(i)]);
    return Value::string(utf8_encode(out), obj.is_markup());
  }
  std::vector<Value> out;
  for (int64_t i : idx) out.push_back(obj.items()[static_cast<size_t>(i)]);
  if (obj.seq_kind() == SeqKind::Range) {  // a sliced range is a range
    const ListData& r = obj.list_data();
    ListData d;
    d.items = std::move(out);
    d.kind = SeqKind::Range;
    d.range_start = r.range_start + b * r.range_step;
    d.range_stop = r.range_start + e * r.range_step;
    d.range_step = r.range_step * s;
    return Value::list(std::move(d));
  }
  return Value::list(std::move(out), obj.seq_kind() == SeqKind::Tuple ? SeqKind::Tuple : SeqKind::List);
}

Value call_value(Interpreter& in, const Value& callee, CallArgs& args) {
  if (callee.kind() == Kind::Function) return callee.function().fn(in, args);
  if (callee.is_undefined()) fail_undefined(callee);
  type_error(quoted_type(callee) + " object is not callable");
}

// --- argument binding and number parsing ----------------------------------------------------------

ArgReader::ArgReader(const std::string& func, const CallArgs& args, std::vector<std::string> names, size_t required)
    : func_(func), names_(std::move(names)), values_(names_.size()), given_(names_.size(), false) {
  if (args.args.size() > names_.size())
    throw_runtime(func_ + "() takes at most " + std::to_string(names_.size()) + " argument(s), " +
                  std::to_string(args.args.size()) + " given");
  for (size_t i = 0; i < args.args.size(); ++i) {
    values_[i] = args.args[i];
    given_[i] = true;
  }
  for (const auto& [k, v] : args.kwargs) {
    auto it = std::find(names_.begin(), names_.end(), k);
    if (it == names_.end()) throw_runtime(func_ + "() got an unexpected keyword argument '" + k + "'");
    size_t i = static_cast<size_t>(it - names_.begin());
    if (given_[i]) throw_runtime(func_ + "() got multiple values for argument '" + k + "'");
    values_[i] = v;
    given_[i] = true;
  }
  for (size_t i = 0; i < required; ++i)
    if (!given_[i]) throw_runtime(func_ + "() missing required argument '" + names_[i] + "'");
}

bool ArgReader::bool_or(size_t i, bool def) const { return given_[i] ? truthy(values_[i]) : def; }

int64_t ArgReader::int_or(size_t i, int64_t def) const {
  if (!given_[i] || values_[i].is_none()) return def;
  if (!values_[i].is_integral())
    throw_runtime(func_ + "(): '" + names_[i] + "' must be an integer, not " + type_name(values_[i]));
  return values_[i].as_int();
}

// Python's float(str): optional whitespace, sign, digits with single underscores, inf/nan.
std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, nullptr, true, true);
  if (s.empty() || !is_ascii(s)) return std::nullopt;
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    t.push_back(s[i]);
  }
  std::string lower = py_lower(t);
  std::string body = (lower[0] == '+' || lower[0] == '-') ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double x = body == "nan" ? NAN : INFINITY;
    return lower[0] == '-' ? -x : x;
  }
  if (body.find_first_not_of("0123456789.e+-") != std::string::npos || body.find('x') != std::string::npos)
    return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> parse_py_int(const std::string& text, int64_t base) {
  std::string s = py_strip(text, nullptr, true, true);
  if (s.empty() || !is_ascii(s)) return std::nullopt;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (i + 1 < s.size() && s[i] == '0') {
    char p = static_cast<char>(s[i + 1] | 0x20);
    int64_t prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefixed && (base == prefixed || base == 0)) {
      base = prefixed;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  if (i >= s.size()) return std::nullopt;
  unsigned long long v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (!prev_digit || i + 1 >= s.size()) return std::nullopt;
      prev_digit = false;
      continue;
    }
    int d = std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0'
            : std::isalpha(static_cast<unsigned char>(s[i])) ? (s[i] | 0x20) - 'a' + 10
                                                              : 99;
    if (d >= base) return std::nullopt;
    if (v > (static_cast<unsigned long long>(INT64_MAX) - static_cast<unsigned long long>(d)) / static_cast<unsigned long long>(base))
      throw_unsupported("int() of a number beyond 64 bits", "");
    v = v * static_cast<unsigned long long>(base) + static_cast<unsigned long long>(d);
    prev_digit = true;
  }
  if (!prev_digit) return std::nullopt;
  return neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
}

}  // namespace tiller::jinja
