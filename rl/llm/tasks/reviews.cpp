// reviews: a review grammar, its sampler, parser and ground-truth sentiment (see reviews.h).
#include "rl/llm/tasks/reviews.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "engine/rng.h"

namespace rlft::llm {

namespace {

const std::vector<std::string> kDets = {"the", "this"};
const std::vector<std::string> kNouns = {
    "acting", "plot",       "story",  "music",     "ending",  "dialogue", "cast",
    "pacing", "soundtrack", "script", "humor",     "visuals", "screen",   "battery",
    "price",  "design",     "sound",  "packaging", "camera",  "keyboard"};
const std::vector<std::string> kVerbs = {"was", "is", "felt", "seemed"};
const std::vector<std::string> kAdverbs = {"very", "really", "quite", "rather", "not"};
const std::vector<std::string> kPositive = {"great",    "superb", "brilliant", "wonderful",
                                            "charming", "moving", "excellent", "delightful",
                                            "fun",      "clever"};
const std::vector<std::string> kNegative = {"awful", "dull",   "boring",  "terrible", "weak",
                                            "bland", "clumsy", "painful", "poor",     "messy"};
const std::vector<std::string> kNeutral = {"okay",   "fine",     "average",
                                           "decent", "ordinary", "predictable"};
const std::vector<std::string> kFeelings = {"loved", "liked",    "enjoyed",   "admired",
                                            "hated", "disliked", "regretted", "tolerated"};

// Sentiment weight of a word (0 for words that carry none).
double weight(const std::string& w) {
  static const std::vector<std::pair<std::string, double>> kWeights = {
      {"great", 1.0},      {"superb", 1.4},       {"brilliant", 1.4}, {"wonderful", 1.3},
      {"charming", 0.8},   {"moving", 0.9},       {"excellent", 1.3}, {"delightful", 1.1},
      {"fun", 0.7},        {"clever", 0.8},       {"awful", -1.4},    {"dull", -0.9},
      {"boring", -1.0},    {"terrible", -1.4},    {"weak", -0.8},     {"bland", -0.7},
      {"clumsy", -0.8},    {"painful", -1.2},     {"poor", -1.0},     {"messy", -0.7},
      {"okay", 0.1},       {"fine", 0.2},         {"average", 0.0},   {"decent", 0.3},
      {"ordinary", -0.1},  {"predictable", -0.3}, {"loved", 1.5},     {"liked", 0.8},
      {"enjoyed", 1.0},    {"admired", 1.0},      {"hated", -1.5},    {"disliked", -0.8},
      {"regretted", -1.2}, {"tolerated", -0.2}};
  for (const auto& [word, v] : kWeights)
    if (word == w) return v;
  return 0.0;
}

double modifier(const std::string& w) {
  if (w == "very" || w == "really") return 1.5;
  if (w == "quite") return 1.2;
  if (w == "rather") return 0.8;
  if (w == "not") return -0.6;
  return 1.0;
}

bool in(const std::vector<std::string>& list, const std::string& w) {
  return std::find(list.begin(), list.end(), w) != list.end();
}
bool is_adjective(const std::string& w) {
  return in(kPositive, w) || in(kNegative, w) || in(kNeutral, w);
}

const std::string& pick(const std::vector<std::string>& list, Generator& gen) {
  return list[size_t(gen.below(list.size()))];
}

// ---- sampler ------------------------------------------------------------------------------

enum Mood { kPos = 0, kNeg = 1, kNeu = 2 };

const std::vector<std::string>& adjectives_of(int mood) {
  return mood == kPos ? kPositive : mood == kNeg ? kNegative : kNeutral;
}

std::string sample_adjp(int mood, Generator& gen) {
  const double r = gen.uniform();
  if (r < 0.75) {  // on-mood adjective, half the time intensified
    const std::string& adj = pick(adjectives_of(mood), gen);
    if (gen.uniform() < 0.5) return adj;
    static const std::vector<std::string> kIntens = {"very", "really", "quite", "rather"};
    return pick(kIntens, gen) + " " + adj;
  }
  if (r < 0.9) {  // negated opposite ("not awful" in a positive review)
    const int opposite = mood == kPos ? kNeg : mood == kNeg ? kPos : int(gen.below(2));
    return "not " + pick(adjectives_of(opposite), gen);
  }
  const std::string& adj = pick(adjectives_of(int(gen.below(3))), gen);  // anything
  return gen.uniform() < 0.5 ? adj : pick(kAdverbs, gen) + " " + adj;
}

std::string sample_feeling(int mood, Generator& gen) {
  static const std::vector<std::string> pos = {"loved", "liked", "enjoyed", "admired"};
  static const std::vector<std::string> neg = {"hated", "disliked", "regretted"};
  static const std::vector<std::string> neu = {"tolerated", "liked", "disliked"};
  return pick(mood == kPos ? pos : mood == kNeg ? neg : neu, gen);
}

std::string opening(const std::string& det, const std::string& noun, const std::string& verb) {
  return "review: " + det + " " + noun + " " + verb;
}

// ---- parser ------------------------------------------------------------------------------

struct Parser {
  const std::string& s;
  size_t i = 0;
  bool lit(const char* t) {
    const size_t n = std::strlen(t);
    if (s.compare(i, n, t) != 0) return false;
    i += n;
    return true;
  }
  std::string word() {
    size_t j = i;
    while (j < s.size() && s[j] >= 'a' && s[j] <= 'z') ++j;
    std::string w = s.substr(i, j - i);
    i = j;
    return w;
  }
  bool adjp() {
    const std::string w = word();
    if (in(kAdverbs, w)) return lit(" ") && is_adjective(word());
    return is_adjective(w);
  }
  bool description(bool allow_and) {  // det noun verb adjp (and adjp)? "."
    if (!in(kDets, word()) || !lit(" ") || !in(kNouns, word()) || !lit(" ") ||
        !in(kVerbs, word()) || !lit(" ") || !adjp())
      return false;
    if (allow_and && lit(" and ") && !adjp()) return false;
    return lit(".");
  }
  bool second() {
    const size_t start = i;
    const std::string w = word();
    i = start;
    if (w == "the" || w == "this") return description(false);
    if (lit("i ")) {
      return in(kFeelings, word()) && lit(" ") && in(kDets, word()) && lit(" ") &&
             in(kNouns, word()) && lit(".");
    }
    return lit("overall it was ") && adjp() && lit(".");
  }
  bool review() {
    if (!lit("review: ") || !description(true)) return false;
    if (i == s.size()) return true;
    return lit(" ") && second() && i == s.size();
  }
};

}  // namespace

ReviewsTask::ReviewsTask(const TaskConfig& cfg) {
  RLFT_CHECK(cfg.train_size > 0 && cfg.eval_size > 0,
             "reviews: --train-size and --eval-size must be positive");
  // Openings → splits by hash.
  std::map<std::string, int> split_of;
  for (const auto& det : kDets)
    for (const auto& noun : kNouns)
      for (const auto& verb : kVerbs) {
        const std::string o = opening(det, noun, verb);
        const double u = hash_unit(cfg.data_seed, o);
        const int part = u < 0.10   ? int(Split::test)
                         : u < 0.20 ? int(Split::validation)
                                    : int(Split::train);
        split_of[o] = part;
        openings_[part].push_back(o);
      }
  const size_t want[3] = {size_t(cfg.train_size), size_t(cfg.eval_size), size_t(cfg.eval_size)};
  std::set<std::string> seen;
  Generator gen(cfg.data_seed);
  const int64_t max_draws = 50 * (cfg.train_size + 2 * cfg.eval_size);
  for (int64_t draw = 0; draw < max_draws; ++draw) {
    if (splits_[0].size() >= want[0] && splits_[1].size() >= want[1] &&
        splits_[2].size() >= want[2])
      break;
    const int mood = int(gen.below(3));
    const std::string& det = pick(kDets, gen);
    const std::string& noun = pick(kNouns, gen);
    const std::string& verb = pick(kVerbs, gen);
    std::string response(" ");
    response += sample_adjp(mood, gen);
    if (gen.uniform() < 0.4) response.append(" and ").append(sample_adjp(mood, gen));
    response += ".";
    if (gen.uniform() < 0.6) {  // a second sentence; one draw per statement keeps the order fixed
      const uint64_t kind = gen.below(3);
      if (kind == 0) {
        response.append(" ").append(pick(kDets, gen));
        response.append(" ").append(pick(kNouns, gen));
        response.append(" ").append(pick(kVerbs, gen));
        response.append(" ").append(sample_adjp(mood, gen)).append(".");
      } else if (kind == 1) {
        response.append(" i ").append(sample_feeling(mood, gen));
        response.append(" ").append(pick(kDets, gen));
        response.append(" ").append(pick(kNouns, gen)).append(".");
      } else {
        response.append(" overall it was ").append(sample_adjp(mood, gen)).append(".");
      }
    }
    const std::string prompt = opening(det, noun, verb);
    const int part = split_of[prompt];
    if (splits_[part].size() >= want[part] || !seen.insert(prompt + response).second) continue;
    splits_[part].push_back({prompt, response, true});
  }
}

std::string ReviewsTask::alphabet() const { return "abcdefghijklmnopqrstuvwxyz :."; }

double ReviewsTask::sentiment(const std::string& text) {
  std::vector<std::string> words;
  std::string w;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      w += char(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      words.push_back(w);
      w.clear();
    }
  }
  double score = 0;
  for (size_t k = 0; k < words.size(); ++k) {
    const double v = weight(words[k]);
    if (v != 0) score += v * (k > 0 ? modifier(words[k - 1]) : 1.0);
  }
  return 1.0 / (1.0 + std::exp(-2.0 * score));
}

bool ReviewsTask::is_grammatical(const std::string& text) { return Parser{text}.review(); }

SampleMetrics ReviewsTask::sample_metrics(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses) const {
  RLFT_CHECK(prompts.size() == responses.size(), "reviews: ", prompts.size(), " prompts but ",
             responses.size(), " responses");
  double grammatical = 0, positive = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string text = prompts[i] + strip_eos(responses[i]);
    grammatical += is_grammatical(text);
    positive += sentiment(text);
  }
  const double n = prompts.empty() ? 1.0 : double(prompts.size());
  return {{"grammatical", grammatical / n}, {"sentiment", positive / n}};
}

}  // namespace rlft::llm
