// reviews: short movie and product reviews from a small grammar, with a hidden ground-truth
// sentiment scorer — the DPO paper's IMDb setting (a GPT-2 fine-tuned on reviews, prompts that
// are review openings, a sentiment classifier as the reward) in miniature.
//
// Grammar (every review is one line; words separated by one space):
//   review    := "review: " first ( " " second )?
//   first     := det " " noun " " verb " " adjp ( " and " adjp )? "."
//   second    := det " " noun " " verb " " adjp "."
//              | "i " feeling " " det " " noun "."
//              | "overall it was " adjp "."
//   adjp      := ( adverb " " )? adjective
//   det       := the | this
//   noun      := acting | plot | story | music | ending | dialogue | cast | pacing | soundtrack
//              | script | humor | visuals | screen | battery | price | design | sound
//              | packaging | camera | keyboard
//   verb      := was | is | felt | seemed
//   adverb    := very | really | quite | rather | not
//   adjective := positive (great superb brilliant wonderful charming moving excellent
//                delightful fun clever) | negative (awful dull boring terrible weak bland
//                clumsy painful poor messy) | neutral (okay fine average decent ordinary
//                predictable)
//   feeling   := loved | liked | enjoyed | admired | hated | disliked | regretted | tolerated
// The longest review the grammar allows is 116 characters (the longest among 66k generated:
// 109), so BOS + review + EOS fits a 128-token context.
//
// Prompts are the 160 openings "review: <det> <noun> <verb>"; each opening is assigned to one
// split by a hash (80% train, 10% validation, 10% test), and a review belongs to the split of
// its opening, so splits share neither prompts nor reviews. Reviews are drawn with an
// overall sentiment (positive / negative / neutral, equally likely) that biases word choice.
//
// Ground-truth sentiment (defined over any text, grammatical or not):
//   score = Σ over sentiment words w:  weight(w) · modifier(previous word)
//   modifier: very, really ×1.5; quite ×1.2; rather ×0.8; not ×(−0.6); otherwise ×1
//   p(positive | text) = sigmoid(2 · score)
// with weights from +1.4 (superb, brilliant) to −1.4 (awful, terrible), neutral words near 0
// and feelings from +1.5 (loved) to −1.5 (hated). Words are the runs of letters, lower-cased.
#pragma once

#include <string>

#include "rl/llm/tasks/task.h"

namespace rlft::llm {

class ReviewsTask : public Task {
 public:
  explicit ReviewsTask(const TaskConfig& cfg);
  std::string name() const override { return "reviews"; }
  std::string alphabet() const override;
  const std::vector<Example>& examples(Split split) const override { return splits_[int(split)]; }
  std::vector<std::string> prompts(Split split) const override { return openings_[int(split)]; }
  // "grammatical": fraction of prompt + response (EOS stripped) that parse;
  // "sentiment": mean p(positive | prompt + response).
  SampleMetrics sample_metrics(const std::vector<std::string>& prompts,
                               const std::vector<std::string>& responses) const override;

  // p(positive | text) in [0, 1] (a logistic of the word scores: 1 or 0 exactly only far out,
  // e.g. 40 × "superb"; its users clamp the logit).
  static double sentiment(const std::string& text);
  // True when `text` is exactly one review of the grammar (no trailing space or EOS).
  static bool is_grammatical(const std::string& text);

 private:
  std::vector<Example> splits_[3];
  std::vector<std::string> openings_[3];
};

}  // namespace rlft::llm
