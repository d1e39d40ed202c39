// Internal: the expression half of the Jinja parser (token cursor, expressions, assignment
// targets); jinja_parser.cpp adds the statements on top.
#pragma once

#include <string>
#include <vector>

#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_lexer.h"

namespace tiller::jinja {

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

 protected:
  std::vector<Token> toks_;
  size_t i_ = 0;
  // Expression and block nesting, bounded so hostile input cannot exhaust the stack (parsing,
  // evaluating or freeing the tree all recurse over its depth).
  static constexpr int kMaxNesting = 200;
  int nesting_ = 0;

  struct Nest {
    ExprParser& p;
    explicit Nest(ExprParser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting)
        p.fail("expressions or blocks nested (or operators chained) more than " + std::to_string(kMaxNesting) + " levels deep");
    }
    ~Nest() { --p.nesting_; }
  };
  // A left-deep chain (a + b + c, x|f|g, a.b.c) deepens the tree one level per link, so links
  // count against the same bound as nesting for as long as the chain is being parsed.
  struct Chain {
    ExprParser& p;
    int links = 0;
    explicit Chain(ExprParser& parser) : p(parser) {}
    void link() {
      ++links;
      if (++p.nesting_ > kMaxNesting)
        p.fail("expressions or blocks nested (or operators chained) more than " + std::to_string(kMaxNesting) + " levels deep");
    }
    ~Chain() { p.nesting_ -= links; }
  };


  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  Pos pos() const { return {cur().line, cur().col}; }
  void next() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().value == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t);
  [[noreturn]] void fail(const std::string& msg) const;
  [[noreturn]] void fail_at(const std::string& msg, Pos p) const;
  void expect_op(const char* op);
  void expect_block_end();
  std::string expect_name();
  Target parse_assign_target(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end, bool with_namespace);
  Target parse_assign_primary();

  // Expressions, following jinja2.parser.Parser method by method.
  bool is_tuple_end(const std::vector<std::string>& extra_end) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end, bool explicit_parentheses);
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_condexpr();
  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, Pos p);
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  // Postfix nodes (a.b, a[b], a(...)) are located where their whole expression starts, so an
  // error points at `messages[0].role`, not at the dot or bracket.
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  CallSpec parse_call_args();
  ExprPtr parse_call(ExprPtr node);
  ExprPtr parse_filter(ExprPtr node, bool start_inline);
  ExprPtr parse_test(ExprPtr node);
};

ExprPtr make_expr(ExprKind kind, Pos pos);

}  // namespace tiller::jinja
