// The interpreter's value type: Python's view of JSON data plus Jinja's undefined, markup
// strings, namespaces and callables, with Python's printing, equality and JSON rules.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chat/jinja_error.h"

namespace tiller::jinja {

class Value;
class Interpreter;

// Arguments of a call: positional then keyword, as Python passes them.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object, Function };

// Python prints these sequence flavours differently ([1], (1,), dict_items([...]), range(0, 3)).
// Iterator stands for the generators jinja's select/map/... return: always true, no len(),
// not printable, and consumed by the first iteration.
enum class SeqKind : uint8_t { List, Tuple, DictItems, DictKeys, DictValues, Range, Iterator };

struct ListData {
  std::vector<Value> items;
  SeqKind kind = SeqKind::List;
  int depth = 1;           // lists and dicts nested inside, counting this one (set by Value::list)
  int64_t range_start = 0, range_stop = 0, range_step = 1;  // for SeqKind::Range
  size_t consumed = 0;     // for SeqKind::Iterator: items already taken
};

// An insertion-ordered dict with string keys (Python dicts keep insertion order).
struct DictData {
  std::vector<std::pair<std::string, Value>> entries;
  int depth = 1;  // as ListData::depth (set by Value::dict; namespaces' attrs do not count)
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

// namespace() objects (mutable through {% set ns.x = ... %}) and loop objects (read-only).
struct ObjectData {
  enum class Type { Namespace, Loop } type;
  DictData attrs;
};

using NativeFunction = std::function<Value(Interpreter&, CallArgs&)>;
struct FunctionData {
  std::string name;
  NativeFunction fn;
};

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s, bool markup = false);
  static Value list(std::vector<Value> items, SeqKind kind = SeqKind::List);
  static Value list(ListData data);
  static Value dict(DictData d);
  static Value object(std::shared_ptr<ObjectData> o);
  static Value function(std::string name, NativeFunction fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  // Python numbers: bool, int and float (bool is an int subclass).
  bool is_number() const { return kind_ == Kind::Bool || kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Bool || kind_ == Kind::Int; }
  bool is_markup() const { return kind_ == Kind::String && flag_; }

  bool as_bool() const { return flag_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (flag_ ? 1 : 0) : i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(as_int()); }
  const std::string& str() const;
  const ListData& list_data() const;
  ListData& iterator_state() const;  // SeqKind::Iterator only: its consumption cursor
  const std::vector<Value>& items() const { return list_data().items; }
  SeqKind seq_kind() const { return list_data().kind; }
  const DictData& dict() const;
  ObjectData& object() const;
  const FunctionData& function() const;
  const std::string& undefined_hint() const;
  // Identity of shared containers (namespace/loop objects, functions).
  const void* identity() const { return ptr_.get(); }

 private:
  Kind kind_ = Kind::Undefined;
  bool flag_ = false;  // bool value; markup flag for strings
  union {
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<void> ptr_;  // string, ListData, DictData, ObjectData, FunctionData, undefined hint
};

// --- Python semantics ---------------------------------------------------------------------------

bool truthy(const Value& v);
// Python's type name ("str", "int", "dict", "NoneType", ...), for error messages.
std::string type_name(const Value& v);
std::string quoted_type(const Value& v);  // 'str', for messages
std::string float_repr(double d);
// str(v) and repr(v). Undefined prints as "".
std::string py_str(const Value& v);
std::string py_repr(const Value& v);
std::string py_repr_string(std::string_view s);
bool py_equal(const Value& a, const Value& b);
// Python's a < b (and friends via swapping/negation); throws for unorderable types.
bool py_less(const Value& a, const Value& b);
// markupsafe.escape(): & < > ' " as HTML entities; markup strings are returned unchanged.
Value html_escape(const Value& v);
std::string html_escape_text(std::string_view s);
// The error jinja's default Undefined raises when an undefined value is used.
[[noreturn]] void fail_undefined(const Value& v);

struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // per level
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python's json.dumps(v, ...): throws for values JSON cannot hold (undefined, functions, ...).
std::string json_dumps(const Value& v, const JsonDumpOptions& options);

// JSON (nlohmann::json or ordered_json) to Value, keeping the object's key order.
template <class Json>
Value value_from_json(const Json& j, int depth = 0) {
  if (depth > 512) throw_runtime("chat data nested more than 512 levels deep", "flatten the JSON");
  switch (j.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case Json::value_t::number_integer:
      return Value::integer(j.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw_runtime("integer " + std::to_string(u) + " in the chat data is larger than 2^63-1",
                      "pass it as a string");
      return Value::integer(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float:
      return Value::number(j.template get<double>());
    case Json::value_t::string:
      return Value::string(j.template get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(value_from_json(e, depth + 1));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      DictData d;
      d.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.entries.emplace_back(it.key(), value_from_json(it.value(), depth + 1));
      return Value::dict(std::move(d));
    }
    default:
      throw_runtime("binary JSON values cannot be passed to a chat template");
  }
}

}  // namespace tiller::jinja
