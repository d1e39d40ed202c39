// The Jinja interpreter's bounds (RenderLimits, parser nesting): hostile templates stop quickly
// with a clear Runtime or Syntax error instead of hanging, exhausting memory or the stack, and
// published templates stay far inside them.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "engine/chat/jinja.h"

using tiller::jinja::JinjaError;
using tiller::jinja::RenderOptions;
using tiller::jinja::Template;
using Kind = tiller::jinja::JinjaError::Kind;

namespace {

// The error of parsing and rendering `source`, and how long it took to appear.
struct Outcome {
  bool failed = false;
  Kind kind = Kind::Runtime;
  std::string message;
  double seconds = 0;
};

Outcome run(const std::string& source, const RenderOptions& options = {}) {
  Outcome o;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    Template(source).render({}, options);
  } catch (const JinjaError& e) {
    o.failed = true;
    o.kind = e.kind();
    o.message = e.what();
  }
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return o;
}

std::string repeated(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; i++) out += s;
  return out;
}

}  // namespace

TEST_CASE("jinja limits: nested loops stop at the step budget, in about a second at most") {
  for (const char* source : {"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                             "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}"}) {
    CAPTURE(source);
    const Outcome o = run(source);
    CHECK(o.failed);
    CHECK(o.kind == Kind::Runtime);
    CHECK(o.message.find("more than 5000000 steps") != std::string::npos);
    CHECK(o.seconds < 10);  // about 1 s on one shared core; generous for sanitizer builds
  }
  RenderOptions small;
  small.limits.max_steps = 1000;
  const Outcome o = run("{% for i in range(1000) %}{% endfor %}", small);
  CHECK(o.message.find("more than 1000 steps") != std::string::npos);
  CHECK_FALSE(run("{% for i in range(100) %}{% endfor %}", small).failed);
}

TEST_CASE("jinja limits: strings, lists and output past the size limits are refused before they are built") {
  const char* growing[] = {
      "{{ 'x' * 100000000 }}",
      "{{ [1, 2] * 10000000 }}",
      "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
      "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
      "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
      "{{ 'ab'|center(999999999999) }}",
      "{{ 'ab'.ljust(999999999) }}",
      "{{ '7'.zfill(999999999) }}",
      "{{ 'ab\ncd'|indent(999999999) }}",
      "{{ [1, [2]]|tojson(indent=999999999) }}",
      "{{ '%999999999999999999999d' % 3 }}",
      "{{ '%.999999999s' % 'x' }}",
      "{{ ('x' * 1000000).replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
      "{% set s = 'x' * 1000000 %}{{ [s] * 100 }}",
      "{% set s = 'x' * 1000000 %}{{ ([s] * 100)|join(',') }}",
      "{% set s = 'x' * 1000000 %}{{ ','.join([s] * 100) }}",
      "{% set s = 'x' * 1000000 %}{{ ([s] * 100)|tojson }}",
      "{% set s = 'x' * 1000000 %}{{ ('%s' * 100) % ([s] * 100) }}",
      "{% set s = 'x' * 10000000 %}{{ '{0}{0}{0}{0}{0}'.format(s) }}",
  };
  for (const char* source : growing) {
    CAPTURE(source);
    const Outcome o = run(source);
    CHECK(o.failed);
    CHECK(o.kind == Kind::Runtime);
    CHECK(o.message.find("more than the 32 MiB one value may hold") != std::string::npos);
  }
  // Many values, each small enough: the render's total is bounded too.
  const Outcome total = run(
      "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ['x' * 1000000] %}{% endfor %}");
  CHECK(total.failed);
  CHECK(total.message.find("more than 512 MiB of strings and lists") != std::string::npos);
}

TEST_CASE("jinja limits: deep nesting is refused when parsed or rendered, never by overflowing the stack") {
  // Parse time: parentheses, blocks, operator and filter chains, `not` and inline-if chains.
  const std::string parsed[] = {
      "{{ " + repeated("(", 5000) + "1" + repeated(")", 5000) + " }}",
      repeated("{% if true %}", 5000) + repeated("{% endif %}", 5000),
      "{{ 1" + repeated(" + 1", 100000) + " }}",
      "{{ 1" + repeated(" ** 1", 100000) + " }}",
      "{{ true" + repeated(" and true", 100000) + " }}",
      "{{ 'a'" + repeated("|upper", 100000) + " }}",
      "{{ x" + repeated(".y", 100000) + " }}",
      "{{ x" + repeated("[0]", 100000) + " }}",
      "{{ f" + repeated("()", 100000) + " }}",
      "{{ " + repeated("not ", 100000) + "true }}",
      "{{ 1" + repeated(" if true else 1", 100000) + " }}",
      "{{ " + repeated("-", 100000) + "1 }}",
  };
  for (const std::string& source : parsed) {
    CAPTURE(source.substr(0, 40));
    const Outcome o = run(source);
    CHECK(o.seconds < 5);
    CHECK(o.failed);
    CHECK(o.kind == Kind::Syntax);
    CHECK(o.message.find("more than 200 levels deep") != std::string::npos);
  }
  // Run time: recursion through macros, values nested through a loop, a namespace that holds itself.
  const Outcome macro = run("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  CHECK(macro.failed);
  CHECK(macro.kind == Kind::Runtime);
  const Outcome nested = run("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}");
  CHECK(nested.message.find("nested more than 1000 levels deep") != std::string::npos);
  const Outcome chain = run(
      "{% set ns = namespace(n=none) %}{% for i in range(100000) %}{% set ns.n = namespace(a=[ns.n]) %}{% endfor %}{{ ns.n }}");
  CHECK(chain.failed);
  CHECK(chain.message.find("cannot be printed or compared") != std::string::npos);
  CHECK(run("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}").failed == false);  // Python prints {...}
  RenderOptions shallow;
  shallow.limits.max_depth = 20;
  const Outcome deep = run("{{ " + repeated("[", 30) + "1" + repeated("]", 30) + " }}", shallow);
  CHECK(deep.message.find("more than 20 levels deep while rendering") != std::string::npos);
}

TEST_CASE("jinja limits: a namespace holding itself prints as Python prints it") {
  CHECK(Template("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}").render({}) ==
        "<Namespace {'a': <Namespace {...}>}>");
}
