// The token loss of multilingual self-distillation (METHODS §5): a divergence between the
// student's next-token distribution (target-language context) and the frozen teacher's (English
// context), on each response token, weighted by dual-perspective safety weighting (DPSW).
//
// Divergences, over the full vocabulary or the teacher's top-K tokens (both distributions
// renormalised on that set):
//   fkl      KL(p_T ‖ p_S)
//   rkl      KL(p_S ‖ p_T)                       (the default)
//   jsd:β    β KL(p_T ‖ M) + (1-β) KL(p_S ‖ M), M = β p_T + (1-β) p_S, 0 < β < 1
//            (TRL's generalized_jsd_loss; TRL's β = 0 and 1 are fkl and rkl)
// DPSW: w_t = w_T · w_S with the teacher term from the entropy H of its top-K distribution
// (renormalised), h = H / ln K: "confident" w_T = 1 - h, "entropy" w_T = h; and the student term
// w_S = 1 - p_S(token), the token being the response's own (sampled) or the teacher's argmax
// (p_S over the full vocabulary). Weights carry no gradient. Off: w_t = 1.
// Normalisation: "batch" divides by Σ w over every response token of the optimizer step (the loss
// is the weighted mean), "none" by the token count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tiller {

enum class Divergence { ForwardKl, ReverseKl, Jsd };

struct DistillLossOptions {
  Divergence divergence = Divergence::ReverseKl;
  double jsd_beta = 0.5;
  int64_t top_k = 0;            // divergence support: the teacher's top K (0: the full vocabulary)
  bool dpsw = true;
  bool teacher_confident = true;  // w_T = 1 - h (confident-high) or h (entropy-high)
  int64_t dpsw_k = 20;          // K of the teacher's entropy
  bool student_on_teacher_argmax = false;  // w_S from p_S(teacher's argmax) instead of the sampled token
  bool normalize_batch = true;  // divide by Σ w (else by the token count)
};

// "rkl" | "fkl" | "jsd:0.5"
void parse_divergence(const std::string& text, DistillLossOptions& o);
std::string divergence_name(const DistillLossOptions& o);

struct TokenTerms {
  std::vector<double> divergence;  // [R] D_t
  std::vector<double> weight;      // [R] w_t before normalisation (1 without DPSW)
};

// For R response tokens: student and teacher logits [R, V] (host), each row's response token
// [R]. Returns D_t and w_t; when grad is non-empty it receives w_t · ∂D_t/∂z_S [R, V] (the
// unnormalised gradient: the step divides by its normaliser).
TokenTerms distill_token_terms(std::span<const float> student, std::span<const float> teacher,
                               std::span<const int32_t> tokens, int64_t V, const DistillLossOptions& o,
                               std::span<float> grad);

}  // namespace tiller
