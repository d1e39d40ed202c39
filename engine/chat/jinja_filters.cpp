// Jinja's built-in filters (jinja2/filters.py semantics), with HF's tojson.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_map>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_unicode.h"

namespace tiller::jinja {

namespace {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);

// soft_str(): strings (markup included) stay as they are; anything else becomes str(value).
Value soft_str(const Value& v) { return v.is_string() ? v : Value::string(py_str(v)); }

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then index 0 (item first, then attribute).
Value attr_path(const Value& item, const Value& attribute) {
  if (attribute.is_none() || attribute.is_undefined()) return item;
  Value cur = item;
  if (attribute.is_integral()) return get_item(cur, attribute);
  if (!attribute.is_string()) throw_runtime("attribute must be a string or an integer");
  static const std::string dot = ".";
  for (auto& part : py_split(attribute.str(), &dot, -1, false)) {
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = get_item(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
  }
  return cur;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value::string(py_lower(v.str())) : v; }

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("abs", a, {});
  if (v.kind() == Kind::Float) return Value::number(std::fabs(v.as_float()));
  if (v.is_integral()) return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  if (v.is_undefined()) fail_undefined(v);
  throw_runtime("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("attr", a, {"name"}, 1);
  if (v.is_undefined()) fail_undefined(v);
  const Value& name = *r.get(0);
  if (!name.is_string()) throw_runtime("attribute name must be a string");
  if (v.kind() == Kind::Object)
    if (const Value* x = v.object().attrs.find(name.str())) return *x;
  bool found = false;
  Value m = get_method(v, name.str(), found);
  return found ? m : Value::undefined("'" + type_name(v) + " object' has no attribute '" + name.str() + "'");
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("capitalize", a, {});
  Value s = soft_str(v);
  return Value::string(py_capitalize(s.str()), s.is_markup());
}

Value f_upper(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("upper", a, {});
  Value s = soft_str(v);
  return Value::string(py_upper(s.str()), s.is_markup());
}

Value f_lower(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("lower", a, {});
  Value s = soft_str(v);
  return Value::string(py_lower(s.str()), s.is_markup());
}

Value f_title(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("title", a, {});
  // jinja2's do_title: split on runs of [-\s({\[<], upper-case each piece's first character.
  std::u32string in = utf8_decode(soft_str(v).str());
  auto is_sep = [](char32_t c) { return is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    size_t j = i;
    bool sep = is_sep(in[i]);
    while (j < in.size() && is_sep(in[j]) == sep) ++j;
    std::string first;
    utf8_append(first, in[i]);
    out += py_upper(first);
    out += py_lower(utf8_encode(std::u32string_view(in).substr(i + 1, j - i - 1)));
    i = j;
  }
  return Value::string(std::move(out));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  ArgReader r("center", a, {"width"});
  CallArgs ca;
  ca.args.push_back(Value::integer(r.int_or(0, 80)));
  bool found;
  return call_value(in, get_method(soft_str(v), "center", found), ca);
}

Value f_length(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("length", a, {});
  return Value::integer(py_len(v));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("default", a, {"default_value", "boolean"});
  if (v.is_undefined() || (r.bool_or(1, false) && !truthy(v))) return r.value_or(0, Value::string(""));
  return v;
}

std::vector<Value> sorted_by(std::vector<Value> items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Python's sort is stable; reverse=True keeps equal items in their original order too.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return reverse ? py_less(keys[y], keys[x]) : py_less(keys[x], keys[y]); });
  std::vector<Value> out;
  for (size_t i : order) out.push_back(items[i]);
  return out;
}

Value f_dictsort(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw_runtime("dictsort needs a mapping, not " + type_name(v));
  std::string by = r.has(1) ? py_str(*r.get(1)) : "key";
  if (by != "key" && by != "value") throw_runtime("You can only sort by either \"key\" or \"value\"");
  std::vector<Value> items, keys;
  for (const auto& [k, x] : v.dict().entries) {
    items.push_back(Value::list({Value::string(k), x}, SeqKind::Tuple));
    Value key = by == "key" ? Value::string(k) : x;
    keys.push_back(r.bool_or(0, false) ? key : ignore_case(key));
  }
  return Value::list(sorted_by(std::move(items), keys, r.bool_or(2, false)));
}

Value f_sort(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("sort", a, {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v), keys;
  Value attribute = r.value_or(2, Value::none());
  for (const Value& item : items) {
    std::vector<Value> parts;
    if (attribute.is_string() && attribute.str().find(',') != std::string::npos) {
      static const std::string comma = ",";
      for (auto& p : py_split(attribute.str(), &comma, -1, false))
        parts.push_back(attr_path(item, Value::string(p)));
    } else {
      parts.push_back(attr_path(item, attribute));
    }
    if (!r.bool_or(1, false))
      for (auto& p : parts) p = ignore_case(p);
    keys.push_back(Value::list(std::move(parts)));
  }
  return Value::list(sorted_by(std::move(items), keys, r.bool_or(0, false)));
}

Value f_unique(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("unique", a, {"case_sensitive", "attribute"});
  std::vector<Value> out, seen;
  for (const Value& item : iterate(v)) {
    Value key = attr_path(item, r.value_or(1, Value::none()));
    if (!r.bool_or(0, false)) key = ignore_case(key);
    if (!is_hashable(key)) throw_runtime("unhashable type: '" + type_name(key) + "'");
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, key); });
    if (!dup) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return make_iterator(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool want_max) {
  ArgReader r(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& item) {
    Value k = attr_path(item, r.value_or(1, Value::none()));
    return r.bool_or(0, false) ? k : ignore_case(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? py_less(best_key, k) : py_less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

Value f_max(Interpreter&, const Value& v, CallArgs& a) { return min_max(v, a, true); }
Value f_min(Interpreter&, const Value& v, CallArgs& a) { return min_max(v, a, false); }

Value f_join(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("join", a, {"d", "attribute"});
  std::string sep = r.has(0) ? py_str(*r.get(0)) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    out += py_str(r.has(1) ? attr_path(item, *r.get(1)) : item);
    check_size(out.size(), "string");
    first = false;
  }
  return Value::string(std::move(out));
}

Value f_first(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("first", a, {});
  if (v.is_list() && v.seq_kind() == SeqKind::Iterator) {
    ListData& st = v.iterator_state();
    if (st.consumed < st.items.size()) return st.items[st.consumed++];
  } else {
    std::vector<Value> items = iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("last", a, {});
  if (v.is_list() && v.seq_kind() == SeqKind::Iterator) throw_runtime("'generator' object is not reversible");
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_list(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("list", a, {});
  return Value::list(iterate(v));
}

Value f_items(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("items", a, {});
  if (v.is_undefined()) return make_iterator({});
  if (!v.is_dict()) throw_runtime("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict().entries) out.push_back(Value::list({Value::string(k), x}, SeqKind::Tuple));
  return make_iterator(std::move(out));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("reverse", a, {});
  if (v.is_string()) {
    std::u32string s = utf8_decode(v.str());
    std::reverse(s.begin(), s.end());
    return Value::string(utf8_encode(s), v.is_markup());
  }
  bool reversible = v.is_undefined() || v.is_dict() || (v.is_list() && v.seq_kind() != SeqKind::Iterator &&
                                                        v.seq_kind() != SeqKind::DictItems &&
                                                        v.seq_kind() != SeqKind::DictKeys &&
                                                        v.seq_kind() != SeqKind::DictValues);
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return reversible ? make_iterator(std::move(items)) : Value::list(std::move(items));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  if (!truthy(v)) return make_iterator({});
  std::vector<Value> out;
  if (a.args.empty() && std::any_of(a.kwargs.begin(), a.kwargs.end(), [](auto& kv) { return kv.first == "attribute"; })) {
    ArgReader r("map", a, {"attribute", "default"});
    for (const Value& item : iterate(v)) {
      Value x = attr_path(item, *r.get(0));
      if (x.is_undefined() && r.has(1) && !r.get(1)->is_none()) x = *r.get(1);
      out.push_back(x);
    }
    return make_iterator(std::move(out));
  }
  if (a.args.empty()) throw_runtime("map requires a filter argument");
  if (!a.args[0].is_string()) throw_runtime("map: the filter name must be a string");
  std::string name = a.args[0].str();
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const Value& item : iterate(v)) {
    CallArgs copy = rest;
    out.push_back(apply_filter(in, name, item, copy));
  }
  return make_iterator(std::move(out));
}

Value select_reject(Interpreter& in, const Value& v, CallArgs& a, bool select, bool by_attr) {
  if (!truthy(v)) return make_iterator({});
  size_t off = 0;
  Value attribute;
  if (by_attr) {
    if (a.args.empty()) throw_runtime("Missing parameter for attribute name");
    attribute = a.args[0];
    off = 1;
  }
  std::string test;
  CallArgs rest;
  bool has_test = a.args.size() > off;
  if (has_test) {
    if (!a.args[off].is_string()) throw_runtime("the test name must be a string");
    test = a.args[off].str();
    rest.args.assign(a.args.begin() + static_cast<ptrdiff_t>(off) + 1, a.args.end());
    rest.kwargs = a.kwargs;
  }
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value x = by_attr ? attr_path(item, attribute) : item;
    bool ok;
    if (has_test) {
      CallArgs copy = rest;
      ok = apply_test(in, test, x, copy);
    } else {
      ok = truthy(x);
    }
    if (ok == select) out.push_back(item);
  }
  return make_iterator(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, true, false); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, false, true); }

Value f_replace(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("replace", a, {"old", "new", "count"}, 2);
  // autoescape is off, so jinja2 replaces on plain str(value): the result is not Markup.
  return Value::string(py_replace(py_str(v), py_str(*r.get(0)), py_str(*r.get(1)), static_cast<long>(r.int_or(2, -1))));
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("round", a, {"precision", "method"});
  int64_t precision = r.int_or(0, 0);
  std::string method = r.has(1) ? py_str(*r.get(1)) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw_runtime("method must be common, ceil or floor");
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) throw_runtime("type " + type_name(v) + " doesn't define __round__ method");
  if (method == "common") {
    if (v.is_integral()) {
      if (precision >= 0) return Value::integer(v.as_int());
      throw_unsupported("round() of an integer to negative precision", "");
    }
    double x = v.as_float();
    if (!std::isfinite(x)) return v;
    // CPython rounds the exact binary value half-to-even at `precision` decimals, as printf does.
    if (precision < 0 || precision > 300) throw_unsupported("round() precision outside 0..300", "");
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value::number(std::strtod(buf, nullptr));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_float() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("safe", a, {});
  return v.is_markup() ? v : Value::string(py_str(v), true);
}

Value f_escape(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("escape", a, {});
  return html_escape(v);
}

Value f_forceescape(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("forceescape", a, {});
  return Value::string(html_escape_text(py_str(v)), true);
}

Value f_string(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader("string", a, {});
  return soft_str(v);
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("trim", a, {"chars"});
  Value s = soft_str(v);
  const Value* chars = r.get(0);
  std::string set;
  if (chars && !chars->is_none()) set = py_str(*chars);
  return Value::string(py_strip(s.str(), chars && !chars->is_none() ? &set : nullptr, true, true), s.is_markup());
}

Value f_sum(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("sum", a, {"attribute", "start"});
  Value total = r.value_or(1, Value::integer(0));
  for (const Value& item : iterate(v)) total = binary_op("+", total, attr_path(item, r.value_or(0, Value::none())));
  return total;
}

Value f_indent(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("indent", a, {"width", "first", "blank"});
  std::string indention;
  Value width = r.value_or(0, Value::integer(4));
  if (width.is_string()) {
    indention = width.str();
  } else {
    const size_t n = static_cast<size_t>(std::max<int64_t>(0, r.int_or(0, 4)));
    check_size(n, "indentation");
    indention = std::string(n, ' ');
  }
  if (!v.is_string()) throw_runtime("indent needs a string, not " + type_name(v));
  std::vector<std::string> lines = py_splitlines(v.str() + "\n", false);
  check_size(lines.size() + 1, indention.size(), "indented string");
  check_size(lines.size() * indention.size() + v.str().size() + lines.size(), "indented string");
  std::string rv;
  if (r.bool_or(2, false)) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += '\n';
      if (!lines[i].empty()) {
        rv += indention;
        rv += lines[i];
      }
    }
  }
  if (r.bool_or(1, false)) rv = indention + rv;
  return Value::string(std::move(rv), v.is_markup());
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("int", a, {"default", "base"});
  Value def = r.value_or(0, Value::integer(0));
  auto from_float = [&](double d) -> Value {
    if (!std::isfinite(d)) return def;
    if (std::fabs(d) >= 9.2e18) throw_unsupported("int() of a number beyond 64 bits", "");
    return Value::integer(static_cast<int64_t>(d));
  };
  if (v.is_undefined()) fail_undefined(v);  // Undefined.__int__ raises
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.kind() == Kind::Float) return from_float(v.as_float());
  if (v.is_string()) {
    if (auto i = parse_py_int(v.str(), r.int_or(1, 10))) return Value::integer(*i);
    if (auto d = parse_py_float(v.str())) return from_float(*d);
  }
  return def;
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("float", a, {"default"});
  if (v.is_undefined()) fail_undefined(v);  // Undefined.__float__ raises
  if (v.is_number()) return Value::number(v.as_float());
  if (v.is_string())
    if (auto d = parse_py_float(v.str())) return Value::number(*d);
  return r.value_or(0, Value::number(0.0));
}

Value f_format(Interpreter&, const Value& v, CallArgs& a) {
  if (!a.args.empty() && !a.kwargs.empty())
    throw_runtime("format: can't handle positional and keyword arguments at the same time");
  if (!a.kwargs.empty()) {
    DictData d;
    for (const auto& [k, x] : a.kwargs) d.set(k, x);
    return percent_format(soft_str(v), Value::dict(std::move(d)));
  }
  return percent_format(soft_str(v), Value::list(a.args, SeqKind::Tuple));
}

// HF's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(Interpreter&, const Value& v, CallArgs& a) {
  ArgReader r("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = r.bool_or(0, false);
  o.sort_keys = r.bool_or(3, false);
  if (r.has(1) && !r.get(1)->is_none()) {
    const Value& ind = *r.get(1);
    o.has_indent = true;
    if (ind.is_string()) {
      o.indent = ind.str();
    } else if (ind.is_integral()) {
      const size_t n = static_cast<size_t>(std::max<int64_t>(0, ind.as_int()));
      check_size(n, "JSON indentation");
      o.indent = std::string(n, ' ');
    } else {
      throw_runtime("tojson indent must be an integer or a string");
    }
    o.item_separator = ",";  // json.dumps drops the trailing space when indenting
  }
  if (r.has(2) && !r.get(2)->is_none()) {
    const Value& sep = *r.get(2);
    if (!sep.is_list() || sep.items().size() != 2 || !sep.items()[0].is_string() || !sep.items()[1].is_string())
      throw_runtime("tojson separators must be a pair of strings");
    o.item_separator = sep.items()[0].str();
    o.key_separator = sep.items()[1].str();
  }
  return Value::string(json_dumps(v, o));
}

const std::unordered_map<std::string, FilterFn>& filter_table() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"abs", f_abs},           {"attr", f_attr},         {"capitalize", f_capitalize}, {"center", f_center},
      {"count", f_length},      {"d", f_default},         {"default", f_default},       {"dictsort", f_dictsort},
      {"e", f_escape},          {"escape", f_escape},     {"first", f_first},           {"float", f_float},
      {"forceescape", f_forceescape}, {"format", f_format}, {"indent", f_indent},       {"int", f_int},
      {"items", f_items},       {"join", f_join},         {"last", f_last},             {"length", f_length},
      {"list", f_list},         {"lower", f_lower},       {"map", f_map},               {"max", f_max},
      {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr}, {"replace", f_replace},
      {"reverse", f_reverse},   {"round", f_round},       {"safe", f_safe},             {"select", f_select},
      {"selectattr", f_selectattr}, {"sort", f_sort},     {"string", f_string},         {"sum", f_sum},
      {"title", f_title},       {"tojson", f_tojson},     {"trim", f_trim},             {"unique", f_unique},
      {"upper", f_upper},
  };
  return table;
}

// Filters jinja2 has that this interpreter refuses rather than approximates.
const std::set<std::string>& refused_filters() {
  static const std::set<std::string> names = {"batch", "filesizeformat", "groupby", "pprint", "random", "slice",
                                              "striptags", "truncate", "urlencode", "urlize", "wordcount",
                                              "wordwrap", "xmlattr"};
  return names;
}

}  // namespace

bool filter_exists(const std::string& name) { return filter_table().count(name) || refused_filters().count(name); }

Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto it = filter_table().find(name);
  if (it != filter_table().end()) return it->second(in, input, args);
  if (refused_filters().count(name)) throw_unsupported("|" + name + " filter", "not implemented by this interpreter");
  throw_runtime("no filter named '" + name + "'", "jinja2 has no such filter either");
}

}  // namespace tiller::jinja
