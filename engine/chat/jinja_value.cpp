// Value construction and Python's rules for truth, printing (str/repr), equality and ordering.
#include "engine/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "engine/chat/jinja_limits.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {

// --- DictData -----------------------------------------------------------------------------------

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void DictData::set(const std::string& key, Value value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

// --- Value --------------------------------------------------------------------------------------

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.ptr_ = std::make_shared<std::string>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.flag_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = d;
  return v;
}

Value Value::string(std::string s, bool markup) {
  Value v;
  v.kind_ = Kind::String;
  v.flag_ = markup;
  charge_built(s.size() + kValueOverhead);
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, SeqKind kind) {
  ListData d;
  d.items = std::move(items);
  d.kind = kind;
  return list(std::move(d));
}

namespace {

int nested_depth(const Value& v) {
  return v.is_list() ? v.list_data().depth : v.is_dict() ? v.dict().depth : 0;
}

void check_depth(int depth) {
  if (depth > kMaxValueDepth)
    throw_runtime("a list or dict nested more than " + std::to_string(kMaxValueDepth) + " levels deep",
                  "a template that nests values without end, or flatten the data");
}

}  // namespace

Value Value::list(ListData data) {
  charge_built(data.items.size() * kItemBytes + kValueOverhead);
  data.depth = 1;
  for (const Value& item : data.items) data.depth = std::max(data.depth, 1 + nested_depth(item));
  check_depth(data.depth);
  Value v;
  v.kind_ = Kind::List;
  v.ptr_ = std::make_shared<ListData>(std::move(data));
  return v;
}

Value Value::dict(DictData d) {
  charge_built(d.entries.size() * (kItemBytes + sizeof(std::string)) + kValueOverhead);
  d.depth = 1;
  for (const auto& [k, item] : d.entries) d.depth = std::max(d.depth, 1 + nested_depth(item));
  check_depth(d.depth);
  Value v;
  v.kind_ = Kind::Dict;
  v.ptr_ = std::make_shared<DictData>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<ObjectData> o) {
  Value v;
  v.kind_ = Kind::Object;
  v.ptr_ = std::move(o);
  return v;
}

Value Value::function(std::string name, NativeFunction fn) {
  Value v;
  v.kind_ = Kind::Function;
  v.ptr_ = std::make_shared<FunctionData>(FunctionData{std::move(name), std::move(fn)});
  return v;
}

const std::string& Value::str() const {
  TILLER_CHECK(kind_ == Kind::String);
  return *static_cast<const std::string*>(ptr_.get());
}

const ListData& Value::list_data() const {
  TILLER_CHECK(kind_ == Kind::List);
  return *static_cast<const ListData*>(ptr_.get());
}

ListData& Value::iterator_state() const {
  TILLER_CHECK(kind_ == Kind::List);
  return *static_cast<ListData*>(ptr_.get());
}

const DictData& Value::dict() const {
  TILLER_CHECK(kind_ == Kind::Dict);
  return *static_cast<const DictData*>(ptr_.get());
}

ObjectData& Value::object() const {
  TILLER_CHECK(kind_ == Kind::Object);
  return *static_cast<ObjectData*>(ptr_.get());
}

const FunctionData& Value::function() const {
  TILLER_CHECK(kind_ == Kind::Function);
  return *static_cast<const FunctionData*>(ptr_.get());
}

const std::string& Value::undefined_hint() const {
  static const std::string empty;
  if (kind_ != Kind::Undefined || !ptr_) return empty;
  return *static_cast<const std::string*>(ptr_.get());
}

// --- Python semantics ---------------------------------------------------------------------------

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return v.as_bool();
    case Kind::Int:
      return v.as_int() != 0;
    case Kind::Float:
      return v.as_float() != 0.0;
    case Kind::String:
      return !v.str().empty();
    case Kind::List:
      return v.seq_kind() == SeqKind::Iterator || !v.items().empty();
    case Kind::Dict:
      return !v.dict().entries.empty();
    case Kind::Object:
    case Kind::Function:
      return true;
  }
  return false;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return v.is_markup() ? "Markup" : "str";
    case Kind::List:
      switch (v.seq_kind()) {
        case SeqKind::List:
          return "list";
        case SeqKind::Tuple:
          return "tuple";
        case SeqKind::DictItems:
          return "dict_items";
        case SeqKind::DictKeys:
          return "dict_keys";
        case SeqKind::DictValues:
          return "dict_values";
        case SeqKind::Range:
          return "range";
        case SeqKind::Iterator:
          return "generator";
      }
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Object:
      return v.object().type == ObjectData::Type::Namespace ? "Namespace" : "LoopContext";
    case Kind::Function:
      return "function";
  }
  return "object";
}

void fail_undefined(const Value& v) {
  const std::string& hint = v.undefined_hint();
  if (hint.empty()) throw_runtime("an undefined value was used");
  bool missing_variable = hint.ends_with("' is undefined");
  throw_runtime(hint, missing_variable ? "pass it in the chat context, or check its spelling" : "");
}

std::string quoted_type(const Value& v) {
  std::string s(1, '\'');
  s += type_name(v);
  s += '\'';
  return s;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);  // shortest round-trip
  std::string s(buf, res.ptr);
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  int decpt = exp + 1;  // value = 0.DIGITS * 10^decpt
  int n = static_cast<int>(digits.size());
  std::string out;
  if (decpt <= -4 || decpt > 16) {  // CPython's repr switches to exponent form here
    out = digits.substr(0, 1);
    if (n > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  } else if (decpt <= 0) {
    out = "0." + std::string(-decpt, '0') + digits;
  } else if (decpt >= n) {
    out = digits + std::string(decpt - n, '0') + ".0";
  } else {
    out = digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  return sign + out;
}

std::string py_repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (!is_py_printable(c)) {
      char buf[16];
      if (c < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

namespace {

std::string repr_sequence(const Value& v) {
  ValueWalk walk;
  const ListData& d = v.list_data();
  std::string inner;
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) inner += ", ";
    inner += py_repr(d.items[i]);
    check_size(inner.size(), "string");
  }
  switch (d.kind) {
    case SeqKind::List:
      return "[" + inner + "]";
    case SeqKind::Tuple:
      return "(" + inner + (d.items.size() == 1 ? ",)" : ")");
    case SeqKind::DictItems:
      return "dict_items([" + inner + "])";
    case SeqKind::DictKeys:
      return "dict_keys([" + inner + "])";
    case SeqKind::DictValues:
      return "dict_values([" + inner + "])";
    case SeqKind::Range:
      return "range(" + std::to_string(d.range_start) + ", " + std::to_string(d.range_stop) +
             (d.range_step != 1 ? ", " + std::to_string(d.range_step) : std::string()) + ")";
    case SeqKind::Iterator:
      throw_runtime("printing a generator (the result of select, map, reject, ...) is not supported",
                    "convert it first: |list");
  }
  return inner;
}

// Namespaces whose attributes are being printed: Python prints a dict that contains itself as {...}.
thread_local std::vector<const DictData*> printing;

std::string repr_dict(const DictData& d) {
  ValueWalk walk;
  if (std::find(printing.begin(), printing.end(), &d) != printing.end()) return "{...}";
  printing.push_back(&d);
  struct Pop {
    ~Pop() { printing.pop_back(); }
  } pop;
  std::string out = "{";
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (i) out += ", ";
    out += py_repr_string(d.entries[i].first) + ": " + py_repr(d.entries[i].second);
    check_size(out.size(), "string");
  }
  return out + "}";
}

}  // namespace

std::string py_repr(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.as_bool() ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.as_int());
    case Kind::Float:
      return float_repr(v.as_float());
    case Kind::String:
      return v.is_markup() ? "Markup(" + py_repr_string(v.str()) + ")" : py_repr_string(v.str());
    case Kind::List:
      return repr_sequence(v);
    case Kind::Dict:
      return repr_dict(v.dict());
    case Kind::Object:
      if (v.object().type == ObjectData::Type::Namespace) return "<Namespace " + repr_dict(v.object().attrs) + ">";
      throw_runtime("printing a loop object is not supported", "print loop.index, loop.length, ... instead");
    case Kind::Function:
      throw_runtime("printing the function '" + v.function().name + "' is not supported",
                    "call it instead: name(...)");
  }
  return {};
}

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return {};
    case Kind::String:
      return v.str();
    default:
      return py_repr(v);
  }
}

bool py_equal(const Value& a, const Value& b) {
  ValueWalk walk;
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Kind::Float || b.kind() == Kind::Float) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.str() == b.str();
    case Kind::List: {
      const ListData& x = a.list_data();
      const ListData& y = b.list_data();
      if (x.kind == SeqKind::Iterator || y.kind == SeqKind::Iterator) return a.identity() == b.identity();
      if (x.kind != y.kind || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!py_equal(x.items[i], y.items[i])) return false;
      return true;
    }
    case Kind::Dict: {
      const DictData& x = a.dict();
      const DictData& y = b.dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !py_equal(v, *other)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool py_less(const Value& a, const Value& b) {
  ValueWalk walk;
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Kind::Float || b.kind() == Kind::Float) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code point order
  if (a.is_list() && b.is_list() && a.seq_kind() == b.seq_kind() &&
      (a.seq_kind() == SeqKind::List || a.seq_kind() == SeqKind::Tuple)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  throw_runtime("cannot compare '" + type_name(a) + "' with '" + type_name(b) + "' by order");
}

std::string html_escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '"':
        out += "&#34;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Value html_escape(const Value& v) {
  if (v.is_markup()) return v;
  return Value::string(html_escape_text(py_str(v)), true);
}

}  // namespace tiller::jinja
