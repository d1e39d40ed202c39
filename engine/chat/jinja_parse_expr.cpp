// Jinja expression parser, mirroring jinja2.parser.Parser so precedence and the grammar's corner
// cases (tests without parentheses, inline if without else, adjacent string literals) agree.
#include "engine/chat/jinja_parser.h"

namespace tiller::jinja {

ExprPtr make_expr(ExprKind kind, Pos pos) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

std::string ExprParser::describe(const Token& t) {
  switch (t.type) {
    case Tok::Eof:
      return "end of template";
    case Tok::BlockEnd:
      return "end of statement block";
    case Tok::VarEnd:
      return "end of print statement";
    case Tok::BlockBegin:
      return "begin of statement block";
    case Tok::VarBegin:
      return "begin of print statement";
    case Tok::Data:
      return "template data";
    case Tok::String:
      return "string literal";
    default:
      return "'" + t.value + "'";
  }
}

void ExprParser::fail(const std::string& msg) const {
  throw JinjaError(JinjaError::Kind::Syntax, msg, {}, cur().line, cur().col);
}

void ExprParser::fail_at(const std::string& msg, Pos p) const {
  throw JinjaError(JinjaError::Kind::Syntax, msg, {}, p.line, p.col);
}

void ExprParser::expect_op(const char* op) {
  if (!skip_op(op)) fail(std::string("expected '") + op + "', found " + describe(cur()));
}

void ExprParser::expect_block_end() {
  if (cur().type != Tok::BlockEnd) fail("expected end of statement block '%}', found " + describe(cur()));
  next();
}

std::string ExprParser::expect_name() {
  if (cur().type != Tok::Name) fail("expected a name, found " + describe(cur()));
  std::string n = cur().value;
  next();
  return n;
}

Target ExprParser::parse_assign_target(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end, bool with_namespace) {
  Target t;
  t.pos = pos();
  if (name_only) {
    t.name = expect_name();
    return t;
  }
  if (with_namespace && cur().type == Tok::Name && look().type == Tok::Op && look().value == ".") {
    t.kind = Target::Kind::NsAttr;
    t.name = expect_name();
    next();  // '.'
    t.attr = expect_name();
    return t;
  }
  // parse_tuple(simplified=True): names separated by commas, optionally parenthesized.
  std::vector<Target> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end(extra_end)) break;
    items.push_back(parse_assign_primary());
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (items.empty()) fail("expected an assignment target, found " + describe(cur()));
    return std::move(items[0]);
  }
  t.kind = Target::Kind::Tuple;
  t.items = std::move(items);
  return t;
}

Target ExprParser::parse_assign_primary() {
  Target t;
  t.pos = pos();
  if (skip_op("(")) {
    std::vector<Target> items;
    while (!is_op(")")) {
      if (!items.empty()) expect_op(",");
      if (is_op(")")) break;
      items.push_back(parse_assign_primary());
    }
    expect_op(")");
    t.kind = Target::Kind::Tuple;
    t.items = std::move(items);
    return t;
  }
  if (cur().type != Tok::Name) fail("can't assign to " + describe(cur()));
  const std::string& n = cur().value;
  if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
    fail("can't assign to the constant '" + n + "'");
  t.name = n;
  next();
  return t;
}

bool ExprParser::is_tuple_end(const std::vector<std::string>& extra_end) const {
  if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
  if (cur().type == Tok::Name)
    for (const auto& e : extra_end)
      if (cur().value == e) return true;
  return false;
}

ExprPtr ExprParser::parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end, bool explicit_parentheses) {
  Pos p = pos();
  std::vector<ExprPtr> args;
  bool is_tuple = false;
  while (true) {
    if (!args.empty()) expect_op(",");
    if (is_tuple_end(extra_end)) break;
    if (simplified) {
      args.push_back(parse_primary());
    } else {
      args.push_back(parse_expression(with_condexpr));
    }
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!args.empty()) return std::move(args[0]);
    if (!explicit_parentheses) fail("expected an expression, found " + describe(cur()));
  }
  auto t = make_expr(ExprKind::Tuple, p);
  t->items = std::move(args);
  return t;
}

ExprPtr ExprParser::parse_expression(bool with_condexpr) {
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr ExprParser::parse_condexpr() {
  Pos p = pos();
  ExprPtr expr1 = parse_or();
  Chain chain(*this);
  while (skip_name("if")) {
    chain.link();
    ExprPtr expr2 = parse_or();
    ExprPtr expr3;
    if (skip_name("else")) expr3 = parse_condexpr();
    auto c = make_expr(ExprKind::CondExpr, p);
    c->a = std::move(expr2);
    c->b = std::move(expr1);
    c->c = std::move(expr3);
    expr1 = std::move(c);
    p = pos();
  }
  return expr1;
}

ExprPtr ExprParser::binary(const std::string& op, ExprPtr l, ExprPtr r, Pos p) {
  auto b = make_expr(ExprKind::Binary, p);
  b->name = op;
  b->a = std::move(l);
  b->b = std::move(r);
  return b;
}

ExprPtr ExprParser::parse_or() {
  Pos p = pos();
  ExprPtr left = parse_and();
  Chain chain(*this);
  while (skip_name("or")) {
    chain.link();
    left = binary("or", std::move(left), parse_and(), p);
    p = pos();
  }
  return left;
}

ExprPtr ExprParser::parse_and() {
  Pos p = pos();
  ExprPtr left = parse_not();
  Chain chain(*this);
  while (skip_name("and")) {
    chain.link();
    left = binary("and", std::move(left), parse_not(), p);
    p = pos();
  }
  return left;
}

ExprPtr ExprParser::parse_not() {
  if (is_name("not")) {
    Nest nest(*this);
    Pos p = pos();
    next();
    auto u = make_expr(ExprKind::Unary, p);
    u->name = "not";
    u->a = parse_not();
    return u;
  }
  return parse_compare();
}

ExprPtr ExprParser::parse_compare() {
  Pos p = pos();
  ExprPtr expr = parse_math1();
  std::vector<std::string> ops;
  std::vector<ExprPtr> operands;
  while (true) {
    if (cur().type == Tok::Op &&
        (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
         cur().value == ">" || cur().value == ">=")) {
      ops.push_back(cur().value);
      next();
    } else if (skip_name("in")) {
      ops.push_back("in");
    } else if (is_name("not") && look().type == Tok::Name && look().value == "in") {
      next();
      next();
      ops.push_back("notin");
    } else {
      break;
    }
    operands.push_back(parse_math1());
  }
  if (ops.empty()) return expr;
  auto c = make_expr(ExprKind::Compare, p);
  c->items.push_back(std::move(expr));
  for (auto& o : operands) c->items.push_back(std::move(o));
  c->ops = std::move(ops);
  return c;
}

ExprPtr ExprParser::parse_math1() {
  Pos p = pos();
  ExprPtr left = parse_concat();
  Chain chain(*this);
  while (is_op("+") || is_op("-")) {
    chain.link();
    std::string op = cur().value;
    next();
    left = binary(op, std::move(left), parse_concat(), p);
    p = pos();
  }
  return left;
}

ExprPtr ExprParser::parse_concat() {
  Pos p = pos();
  std::vector<ExprPtr> args;
  args.push_back(parse_math2());
  while (skip_op("~")) args.push_back(parse_math2());
  if (args.size() == 1) return std::move(args[0]);
  auto c = make_expr(ExprKind::Concat, p);
  c->items = std::move(args);
  return c;
}

ExprPtr ExprParser::parse_math2() {
  Pos p = pos();
  ExprPtr left = parse_pow();
  Chain chain(*this);
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    chain.link();
    std::string op = cur().value;
    next();
    left = binary(op, std::move(left), parse_pow(), p);
    p = pos();
  }
  return left;
}

ExprPtr ExprParser::parse_pow() {
  Pos p = pos();
  ExprPtr left = parse_unary(true);
  Chain chain(*this);
  while (skip_op("**")) {
    chain.link();
    left = binary("**", std::move(left), parse_unary(true), p);
    p = pos();
  }
  return left;
}

ExprPtr ExprParser::parse_unary(bool with_filter) {
  Nest nest(*this);
  Pos p = pos();
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    std::string op = cur().value;
    next();
    node = make_expr(ExprKind::Unary, p);
    node->name = op;
    node->a = parse_unary(false);
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr ExprParser::parse_primary() {
  const Token& t = cur();
  Pos p = pos();
  if (t.type == Tok::Name) {
    ExprPtr node;
    if (t.value == "true" || t.value == "True" || t.value == "false" || t.value == "False") {
      node = make_expr(ExprKind::Const, p);
      node->value = Value::boolean(t.value == "true" || t.value == "True");
    } else if (t.value == "none" || t.value == "None") {
      node = make_expr(ExprKind::Const, p);
      node->value = Value::none();
    } else {
      node = make_expr(ExprKind::Name, p);
      node->name = t.value;
    }
    next();
    return node;
  }
  if (t.type == Tok::String) {
    std::string s;
    while (cur().type == Tok::String) {  // adjacent literals concatenate, as in Python
      s += cur().value;
      next();
    }
    auto node = make_expr(ExprKind::Const, p);
    node->value = Value::string(std::move(s));
    return node;
  }
  if (t.type == Tok::Int || t.type == Tok::Float) {
    auto node = make_expr(ExprKind::Const, p);
    node->value = t.type == Tok::Int ? Value::integer(t.int_value) : Value::number(t.float_value);
    next();
    return node;
  }
  if (t.type == Tok::Op && t.value == "(") {
    next();
    ExprPtr node = parse_tuple(false, true, {}, true);
    expect_op(")");
    return node;
  }
  if (t.type == Tok::Op && t.value == "[") {
    next();
    auto node = make_expr(ExprKind::List, p);
    while (!is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }
  if (t.type == Tok::Op && t.value == "{") {
    next();
    auto node = make_expr(ExprKind::Dict, p);
    while (!is_op("}")) {
      if (!node->pairs.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      ExprPtr value = parse_expression(true);
      node->pairs.emplace_back(std::move(key), std::move(value));
    }
    expect_op("}");
    return node;
  }
  fail("unexpected " + describe(t));
}

ExprPtr ExprParser::parse_postfix(ExprPtr node) {
  Chain chain(*this);
  while (true) {
    if (is_op(".") || is_op("[") || is_op("(")) chain.link();
    if (is_op(".") || is_op("[")) {
      node = parse_subscript(std::move(node));
    } else if (is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::parse_filter_expr(ExprPtr node) {
  Chain chain(*this);
  while (true) {
    if (is_op("|") || is_name("is") || is_op("(")) chain.link();
    if (is_op("|")) {
      node = parse_filter(std::move(node), false);
    } else if (is_name("is")) {
      node = parse_test(std::move(node));
    } else if (is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::parse_subscript(ExprPtr node) {
  Pos p = node->pos;
  if (skip_op(".")) {
    const Token& attr = cur();
    if (attr.type == Tok::Name) {
      auto g = make_expr(ExprKind::Getattr, p);
      g->a = std::move(node);
      g->name = attr.value;
      next();
      return g;
    }
    if (attr.type != Tok::Int) fail("expected a name or number after '.', found " + describe(attr));
    auto g = make_expr(ExprKind::Getitem, p);
    g->b = make_expr(ExprKind::Const, pos());
    g->a = std::move(node);
    g->b->value = Value::integer(attr.int_value);
    next();
    return g;
  }
  expect_op("[");
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) expect_op(",");
    args.push_back(parse_subscribed());
  }
  expect_op("]");
  auto g = make_expr(ExprKind::Getitem, p);
  g->a = std::move(node);
  if (args.size() == 1) {
    g->b = std::move(args[0]);
  } else {
    g->b = make_expr(ExprKind::Tuple, p);
    g->b->items = std::move(args);
  }
  return g;
}

ExprPtr ExprParser::parse_subscribed() {
  Pos p = pos();
  std::vector<ExprPtr> args;
  if (skip_op(":")) {
    args.push_back(nullptr);
  } else {
    ExprPtr node = parse_expression(true);
    if (!is_op(":")) return node;
    next();
    args.push_back(std::move(node));
  }
  if (is_op(":")) {
    args.push_back(nullptr);
  } else if (!is_op("]") && !is_op(",")) {
    args.push_back(parse_expression(true));
  } else {
    args.push_back(nullptr);
  }
  if (skip_op(":")) {
    if (!is_op("]") && !is_op(",")) {
      args.push_back(parse_expression(true));
    } else {
      args.push_back(nullptr);
    }
  } else {
    args.push_back(nullptr);
  }
  auto s = make_expr(ExprKind::Slice, p);
  s->a = std::move(args[0]);
  s->b = std::move(args[1]);
  s->c = std::move(args[2]);
  return s;
}

CallSpec ExprParser::parse_call_args() {
  Pos p = pos();
  expect_op("(");
  CallSpec spec;
  bool require_comma = false;
  auto ensure = [&](bool ok) {
    if (!ok) fail_at("invalid syntax for function call expression", p);
  };
  while (!is_op(")")) {
    if (require_comma) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*")) {
      ensure(!spec.dyn_args && !spec.dyn_kwargs);
      next();
      spec.dyn_args = parse_expression(true);
    } else if (is_op("**")) {
      ensure(!spec.dyn_kwargs);
      next();
      spec.dyn_kwargs = parse_expression(true);
    } else if (cur().type == Tok::Name && look().type == Tok::Op && look().value == "=") {
      ensure(!spec.dyn_kwargs);
      std::string key = cur().value;
      next();
      next();
      spec.kwargs.push_back({key, parse_expression(true)});
    } else {
      ensure(!spec.dyn_args && !spec.dyn_kwargs && spec.kwargs.empty());
      spec.args.push_back(parse_expression(true));
    }
    require_comma = true;
  }
  expect_op(")");
  return spec;
}

ExprPtr ExprParser::parse_call(ExprPtr node) {
  Pos p = node->pos;
  auto c = make_expr(ExprKind::Call, p);
  c->call = parse_call_args();
  c->a = std::move(node);
  return c;
}

ExprPtr ExprParser::parse_filter(ExprPtr node, bool start_inline) {
  Chain chain(*this);
  while (is_op("|") || start_inline) {
    chain.link();
    if (!start_inline) next();
    Pos p = pos();
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    auto f = make_expr(ExprKind::Filter, p);
    f->name = name;
    if (is_op("(")) f->call = parse_call_args();
    f->a = std::move(node);
    node = std::move(f);
    start_inline = false;
  }
  return node;
}

ExprPtr ExprParser::parse_test(ExprPtr node) {
  Pos p = pos();
  next();  // 'is'
  bool negated = skip_name("not");
  std::string name = expect_name();
  while (skip_op(".")) {
    name += '.';
    name += expect_name();
  }
  auto t = make_expr(ExprKind::Test, p);
  t->name = name;
  if (is_op("(")) {
    t->call = parse_call_args();
  } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
              cur().type == Tok::Float || is_op("(") || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
    t->call.args.push_back(parse_postfix(parse_primary()));
  }
  t->a = std::move(node);
  if (!negated) return t;
  auto n = make_expr(ExprKind::Unary, p);
  n->name = "not";
  n->a = std::move(t);
  return n;
}

}  // namespace tiller::jinja
