// Tests of the Jinja interpreter (engine/chat/jinja*.{h,cpp}): each construct, Python's printing
// and arithmetic rules, whitespace control, refusals with their location, raise_exception.
//
// The expected strings of the golden sections were produced by Python jinja2 3.1.6 configured as
// transformers configures it (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]) with HF's tojson/raise_exception/strftime_now), on the context below.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "engine/chat/jinja.h"
#include "engine/json_file.h"

using tiller::jinja::JinjaError;
using Kind = tiller::jinja::JinjaError::Kind;

namespace {

const char* const kContext = R"JSON({"s": "Hello World", "n": null, "t": true, "f": false, "i": 7, "fl": 2.5,
 "l": [3, 1, 2], "sl": ["b", "A", "c", "a"], "d": {"b": 1, "a": 2}, "e": [],
 "u": "héllo wörld ΣΑΣ straße", "ws": "  \t pad \n ",
 "msgs": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}],
 "nested": {"a": {"b": [10, {"c": "deep"}]}}})JSON";

tiller::jinja::DictData context() {
  static const auto j = nlohmann::ordered_json::parse(kContext);
  tiller::jinja::DictData vars;
  for (auto it = j.begin(); it != j.end(); ++it) vars.set(it.key(), tiller::jinja::value_from_json(it.value()));
  return vars;
}

tiller::jinja::RenderOptions options() {
  tiller::jinja::RenderOptions o;
  o.now = tiller::jinja::parse_fixed_date("2024-07-26");
  return o;
}

std::string render(const std::string& source) {
  return tiller::jinja::Template(source).render(context(), options());
}

// The error a template produces (parse or render); fails the test when it renders.
JinjaError error_of(const std::string& source) {
  try {
    render(source);
  } catch (const JinjaError& e) {
    return e;
  }
  FAIL("expected an error from: " << source);
  return JinjaError(Kind::Runtime, "");
}

Kind fails(const std::string& source) { return error_of(source).kind(); }

// The message of raise_exception(); empty when the template failed another way.
std::string raised(const std::string& source) {
  JinjaError e = error_of(source);
  return e.kind() == Kind::Raised ? e.detail() : std::string("<not raised: ") + e.what() + ">";
}

}  // namespace

TEST_CASE("jinja: printing follows Python's str()") {
  CHECK(render("{{ s }}|{{ n }}|{{ t }}|{{ f }}|{{ i }}|{{ fl }}|{{ l }}|{{ d }}|{{ e }}|{{ {} }}") == "Hello World|None|True|False|7|2.5|[3, 1, 2]|{'b': 1, 'a': 2}|[]|{}");
  CHECK(render("{{ [0.1, 1e16, 1e-5, 1.5e300, -0.0, 100.0, 1/3, 2**0.5] }}") == "[0.1, 1e+16, 1e-05, 1.5e+300, -0.0, 100.0, 0.3333333333333333, 1.4142135623730951]");
  CHECK(render("{{ 1.0 }} {{ 1e3 }} {{ 1234567890123456.0 }} {{ 12345678901234567.0 }} {{ 0.0001 }} {{ 0.00001 }}") == "1.0 1000.0 1234567890123456.0 1.2345678901234568e+16 0.0001 1e-05");
  CHECK(render("{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', '\\u200b\\xa0\\x07', 'é'] }}") == "[\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', '\\u200b\\xa0\\x07', 'é']");
  CHECK(render("{{ (1,) }}{{ (1, 2) }}{{ () }}") == "(1,)(1, 2)()");
  CHECK(render("{{ d.items() }}{{ d.keys() }}{{ d.values() }}") == "dict_items([('b', 1), ('a', 2)])dict_keys(['b', 'a'])dict_values([1, 2])");
  CHECK(render("{{ range(3) }}{{ range(1, 10, 2) }}{{ range(5)[1:] }}") == "range(0, 3)range(1, 10, 2)range(1, 5)");
  CHECK(render("{{ msgs[0] }}") == "{'role': 'system', 'content': 'S'}");
  CHECK(render("{{ nested }}") == "{'a': {'b': [10, {'c': 'deep'}]}}");
  CHECK(render("{{ namespace(a=1, b=[2]) }}") == "<Namespace {'a': 1, 'b': [2]}>");
  CHECK(render("{{ none }}{{ None }}{{ true }}{{ True }}{{ false }}") == "NoneNoneTrueTrueFalse");
  CHECK(render("{{ x_undefined }}|{{ [x_undefined] }}") == "|[Undefined]");
  CHECK(render("{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1.5e-7 }}") == "31 15 5 1000 1.5e-07");
  CHECK(render("{{ \"a\" \"b\" }}") == "ab");
  CHECK(render("{{ \"tab\\there\\\\back\\x41\\u00e9\\101 \\q\" }}") == "tab\there\\backAéA \\q");
}

TEST_CASE("jinja: arithmetic follows Python") {
  CHECK(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }}") == "3 -4 1 2 -2 3.5 2.0 1024 0.5 64");
  CHECK(render("{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ 3 * \"ab\" }} {{ [1] * 3 }} {{ \"x\" * 0 }} {{ 10 - 2.5 }}") == "3.0 0.5 3.0 2 ababab [1, 1, 1]  7.5");
  CHECK(render("{{ -i }} {{ +i }} {{ -fl }} {{ - -3 }} {{ not t }} {{ not e }} {{ -2 ** 2 }} {{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ 10 - 2 - 3 }}") == "-7 7 -2.5 3 False True 4 14 20 5");
  CHECK(render("{{ l + [4] }}{{ (1,) + (2,) }}") == "[3, 1, 2, 4](1, 2)");
  CHECK(render("{{ \"a\" ~ 1 ~ none ~ true ~ x_undefined ~ [1] }}") == "a1NoneTrue[1]");
  CHECK(fails("{{ 1 ~ 2 + 3 }}") == Kind::Runtime);  // jinja2: can only concatenate str (not "int") to str
  CHECK(render("{{ 0.1 + 0.2 }} {{ 1/3*3 }} {{ 10/4 }}") == "0.30000000000000004 1.0 2.5");
  CHECK(fails("{{ 1/0 }}") == Kind::Runtime);  // jinja2: division by zero
  CHECK(fails("{{ \"a\" + 1 }}") == Kind::Runtime);  // jinja2: can only concatenate str (not "int") to str
  CHECK(fails("{{ 1 + \"a\" }}") == Kind::Runtime);  // jinja2: unsupported operand type(s) for +: 'int' and 'str'
  CHECK(fails("{{ n + \"a\" }}") == Kind::Runtime);  // jinja2: unsupported operand type(s) for +: 'NoneType' and 'str'
  CHECK(fails("{{ l + (4,) }}") == Kind::Runtime);  // jinja2: can only concatenate list (not "tuple") to list
  CHECK(fails("{{ x_undefined + 1 }}") == Kind::Runtime);  // jinja2: 'x_undefined' is undefined
  CHECK(fails("{{ 5 % 0 }}") == Kind::Runtime);  // jinja2: integer modulo by zero
}

TEST_CASE("jinja: comparisons, logic and membership") {
  CHECK(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ \"a\" < \"b\" }} {{ [1, 2] < [1, 3] }} {{ (1, 2) == [1, 2] }} {{ none == none }} {{ 1 != 2 }} {{ t == 1 }}") == "True False True True True False True True True");
  CHECK(render("{{ 0 or \"x\" }} {{ \"\" or [] }} {{ 1 and 2 }} {{ 0 and 1 }} {{ none or none }}") == "x [] 2 0 None");
  CHECK(render("{{ \"ell\" in s }} {{ \"x\" not in s }} {{ 2 in l }} {{ \"a\" in d }} {{ \"z\" in d }} {{ 1 in x_undefined }} {{ \"role\" in msgs[0] }}") == "True True True True False False True");
  CHECK(render("{{ msgs[0] == {\"content\": \"S\", \"role\": \"system\"} }} {{ msgs[1] == msgs[3] }} {{ d == {\"a\": 2, \"b\": 1} }}") == "True False True");
  CHECK(render("{{ \"y\" if t else \"n\" }}{{ \"y\" if f else \"n\" }}|{{ \"y\" if f }}|{{ (\"y\" if f) is defined }}|{{ 1 if f else 2 if f else 3 }}") == "yn||False|3");
  CHECK(fails("{{ \"a\" < 1 }}") == Kind::Runtime);  // jinja2: '<' not supported between instances of 'str' and 'int'
  CHECK(fails("{{ none < 1 }}") == Kind::Runtime);  // jinja2: '<' not supported between instances of 'NoneType' and 'int'
  CHECK(fails("{{ 1 in \"abc\" }}") == Kind::Runtime);  // jinja2: 'in <string>' requires string as left operand, not int
  CHECK(fails("{{ \"a\" in none }}") == Kind::Runtime);  // jinja2: argument of type 'NoneType' is not iterable
}

TEST_CASE("jinja: attribute, item and slice access") {
  CHECK(render("{{ d.a }} {{ d[\"b\"] }} {{ d.zz }}|{{ d[\"zz\"] }}|{{ l[0] }} {{ l[-1] }} {{ l[5] }}|{{ l.0 }}") == "2 1 ||3 2 |3");
  CHECK(render("{{ nested.a.b[1].c }} {{ nested[\"a\"][\"b\"][0] }}") == "deep 10");
  CHECK(render("{{ n.attr }}|{{ n[\"x\"] }}|{{ s.foo is defined }}|{{ l.append is defined }}") == "||False|False");
  CHECK(render("{{ {\"items\": \"X\"}[\"items\"] }} {{ {\"items\": \"X\"}.items() }}") == "X dict_items([('items', 'X')])");
  CHECK(render("{{ s[0] }}{{ s[-1] }}{{ s[1:4] }}{{ s[::-1] }}{{ s[::2] }}{{ s[-3:] }}{{ s[:-3] }}{{ s[100:] }}|{{ u[1:5] }}{{ u[-1] }}") == "HdelldlroW olleHHloWrdrldHello Wo|élloe");
  CHECK(render("{{ l[1:] }}{{ l[::-1] }}{{ l[:1] }}{{ msgs[1:][0].role }}{{ (1, 2, 3)[1:] }}") == "[1, 2][2, 1, 3][3]user(2, 3)");
  CHECK(fails("{{ x_undefined.attr }}") == Kind::Runtime);  // jinja2: 'x_undefined' is undefined
  CHECK(fails("{{ x_undefined[\"x\"] }}") == Kind::Runtime);  // jinja2: 'x_undefined' is undefined
  CHECK(fails("{{ l[::0] }}") == Kind::Runtime);  // jinja2: slice step cannot be zero
  CHECK(fails("{{ n[1:] }}") == Kind::Runtime);  // jinja2: 'NoneType' object is not subscriptable
  CHECK(fails("{{ l.append(1) }}") == Kind::Runtime);  // jinja2: access to attribute 'append' of 'list' object is unsafe.
  CHECK(fails("{{ d.update({}) }}") == Kind::Runtime);  // jinja2: access to attribute 'update' of 'dict' object is unsafe.
}

TEST_CASE("jinja: for loops") {
  CHECK(render("{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }},{% endfor %}") == "1032TrueFalse31,2121FalseFalse31,3210FalseTrue31,");
  CHECK(render("{% for x in l %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}") == "[|1][3|2][1|]");
  CHECK(render("{% for x in e %}x{% else %}empty{% endfor %}") == "empty");
  CHECK(render("{% for x in l if x > 1 %}{{ x }}{{ loop.index }}/{{ loop.length }} {% else %}none{% endfor %}") == "31/2 22/2 ");
  CHECK(render("{% for x in l if x > 5 %}{{ x }}{% else %}none{% endfor %}") == "none");
  CHECK(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}") == "b=1;a=2;");
  CHECK(render("{% for k in d %}{{ k }}{% endfor %}") == "ba");
  CHECK(render("{% for c in \"héllo\" %}{{ c }}.{% endfor %}") == "h.é.l.l.o.");
  CHECK(render("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}{% for (a, b) in [[5, 6]] %}{{ a }}{{ b }}{% endfor %}") == "3756");
  CHECK(render("{% for x in x_undefined %}x{% else %}E{% endfor %}") == "E");
  CHECK(render("{% for x in l %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}") == "3");
  CHECK(render("{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}") == "32");
  CHECK(render("{% for x in l %}{% for y in sl %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}") == "12341|12342|12343|");
  CHECK(render("{% for x in l %}{{ loop.cycle(\"a\", \"b\") }}{% endfor %}") == "aba");
  CHECK(render("{% for m in msgs %}{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}") == "system,user,assistant,user");
  CHECK(render("{% for x in range(3) %}{{ x }}{% endfor %}{% for x in range(10, 0, -3) %}{{ x }}{% endfor %}") == "01210741");
  CHECK(render("{{ loop }}") == "");
  CHECK(render("{% for x in l %}{% endfor %}{{ x }}|{{ x is defined }}") == "|False");
  CHECK(render("{% for m in msgs[::-1] %}{{ m.role[0] }}{% endfor %}") == "uaus");
  CHECK(render("{% for a in l %}{% for b in l %}{% if b == 2 %}{% break %}{% endif %}{{ a }}{{ b }} {% endfor %}{% endfor %}") == "33 31 13 11 23 21 ");
  CHECK(fails("{% for a, b in [(1, 2, 3)] %}{% endfor %}") == Kind::Runtime);  // jinja2: too many values to unpack (expected 2)
  CHECK(fails("{% for x in n %}{% endfor %}") == Kind::Runtime);  // jinja2: 'NoneType' object is not iterable
  CHECK(fails("{% for x in 5 %}{% endfor %}") == Kind::Runtime);  // jinja2: 'int' object is not iterable
}

TEST_CASE("jinja: set, namespace, with and scoping") {
  CHECK(render("{% set x = 1 %}{% for i in l %}{% set x = i %}{{ x }}{% endfor %}{{ x }}") == "3121");
  CHECK(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}") == "12");
  CHECK(render("{% set ns = namespace(c=0) %}{% for i in l %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}") == "6");
  CHECK(render("{% set ns = namespace() %}{% set ns.x = 5 %}{{ ns.x }}") == "5");
  CHECK(render("{% set ns = namespace(items=[]) %}{% for i in l %}{% set ns.items = ns.items + [i * 2] %}{% endfor %}{{ ns.items }}") == "[6, 2, 4]");
  CHECK(render("{% set ns = namespace(d, x=1) %}{{ ns.a }}{{ ns.x }}{{ ns[\"a\"] }}") == "212");
  CHECK(render("{{ dict(a=1, b=\"x\") }}{{ dict([(\"k\", 1)]) }}") == "{'a': 1, 'b': 'x'}{'k': 1}");
  CHECK(render("{% set t %}block {{ s }}{% endset %}[{{ t }}]") == "[block Hello World]");
  CHECK(render("{% set t | upper %}block {{ s }}{% endset %}[{{ t }}]") == "[BLOCK HELLO WORLD]");
  CHECK(render("{% if t %}{% set z = 1 %}{% endif %}{{ z }}") == "1");
  CHECK(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}") == "3");
  CHECK(render("{% filter upper %}hello {{ s }}{% endfilter %}") == "HELLO HELLO WORLD");
  CHECK(render("{% set x = [1, 2] %}{% set y = x + [3] %}{{ x }}{{ y }}") == "[1, 2][1, 2, 3]");
  CHECK(render("{% set d2 = {\"k\": [1, {\"z\": none}], \"t\": true} %}{{ d2 }}") == "{'k': [1, {'z': None}], 't': True}");
  CHECK(render("{% for m in msgs %}{% if m.role == \"user\" %}{% set last = loop.index0 %}{% endif %}{% endfor %}{{ last is defined }}") == "False");
  CHECK(render("{% set ns = namespace(found=false) %}{% for m in msgs %}{% if m.role == \"assistant\" %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}") == "True");
  CHECK(render("{% set messages = msgs[1:] %}{{ messages|length }}") == "3");
  CHECK(fails("{% set a, b = [1] %}") == Kind::Runtime);  // jinja2: not enough values to unpack (expected 2, got 1)
  CHECK(fails("{% set x = 3 %}{% set x.y = 1 %}") == Kind::Runtime);  // jinja2: cannot assign attribute on non-namespace object
}

TEST_CASE("jinja: macros") {
  CHECK(render("{% macro m(a, b=\"B\") %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}{{ m() }}") == "[1B][12][43][B]");
  CHECK(render("{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=\"v\") }}") == "(2, 3){'k': 'v'}");
  CHECK(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}") == "321");
  CHECK(render("{% set g = \"G\" %}{% macro m() %}{{ g }}{{ s }}{% endmacro %}{{ m() }}{% set g = \"H\" %}{{ m() }}") == "GHello WorldHHello World");
  CHECK(render("{%- macro m(x) -%}\n  {{ x }}\n{%- endmacro -%}\n[{{ m(\"a\") }}]") == "[a]");
  CHECK(render("{% macro m() %}{% set inner = 1 %}{% endmacro %}{{ m() }}{{ inner }}") == "");
  CHECK(render("{% macro m(a, b=a ~ \"x\") %}{{ b }}{% endmacro %}{{ m(\"q\") }}") == "qx");
  CHECK(render("{% set ns = namespace(a=0) %}{% macro inc() %}{% set ns.a = ns.a + 1 %}{% endmacro %}{{ inc() }}{{ inc() }}{{ ns.a }}") == "2");
  CHECK(render("{% macro m(a, b) %}{{ a }}-{{ b }}{% endmacro %}{{ m(*[1, 2]) }} {{ m(**{\"a\": 3, \"b\": 4}) }} {{ m(1, **{\"b\": 2}) }}") == "1-2 3-4 1-2");
  CHECK(fails("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}") == Kind::Runtime);  // jinja2: macro 'm' takes not more than 1 argument(s)
  CHECK(fails("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(a=1, zz=2) }}") == Kind::Runtime);  // jinja2: macro 'm' takes no keyword argument 'zz'
}

TEST_CASE("jinja: tests") {
  CHECK(render("{{ n is none }} {{ i is number }} {{ t is number }} {{ t is integer }} {{ fl is float }} {{ t is boolean }} {{ s is string }} {{ d is mapping }} {{ l is sequence }} {{ d is sequence }} {{ s is iterable }} {{ i is iterable }}") == "True True True False True True True True True True True False");
  CHECK(render("{{ x_undefined is defined }} {{ x_undefined is undefined }} {{ x_undefined is sequence }} {{ x_undefined is iterable }} {{ x_undefined is none }} {{ x_undefined is string }}") == "False True True True False False");
  CHECK(render("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ \"abc\" is lower }} {{ \"ABC\" is upper }} {{ \"aB\" is lower }} {{ \"1\" is lower }}") == "True True True False True True False False");
  CHECK(render("{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ge 2 }} {{ 1 is le 0 }} {{ 1 is ne 1 }} {{ 2 is in l }} {{ \"upper\" is filter }} {{ \"odd\" is test }} {{ \"nope\" is filter }}") == "True False True False True False False True True True False");
  CHECK(render("{{ n is sameas none }} {{ t is sameas true }} {{ l is sameas l }} {{ s is not string }} {{ not s is string }} {{ n is not none }} {{ t is true }} {{ f is false }} {{ 1 is true }}") == "True True True False False False True True False");
  CHECK(render("{{ range is callable }} {{ x_undefined is callable }} {{ i is callable }} {{ \"<b>\"|safe is escaped }}") == "True True False True");
  CHECK(fails("{{ i is nosuchtest }}") == Kind::Syntax);  // jinja2: No test named 'nosuchtest'.
}

TEST_CASE("jinja: filters") {
  CHECK(render("{{ s|upper }} {{ s|lower }} {{ u|upper }} {{ u|lower }} {{ u|title }} {{ u|capitalize }} {{ \"hello-world foo(bar) x[y]z\"|title }} {{ \"aBC dEF\"|capitalize }}") == "HELLO WORLD hello world HÉLLO WÖRLD ΣΑΣ STRASSE héllo wörld σας straße Héllo Wörld Σας Straße Héllo wörld σας straße Hello-World Foo(Bar) X[Y]z Abc def");
  CHECK(render("{{ ws|trim }}|{{ \"xxhixx\"|trim(\"x\") }}|{{ n|trim }}|{{ x_undefined|trim }}|") == "pad|hi|None||");
  CHECK(render("{{ s|length }} {{ u|length }} {{ l|length }} {{ d|length }} {{ x_undefined|length }} {{ l|count }}") == "11 22 3 2 0 3");
  CHECK(render("{{ l|first }} {{ l|last }} {{ s|first }} {{ d|first }} {{ e|first }}|{{ e|last }}|") == "3 2 H b ||");
  CHECK(render("{{ l|join }} {{ l|join(\", \") }} {{ msgs|join(\"|\", attribute=\"role\") }} {{ [1, none, \"a\"]|join(\"-\") }}") == "312 3, 1, 2 system|user|assistant|user 1-None-a");
  CHECK(render("{{ l|sort }} {{ l|sort(reverse=true) }} {{ sl|sort }} {{ sl|sort(case_sensitive=true) }} {{ msgs|sort(attribute=\"role\")|map(attribute=\"content\")|list }}") == "[1, 2, 3] [3, 2, 1] ['A', 'a', 'b', 'c'] ['A', 'a', 'b', 'c'] ['A1', 'S', 'U1', 'U2']");
  CHECK(render("{{ sl|unique|list }} {{ sl|unique(case_sensitive=true)|list }} {{ [1, 2, 1, 3, 2]|unique|list }} {{ l|max }} {{ l|min }} {{ sl|max }} {{ sl|min }} {{ e|max }}|") == "['b', 'A', 'c'] ['b', 'A', 'c', 'a'] [1, 2, 3] 3 1 c A |");
  CHECK(render("{{ l|sum }} {{ [1.5, 2]|sum }} {{ msgs|map(attribute=\"role\")|list }} {{ l|map(\"string\")|list }} {{ sl|map(\"upper\")|join }} {{ msgs|map(attribute=\"nope\", default=\"D\")|list }}") == "6 3.5 ['system', 'user', 'assistant', 'user'] ['3', '1', '2'] BACA ['D', 'D', 'D', 'D']");
  CHECK(render("{{ l|reverse|list }} {{ s|reverse }} {{ d|dictsort }} {{ d|dictsort(by=\"value\") }} {{ d|dictsort(reverse=true) }} {{ d|items|list }} {{ x_undefined|items|list }}") == "[2, 1, 3] dlroW olleH [('a', 2), ('b', 1)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)] []");
  CHECK(render("{{ l|select(\"odd\")|list }} {{ l|reject(\"odd\")|list }} {{ msgs|selectattr(\"role\", \"equalto\", \"user\")|list|length }} {{ msgs|rejectattr(\"role\", \"eq\", \"user\")|map(attribute=\"role\")|list }}") == "[3, 1] [2] 2 ['system', 'assistant']");
  CHECK(render("{{ l|select|list }} {{ [0, 1, \"\", \"a\", none]|select|list }} {{ [1, 2, 3]|select(\"in\", [2, 3])|list }} {{ l|select(\">\", 1)|list }}") == "[3, 1, 2] [1, 'a'] [2, 3] [3, 2]");
  CHECK(render("{% if e|select %}a generator is always true{% endif %}") == "a generator is always true");
  CHECK(render("{% set g = l|select %}{{ g|list }}{{ g|list }}") == "[3, 1, 2][]");
  CHECK(render("{% set g = l|select %}{{ g|first }}{{ g|list }}") == "3[1, 2]");
  CHECK(render("{{ \"3\"|int + 1 }} {{ \"3.7\"|int }} {{ \"x\"|int }} {{ \"x\"|int(5) }} {{ 3.9|int }} {{ -3.9|int }} {{ \" 0x1A \"|int(base=16) }} {{ \"0b11\"|int(base=0) }} {{ none|int }} {{ \"1e3\"|int }}") == "4 3 0 5 3 -3 26 3 0 1000");
  CHECK(render("{{ \"3.5\"|float }} {{ 3|float }} {{ \"x\"|float }} {{ \" inf \"|float }} {{ \"1_0.5\"|float }} {{ -3|abs }} {{ -2.5|abs }}") == "3.5 3.0 0.0 inf 10.5 3 2.5");
  CHECK(render("{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ 2.1|round(method=\"ceil\") }} {{ 2.9|round(method=\"floor\") }} {{ -0.5|round }} {{ 1.23456|round(3) }}") == "2.0 4.0 2.67 3 3.0 2.0 -0.0 1.235");
  CHECK(render("{{ \"a\\nb\\n\\nc\"|indent }}|{{ \"a\\nb\"|indent(2, true) }}|{{ \"a\\n\\nb\"|indent(2, blank=true) }}|{{ \"x\\ny\"|indent(\"> \") }}|{{ \"\"|indent }}|") == "a\n    b\n\n    c|  a\n  b|a\n  \n  b|x\n> y||");
  CHECK(render("{{ \"hello\"|replace(\"l\", \"L\") }} {{ \"hello\"|replace(\"l\", \"L\", 1) }} {{ \"abc\"|replace(\"\", \"-\") }} {{ 123|replace(\"2\", \"x\") }}") == "heLLo heLlo -a-b-c- 1x3");
  CHECK(render("{{ x_undefined|default(\"D\") }} {{ n|default(\"D\") }} {{ \"\"|default(\"D\", true) }} {{ 0|d(\"Z\", boolean=true) }} {{ x_undefined|default }}|") == "D None D Z |");
  CHECK(render("{{ i|string }} {{ l|string }} {{ n|string }} {{ x_undefined|string }}|{{ l|list }} {{ s|list }} {{ d|list }} {{ x_undefined|list }}") == "7 [3, 1, 2] None |[3, 1, 2] ['H', 'e', 'l', 'l', 'o', ' ', 'W', 'o', 'r', 'l', 'd'] ['b', 'a'] []");
  CHECK(render("{{ \"<a href='x'>&\\\"\"|e }} {{ \"<b>\"|safe }} {{ (\"<b>\"|safe)|e }} {{ \"<b>\"|forceescape }} {{ n|e }}") == "&lt;a href=&#39;x&#39;&gt;&amp;&#34; <b> <b> &lt;b&gt; None");
  CHECK(render("{{ \"\\\"\" + (\"<b>\"|safe) }} {{ (\"<b>\"|safe) + \"<\" }} {{ (\"<b>\"|safe) ~ \"<\" }} {{ \"%s!\"|format(\"<x>\") }} {{ (\"%s!\"|safe) % \"<x>\" }}") == "&#34;<b> <b>&lt; <b>< <x>! &lt;x&gt;!");
  CHECK(render("{{ \"%s-%s\"|format(1, \"a\") }} {{ \"%(a)s\"|format(a=5) }} {{ \"%d%%\"|format(50) }} {{ \"%05.1f\"|format(3.14159) }} {{ \"%-4s|\"|format(\"ab\") }} {{ \"%r\"|format(\"x\") }}") == "1-a 5 50% 003.1 ab  | 'x'");
  CHECK(render("{{ \"%s\" % s }} {{ \"%s and %s\" % (1, 2) }} {{ \"%x\" % 255 }} {{ \"%(k)s\" % {\"k\": \"v\"} }} {{ \"%c\" % 65 }}") == "Hello World 1 and 2 ff v A");
  CHECK(render("{{ s|center(21) }}|{{ \"ab\"|center(5) }}|{{ d|attr(\"a\") }}|") == "     Hello World     |  ab ||");
  CHECK(fails("{{ x_undefined|int }}") == Kind::Runtime);  // jinja2: 'x_undefined' is undefined
  CHECK(fails("{{ l|nosuchfilter }}") == Kind::Syntax);  // jinja2: No filter named 'nosuchfilter'.
  CHECK(fails("{{ n|length }}") == Kind::Runtime);  // jinja2: object of type 'NoneType' has no len()
  CHECK(fails("{{ i|length }}") == Kind::Runtime);  // jinja2: object of type 'int' has no len()
  CHECK(fails("{{ l|select(\"odd\")|length }}") == Kind::Runtime);  // jinja2: object of type 'generator' has no len()
}

TEST_CASE("jinja: tojson is json.dumps(ensure_ascii=False)") {
  CHECK(render("{{ d|tojson }} {{ l|tojson }} {{ \"héllo\\n\\\"q\\\"\"|tojson }} {{ n|tojson }} {{ fl|tojson }} {{ t|tojson }} {{ e|tojson }} {{ {}|tojson }} {{ (1, 2)|tojson }}") == "{\"b\": 1, \"a\": 2} [3, 1, 2] \"héllo\\n\\\"q\\\"\" null 2.5 true [] {} [1, 2]");
  CHECK(render("{{ nested|tojson(indent=2) }}") == "{\n  \"a\": {\n    \"b\": [\n      10,\n      {\n        \"c\": \"deep\"\n      }\n    ]\n  }\n}");
  CHECK(render("{{ nested|tojson(indent=4) }}") == "{\n    \"a\": {\n        \"b\": [\n            10,\n            {\n                \"c\": \"deep\"\n            }\n        ]\n    }\n}");
  CHECK(render("{{ d|tojson(sort_keys=true) }} {{ \"é\"|tojson(ensure_ascii=true) }} {{ \"😀\"|tojson(true) }}") == "{\"a\": 2, \"b\": 1} \"\\u00e9\" \"\\ud83d\\ude00\"");
  CHECK(render("{{ d|tojson(separators=(\",\", \":\")) }} {{ {\"a\": [1, {}], \"b\": []}|tojson(indent=2) }} {{ [1, 2]|tojson(indent=0) }} {{ [1, 2]|tojson(indent=\"\\t\") }}") == "{\"b\":1,\"a\":2} {\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n} [\n1,\n2\n] [\n\t1,\n\t2\n]");
  CHECK(render("{{ \"\\u00e9\\u2028\\x00\\x1f\\x7f\"|tojson }} {{ \"\\u00e9\\u2028\\x00\\x1f\\x7f\"|tojson(ensure_ascii=true) }}") == "\"é \\u0000\\u001f\177\" \"\\u00e9\\u2028\\u0000\\u001f\\u007f\"");
  CHECK(render("{{ [1.0, 1e20, 1e-7, 0.1 + 0.2, 5e-324]|tojson }}") == "[1.0, 1e+20, 1e-07, 0.30000000000000004, 5e-324]");
  CHECK(render("{{ msgs[0]|tojson }}") == "{\"role\": \"system\", \"content\": \"S\"}");
  CHECK(render("{% set out = msgs[0]|tojson %}{{ out[:-1] }}") == "{\"role\": \"system\", \"content\": \"S\"");
  CHECK(fails("{{ x_undefined|tojson }}") == Kind::Runtime);  // jinja2: Object of type Undefined is not JSON serializable
  CHECK(fails("{{ d.items()|tojson }}") == Kind::Runtime);  // jinja2: Object of type dict_items is not JSON serializable
  CHECK(fails("{{ (l|select)|tojson }}") == Kind::Runtime);  // jinja2: Object of type generator is not JSON serializable
}

TEST_CASE("jinja: string, dict and list methods") {
  CHECK(render("{{ s.upper() }} {{ s.lower() }} {{ s.startswith(\"He\") }} {{ s.endswith(\"ld\") }} {{ s.startswith((\"x\", \"H\")) }} {{ s.split() }} {{ s.split(\"o\") }} {{ s.split(\"o\", 1) }} {{ s.rsplit(\"o\", 1) }}") == "HELLO WORLD hello world True True True ['Hello', 'World'] ['Hell', ' W', 'rld'] ['Hell', ' World'] ['Hello W', 'rld']");
  CHECK(render("{{ ws.strip() }}|{{ ws.lstrip() }}|{{ ws.rstrip() }}|{{ \"xxhixx\".strip(\"x\") }}|{{ \"  a  b  \".split() }}|{{ \"a,,b\".split(\",\") }}|{{ \"\".split() }}|{{ \"\".split(\",\") }}") == "pad|pad \n |  \t pad|hi|['a', 'b']|['a', '', 'b']|[]|['']");
  CHECK(render("{{ s.replace(\"l\", \"L\") }} {{ s.replace(\"l\", \"L\", 2) }} {{ s.find(\"o\") }} {{ s.rfind(\"o\") }} {{ s.find(\"z\") }} {{ s.count(\"l\") }} {{ \"-\".join([\"a\", \"b\"]) }} {{ s.title() }} {{ \"hello world\".capitalize() }}") == "HeLLo WorLd HeLLo World 4 7 -1 3 a-b Hello World Hello world");
  CHECK(render("{{ \"{} and {}\".format(1, \"b\") }} {{ \"{0}{1}{0}\".format(\"a\", \"b\") }} {{ \"{x}!\".format(x=5) }} {{ \"{{}}{}\".format(1) }} {{ \"{!r}\".format(\"q\") }}") == "1 and b aba 5! {}1 'q'");
  CHECK(render("{{ \"l1\\nl2\\r\\nl3\\n\\nl5\".splitlines() }} {{ \"a\\nb\\n\".splitlines(true) }} {{ \"a b\".partition(\" \") }} {{ \"abc\".zfill(5) }} {{ \"-5\".zfill(4) }} {{ \"ab\".ljust(4, \"*\") }}|{{ \"ab\".rjust(4) }}") == "['l1', 'l2', 'l3', '', 'l5'] ['a\\n', 'b\\n'] ('a', ' ', 'b') 00abc -005 ab**|  ab");
  CHECK(render("{{ \"abc\".removeprefix(\"a\") }} {{ \"abc\".removesuffix(\"c\") }} {{ \"123\".isdigit() }} {{ \"a1\".isalnum() }} {{ \"ab\".isalpha() }} {{ \" \".isspace() }} {{ \"ab\".islower() }} {{ \"AB\".isupper() }}") == "bc ab True True True True True True");
  CHECK(render("{{ d.get(\"a\") }} {{ d.get(\"zz\") }} {{ d.get(\"zz\", 5) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ l.index(2) }} {{ l.count(1) }}") == "2 None 5 ['b', 'a'] [1, 2] [('b', 1), ('a', 2)] 2 1");
  CHECK(render("{{ u.split(\"ö\") }} {{ \"ǅ\".lower() }} {{ \"ß\".upper() }} {{ \"İ\".lower()|length }} {{ \"ΣΑΣ ΟΔΟΣ\".lower() }} {{ \"ﬁx\".title() }} {{ \"ǆemal\".title() }}") == "['héllo w', 'rld ΣΑΣ straße'] ǆ SS 2 σας οδος Fix ǅemal");
  CHECK(render("{{ msgs[0].content.startswith(\"S\") and msgs[0].content.endswith(\"S\") }} {{ \"a</think>b\".split(\"</think>\")[-1].lstrip(\"\\n\") }}") == "True b");
}

TEST_CASE("jinja: whitespace control matches trim_blocks and lstrip_blocks") {
  CHECK(render("a\n{% if t %}\n  b\n{% endif %}\nc") == "a\n  b\nc");
  CHECK(render("a\n  {% if t %}\n  b\n  {% endif %}\nc") == "a\n  b\nc");
  CHECK(render("a  {%- if t -%}  b  {%- endif -%}  c") == "abc");
  CHECK(render("a\n{{- s -}}\nb") == "aHello Worldb");
  CHECK(render("a {{ s }} \n b") == "a Hello World \n b");
  CHECK(render("  {# comment #}\nx") == "x");
  CHECK(render("x {#- c -#} y") == "xy");
  CHECK(render("a\n  {%+ if t %}b{% endif %}\n") == "a\n  b");
  CHECK(render("a\n{% if t +%}\nb{% endif %}") == "a\n\nb");
  CHECK(render("{% raw %}{{ not parsed }}{% endraw %}") == "{{ not parsed }}");
  CHECK(render("  {% raw -%}  x  {%- endraw %}  y") == "x  y");
  CHECK(render("line\n    {% for x in l %}\n    {{ x }}\n    {% endfor %}\nend\n") == "line\n    3\n    1\n    2\nend");
  CHECK(render("one trailing newline is dropped\n\n") == "one trailing newline is dropped\n");
  CHECK(render("crlf\r\n{% if t %}\r\nyes\r\n{% endif %}\r\n") == "crlf\nyes\n");
  CHECK(render("\t{% if t %}\tx\n\t{% endif %}") == "\tx\n");
  CHECK(render("{%- set x = 1 -%}\n\n  {{ x }}  \n") == "1  ");
  CHECK(render("{%- if true %}\n  indented\n{%- endif %}") == "  indented");
  CHECK(render("{% if true -%}\n  indented\n{% endif -%}\nafter") == "indented\nafter");
  CHECK(render("{%- for i in l %}\n{{ i }}\n{%- endfor %}\n") == "312");
  CHECK(render("{{- \"a\" -}}  \n  {{- \"b\" -}}") == "ab");
  CHECK(render("x\n  {# c #}  \ny") == "x\n  \ny");
  CHECK(render("a{%- if false %}b{%- elif true -%}  c  {%- else %}d{% endif -%}  e") == "ace");
  CHECK(render("{{ {\"a\": {\"b\": 1}}[\"a\"] }}") == "{'b': 1}");
  CHECK(render("　{%- if t %}x{% endif %}") == "x");
  CHECK(render("a\n　 {% if t %}x{% endif %}") == "a\nx");
}

TEST_CASE("jinja: syntax errors are reported as Syntax") {
  CHECK(fails("{# unterminated") == Kind::Syntax);  // jinja2: Missing end of comment tag
  CHECK(fails("{% if %}") == Kind::Syntax);  // jinja2: Expected an expression, got 'end of statement block'
  CHECK(fails("{{ 1 + }}") == Kind::Syntax);  // jinja2: unexpected 'end of print statement'
  CHECK(fails("{% endif %}") == Kind::Syntax);  // jinja2: Encountered unknown tag 'endif'.
  CHECK(fails("{% for x in l %}") == Kind::Syntax);  // jinja2: Unexpected end of template. Jinja was looking for the following tags: 
  CHECK(fails("{{ \"unterminated }}") == Kind::Syntax);  // jinja2: unexpected char '"' at 3
  CHECK(fails("{% if t %}{% else %}{% else %}{% endif %}") == Kind::Syntax);  // jinja2: Encountered unknown tag 'else'. Jinja was looking for the following ta
  CHECK(fails("{% set 1 = 2 %}") == Kind::Syntax);  // jinja2: can't assign to 'const'
  CHECK(fails("{{ s is string is string }}") == Kind::Syntax);  // jinja2: You cannot chain multiple tests with is
  CHECK(fails("{% macro m(a=1, b) %}{% endmacro %}") == Kind::Syntax);  // jinja2: non-default argument follows default argument
  CHECK(fails("{{ x.0.1 }}") == Kind::Runtime);  // jinja2: 'x' is undefined
  CHECK(fails("{{ (1 }}") == Kind::Syntax);  // jinja2: unexpected '}', expected ')'
  CHECK(fails("{{ 1) }}") == Kind::Syntax);  // jinja2: unexpected ')'
  CHECK(fails("{% nosuchtag %}") == Kind::Syntax);  // jinja2: Encountered unknown tag 'nosuchtag'.
}


TEST_CASE("jinja: raise_exception carries the template's message and location") {
  JinjaError e = error_of("line one\n{% if true %}{{ raise_exception('Conversation roles must alternate ' ~ 'user/assistant') }}{% endif %}");
  CHECK(e.kind() == Kind::Raised);
  CHECK(e.detail() == "Conversation roles must alternate user/assistant");
  CHECK(e.line() == 2);
  CHECK(e.col() == 17);
  CHECK(std::string(e.what()).find("Conversation roles must alternate user/assistant") != std::string::npos);
  CHECK(raised("{{ raise_exception(42) }}") == "42");
}

TEST_CASE("jinja: strftime_now formats the fixed date") {
  CHECK(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%A %j %B') }}|{{ strftime_now('%z%Z') }}") ==
        "26 Jul 2024|2024-07-26|Friday 208 July|");
  tiller::jinja::RenderOptions o;
  o.now = tiller::jinja::parse_fixed_date("26 Jul 2024");
  CHECK(tiller::jinja::Template("{{ strftime_now('%Y-%m-%d') }}").render({}, o) == "2024-07-26");
  o.now = tiller::jinja::parse_fixed_date("2025-01-02T03:04:05");
  CHECK(tiller::jinja::Template("{{ strftime_now('%H:%M:%S %d') }}").render({}, o) == "03:04:05 02");
  CHECK_THROWS_AS(tiller::jinja::parse_fixed_date("yesterday"), tiller::Error);
  // Without a fixed date it is the current time: just check the shape.
  CHECK(tiller::jinja::Template("{{ strftime_now('%Y')|length }}").render({}) == "4");
}

TEST_CASE("jinja: errors name the line and column") {
  JinjaError undefined_attr = error_of("ok\n  {{ x_undefined.role }}");
  CHECK(undefined_attr.kind() == Kind::Runtime);
  CHECK(undefined_attr.line() == 2);
  CHECK(undefined_attr.col() == 6);
  CHECK(undefined_attr.detail() == "'x_undefined' is undefined");

  JinjaError syntax = error_of("{% for x in l %}\n{{ x + }}\n{% endfor %}");
  CHECK(syntax.kind() == Kind::Syntax);
  CHECK(syntax.line() == 2);
  CHECK(std::string(syntax.what()).find("line 2") != std::string::npos);

  JinjaError unclosed = error_of("{% if t %}\nopen");
  CHECK(unclosed.kind() == Kind::Syntax);
  CHECK(std::string(unclosed.what()).find("endif") != std::string::npos);

  JinjaError type = error_of("{% set x = 'a' %}\n\n   {{ x + 1 }}");
  CHECK(type.line() == 3);
  CHECK(type.detail() == "can only concatenate str (not \"int\") to str");

  JinjaError named(Kind::Runtime, "");
  try {
    tiller::jinja::Template("{{ 1 +", "llama3").render({});
  } catch (const JinjaError& e) {
    named = e;
  }
  CHECK(named.kind() == Kind::Syntax);
  CHECK(std::string(named.what()).find("chat template 'llama3'") != std::string::npos);
}

TEST_CASE("jinja: unsupported constructs fail clearly with their position") {
  struct Case {
    const char* source;
    const char* construct;
    int line, col;
  };
  const Case cases[] = {
      {"{% include 'x.jinja' %}", "{% include %}", 1, 4},
      {"ok\n{% extends 'base' %}", "{% extends %}", 2, 4},
      {"{% import 'm' as m %}", "{% import %}", 1, 4},
      {"{% block b %}{% endblock %}", "{% block %}", 1, 4},
      {"{% macro m() %}{% endmacro %}{% call m() %}x{% endcall %}", "{% call %}", 1, 33},
      {"{% do l.append(1) %}", "{% do %}", 1, 4},
      {"{% for x in l recursive %}{% endfor %}", "recursive for loop", 1, 15},
      {"{{ l|batch(2)|list }}", "|batch filter", 1, 6},
      {"{{ l|groupby('x') }}", "|groupby filter", 1, 6},
      {"{{ s|wordcount }}", "|wordcount filter", 1, 6},
      {"{{ l|random }}", "|random filter", 1, 6},
      {"{{ s.encode() }}", "str.encode()", 1, 4},
      {"{{ '{:>5}'.format(1) }}", "str.format()", 1, 4},
      {"{{ 9223372036854775807 + 1 }}", "integer arithmetic beyond 64 bits", 1, 4},
      {"{{ (-8) ** 0.5 }}", "complex result of '**'", 1, 4},
      {"{{ {1: 'a'} }}", "dict literal with a int key", 1, 4},
      {"{{ cycler(1, 2) }}", "cycler()", 1, 4},
      {"{{ 'x' is sameas 'x' }}", "'sameas' test on str values", 1, 8},
      {"{{ '\\N{BULLET}' }}", "\\N{...} string escape", 1, 5},
  };
  for (const auto& c : cases) {
    CAPTURE(c.source);
    JinjaError e = error_of(c.source);
    CHECK(e.kind() == Kind::Unsupported);
    CHECK(e.detail() == std::string("unsupported Jinja construct '") + c.construct + "'");
    CHECK(e.line() == c.line);
    CHECK(e.col() == c.col);
    CHECK(std::string(e.what()).find(std::string("unsupported Jinja construct '") + c.construct + "' at line " +
                                     std::to_string(c.line) + " col " + std::to_string(c.col)) == 0);
  }
}

TEST_CASE("jinja: values that Python prints by memory address are refused, not guessed") {
  CHECK(fails("{{ s.upper }}") == Kind::Runtime);          // <built-in method upper of str object at 0x...>
  CHECK(fails("{{ l|select('odd') }}") == Kind::Runtime);  // <generator object select_or_reject at 0x...>
  CHECK(fails("{% for x in l %}{{ loop }}{% endfor %}") == Kind::Runtime);
  CHECK(render("{{ s.upper is defined }} {{ l|select('odd')|list }}") == "True [3, 1]");
}

TEST_CASE("jinja: break outside a loop is a syntax error") {
  CHECK(fails("{% break %}") == Kind::Syntax);
  CHECK(fails("{% for x in l %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}") == Kind::Syntax);
}

TEST_CASE("jinja: one parsed template renders concurrently") {
  const tiller::jinja::Template t(
      "{% set ns = namespace(n=0) %}{% for m in msgs %}{% set ns.n = ns.n + m.content|length %}{% endfor %}"
      "{{ name }}:{{ ns.n }}:{{ msgs|map(attribute='role')|join(',') }}");
  std::vector<std::thread> threads;
  std::vector<std::string> names, results(8);
  for (size_t k = 0; k < results.size(); ++k) names.push_back(std::string(1, static_cast<char>('a' + k)));
  for (size_t k = 0; k < results.size(); ++k) {
    threads.emplace_back([&, k] {
      tiller::jinja::DictData vars = context();
      vars.set("name", tiller::jinja::Value::string(names[k]));
      for (int rep = 0; rep < 200; ++rep) results[k] = t.render(vars);
    });
  }
  for (auto& th : threads) th.join();
  for (size_t k = 0; k < results.size(); ++k) CHECK(results[k] == names[k] + ":7:system,user,assistant,user");
}

TEST_CASE("jinja: values convert from JSON keeping key order") {
  auto j = nlohmann::ordered_json::parse(R"({"z": 1, "a": {"y": [1.5, true, null], "b": "x"}, "big": 9007199254740993})");
  tiller::jinja::DictData vars;
  vars.set("v", tiller::jinja::value_from_json(j));
  CHECK(tiller::jinja::Template("{{ v|tojson }}|{{ v }}").render(vars) ==
        R"({"z": 1, "a": {"y": [1.5, true, null], "b": "x"}, "big": 9007199254740993}|{'z': 1, 'a': {'y': [1.5, True, None], 'b': 'x'}, 'big': 9007199254740993})");
  CHECK_THROWS_AS(tiller::jinja::value_from_json(nlohmann::json::parse("18446744073709551615")), JinjaError);
}

TEST_CASE("jinja: string methods on invalid UTF-8 fail with the byte offset, not garbage") {
  for (const char* bad : {"\xff", "a\xc3", "\xed\xa0\x80" /* a surrogate */, "\xc0\xaf" /* overlong '/' */}) {
    INFO("bytes: ", bad);
    const JinjaError e = error_of(std::string("{{ '") + bad + "'|upper }}");
    CHECK(e.kind() == Kind::Runtime);
    CHECK(std::string(e.what()).find("invalid UTF-8") != std::string::npos);
  }
  CHECK(render("{{ 'straße'|upper }}") == "STRASSE");
}
