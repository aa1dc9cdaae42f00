#include "rl/llm/rlhf_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "models/generate.h"
#include "rl/llm/lm.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/reviews.h"
#include "rl/run.h"

namespace rlft::llm {

std::vector<PreferencePair> parse_preferences(std::string_view text, const std::string& source) {
  std::vector<PreferencePair> out;
  json::for_each_jsonl_line(text, [&](std::string_view line, size_t line_no) {
    const json::Value v = json::parse_jsonl_line(line, source, line_no);
    const std::string where = str(source, ":", line_no, ": ");
    RLFT_CHECK(v.is_object(), where,
               "expected an object with \"prompt\", \"chosen\", \"rejected\", got ", v.type_name());
    PreferencePair p;
    for (const char* key : {"prompt", "chosen", "rejected"}) {
      const json::Value* f = v.find(key);
      RLFT_CHECK(f != nullptr, where, "missing \"", key, "\"");
      RLFT_CHECK(f->is_string(), where, "\"", key, "\" must be a string, got ", f->type_name());
    }
    p.prompt = v.at("prompt").as_string();
    p.chosen = v.at("chosen").as_string();
    p.rejected = v.at("rejected").as_string();
    for (const char* key : {"chosen_score", "rejected_score"}) {
      const json::Value* f = v.find(key);
      if (f == nullptr || f->is_null()) continue;
      RLFT_CHECK(f->is_number(), where, "\"", key, "\" must be a number, got ", f->type_name());
      const double x = f->as_double();
      RLFT_CHECK(std::isfinite(x) && x >= 0 && x <= 1, where, "\"", key,
                 "\" must be a probability in [0, 1], got ", f->dump());
      (std::string(key) == "chosen_score" ? p.chosen_score : p.rejected_score) = x;
    }
    RLFT_CHECK(!strip_eos(p.chosen).empty(), where, "\"chosen\" is empty");
    RLFT_CHECK(!strip_eos(p.rejected).empty(), where, "\"rejected\" is empty");
    RLFT_CHECK(strip_eos(p.chosen) != strip_eos(p.rejected), where,
               "\"chosen\" and \"rejected\" are the same text (a pair needs two responses)");
    p.line = int64_t(line_no);
    out.push_back(std::move(p));
  });
  RLFT_CHECK(!out.empty(), source, ": no preference pairs");
  return out;
}

std::vector<PreferencePair> read_preferences(const std::string& path) {
  return parse_preferences(fs::read_file(path), path);
}

void check_preferences(const std::vector<PreferencePair>& pairs, const models::Tokenizer& tok,
                       int64_t context, const std::string& source) {
  for (const PreferencePair& p : pairs) {
    const std::string where = str(source, ":", p.line, ": ");
    auto tokens = [&](const char* field, const std::string& text) {
      try {
        return int64_t(tok.encode(text).size());
      } catch (const Error& e) {
        throw Error(str(where, "\"", field, "\": ", e.what()));
      }
    };
    const int64_t prompt = tokens("prompt", p.prompt);
    for (const auto& [field, text] :
         {std::pair<const char*, const std::string*>{"chosen", &p.chosen},
          {"rejected", &p.rejected}}) {
      const int64_t n = 1 + prompt + tokens(field, strip_eos(*text)) + 1;
      RLFT_CHECK(n <= context, where, "prompt + \"", field, "\" is ", n,
                 " tokens (BOS and EOS included), more than the model's context of ", context);
    }
  }
}

void write_preferences(const std::string& path, const std::vector<PreferencePair>& pairs) {
  std::string text;
  for (const PreferencePair& p : pairs) {
    json::Value v = json::Value::object();
    v.set("prompt", p.prompt);
    v.set("chosen", p.chosen);
    v.set("rejected", p.rejected);
    if (!std::isnan(p.chosen_score)) v.set("chosen_score", p.chosen_score);
    if (!std::isnan(p.rejected_score)) v.set("rejected_score", p.rejected_score);
    text += v.dump();
    text += '\n';
  }
  fs::atomic_write_file(path, text);
}

bool is_clean_response(const std::string& response) {
  return strip_eos(response).find("<|") == std::string::npos;
}

std::string clean_response(const std::string& response) {
  std::string s = strip_eos(response);
  for (const char* special :
       {models::Tokenizer::kBosText, models::Tokenizer::kEosText, models::Tokenizer::kPadText})
    for (size_t at; (at = s.find(special)) != std::string::npos;)
      s.erase(at, std::string(special).size());
  return s;
}

double ground_truth_probability(const std::string& prompt, const std::string& response) {
  return ReviewsTask::sentiment(prompt + strip_eos(response));
}

double ground_truth_reward(const std::string& prompt, const std::string& response) {
  const double p = std::clamp(ground_truth_probability(prompt, response), 1e-12, 1 - 1e-12);
  return std::log(p / (1 - p));
}

PrefsResult generate_preferences(const PrefsConfig& cfg) {
  RLFT_CHECK(cfg.task == "reviews",
             "rlft lm prefs: --task must be reviews (the task with a hidden "
             "ground-truth scorer), got '",
             cfg.task, "'");
  const char* cmd = "rlft lm prefs: ";
  RLFT_CHECK(!cfg.run.empty(), cmd, "--run is required");
  rl::check_count(cmd, "--pairs", cfg.pairs);  // held in memory before the file is written
  // Each round samples 32 prompts × k responses at once: k is bounded so that batch fits.
  RLFT_CHECK(cfg.samples_per_prompt >= 2 && cfg.samples_per_prompt <= 1024 &&
                 cfg.samples_per_prompt % 2 == 0,
             cmd, "--samples-per-prompt must be even and in [2, 1024], got ",
             cfg.samples_per_prompt);
  RLFT_CHECK(std::isfinite(cfg.temperature) && cfg.temperature > 0, cmd,
             "--temperature must be a positive number, got ", cfg.temperature);
  RLFT_CHECK(cfg.label_noise >= 0 && cfg.label_noise <= 0.5, cmd,
             "--label-noise must be in [0, 0.5], got ", cfg.label_noise);
  RLFT_CHECK(cfg.min_gap >= 0 && cfg.min_gap < 1, cmd,
             "--min-gap must be in [0, 1) (a difference of probabilities; 0: off), got ",
             cfg.min_gap);
  RLFT_CHECK(!cfg.out.empty(), cmd, "--out is required");
  std::error_code ec;
  RLFT_CHECK(!std::filesystem::is_directory(cfg.out, ec), cmd, "--out ", cfg.out,
             ": is a directory (expected a JSONL file to write)");
  const std::filesystem::path out_dir = std::filesystem::path(cfg.out).parent_path();
  RLFT_CHECK(out_dir.empty() || std::filesystem::is_directory(out_dir, ec), cmd, "--out ", cfg.out,
             ": no directory ", out_dir.string(), " to write it in");
  // --out replaces an earlier preference file, nothing else: a mistyped path must not turn the
  // --run's checkpoint (or a run's config.json, metrics.jsonl) into JSONL.
  if (std::filesystem::exists(cfg.out, ec)) {
    bool is_prefs = std::filesystem::is_regular_file(cfg.out, ec);
    if (is_prefs) {
      try {
        parse_preferences(fs::read_file(cfg.out), cfg.out);
      } catch (const Error&) {
        is_prefs = false;
      }
    }
    RLFT_CHECK(is_prefs, cmd, "--out ", cfg.out,
               ": exists and is not a preference file (JSONL of pairs); it is left as it is: "
               "remove it or give another --out");
  }
  const LoadedModel lm = load_policy(cfg.run, rl::resolve_device(cfg.device));
  TaskConfig tc = task_config_of(lm);
  tc.task = cfg.task;
  const std::unique_ptr<Task> task = make_task(tc);
  const std::vector<std::string> prompts = task->prompts(Split::train);
  Generator gen(cfg.seed), label_gen(cfg.seed ^ 0x9e3779b97f4a7c15ull);
  models::SamplingConfig sc;
  sc.temperature = cfg.temperature;
  sc.max_new_tokens = lm.model->config().block_size;
  sc = clamp_to_context(sc, *lm.model, lm.tokenizer, prompts);
  PrefsResult res;
  const int64_t k = cfg.samples_per_prompt;
  size_t next_prompt = 0;
  int64_t rounds = 0;
  // Candidate pairs dropped, by filter (in the order they are applied).
  int64_t special = 0, unfinished = 0, identical = 0, near_tie = 0;
  while (int64_t(res.pairs.size()) < cfg.pairs) {
    // A policy that gives no usable pair in 5 rounds (160 prompts × k samples) will not give
    // --pairs of them: stop early, saying what the filters dropped.
    ++rounds;
    RLFT_CHECK(rounds <= (res.pairs.empty() ? 5 : 100 + cfg.pairs), cmd, cfg.run, " gave only ",
               res.pairs.size(), " usable pairs in ", rounds - 1,
               " rounds; candidate pairs dropped: ", special, " with special tokens inside, ",
               unfinished, " cut at the context before EOS, ", identical, " identical or empty, ",
               near_tie, " closer than --min-gap ", cfg.min_gap);
    std::vector<std::string> batch_prompts;
    for (int i = 0; i < 32; ++i) {
      const std::string& p = prompts[next_prompt++ % prompts.size()];
      for (int64_t j = 0; j < k; ++j) batch_prompts.push_back(p);
    }
    const std::vector<std::string> responses =
        sample_responses(*lm.model, lm.tokenizer, batch_prompts, sc, gen);
    for (size_t i = 0; i + 1 < responses.size() && int64_t(res.pairs.size()) < cfg.pairs; i += 2) {
      const std::string& p = batch_prompts[i];
      // Responses with special tokens inside (a weak policy emits PAD or BOS) are skipped, and
      // so are responses cut at the context before their EOS: BOS prompt response EOS would not
      // fit the context of the models trained on the pairs.
      auto finished = [](const std::string& r) {
        const std::string eos = models::Tokenizer::kEosText;
        return r.size() >= eos.size() && r.compare(r.size() - eos.size(), eos.size(), eos) == 0;
      };
      if (!is_clean_response(responses[i]) || !is_clean_response(responses[i + 1])) {
        ++special;
        continue;
      }
      if (!finished(responses[i]) || !finished(responses[i + 1])) {
        ++unfinished;
        continue;
      }
      const std::string a = strip_eos(responses[i]), b = strip_eos(responses[i + 1]);
      if (a == b || a.empty() || b.empty()) {
        ++identical;  // an empty response would also fail read_preferences
        continue;
      }
      const double ra = ground_truth_reward(p, a), rb = ground_truth_reward(p, b);
      if (std::abs(ground_truth_probability(p, a) - ground_truth_probability(p, b)) < cfg.min_gap) {
        ++near_tie;
        continue;
      }
      bool a_wins = cfg.deterministic_labels
                        ? ra >= rb
                        : label_gen.uniform() < 1.0 / (1.0 + std::exp(rb - ra));
      if (cfg.label_noise > 0 && label_gen.uniform() < cfg.label_noise) a_wins = !a_wins;
      PreferencePair pp;
      pp.prompt = p;
      pp.chosen = a_wins ? a : b;
      pp.rejected = a_wins ? b : a;
      pp.chosen_score = ground_truth_probability(p, pp.chosen);
      pp.rejected_score = ground_truth_probability(p, pp.rejected);
      res.mean_score_gap += pp.chosen_score - pp.rejected_score;
      res.agreement += pp.chosen_score >= pp.rejected_score;
      res.pairs.push_back(std::move(pp));
    }
    if (!cfg.quiet)
      std::printf("prefs: %zu / %lld pairs\n", res.pairs.size(), (long long)cfg.pairs);
  }
  res.mean_score_gap /= double(res.pairs.size());
  res.agreement /= double(res.pairs.size());
  write_preferences(cfg.out, res.pairs);
  return res;
}

SequenceBatch make_pair_batch(const models::Tokenizer& tok,
                              const std::vector<PreferencePair>& pairs, size_t s, size_t e,
                              int64_t max_len, Device device) {
  std::vector<std::string> prompts, responses;
  for (size_t i = s; i < e; ++i)
    prompts.push_back(pairs[i].prompt), responses.push_back(pairs[i].chosen);
  for (size_t i = s; i < e; ++i)
    prompts.push_back(pairs[i].prompt), responses.push_back(pairs[i].rejected);
  return make_sequence_batch(tok, prompts, responses, max_len, device);
}

SequenceBatch make_sequence_batch(const models::Tokenizer& tok,
                                  const std::vector<std::string>& prompts,
                                  const std::vector<std::string>& responses, int64_t max_len,
                                  Device device) {
  RLFT_CHECK(prompts.size() == responses.size() && !prompts.empty(),
             "make_sequence_batch: ", prompts.size(), " prompts and ", responses.size(),
             " responses");
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> starts;
  int64_t T = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> s = {tok.bos_id()};
    const std::vector<int64_t> p = tok.encode(prompts[i]), r = tok.encode(strip_eos(responses[i]));
    s.insert(s.end(), p.begin(), p.end());
    starts.push_back(int64_t(s.size()));
    s.insert(s.end(), r.begin(), r.end());
    s.push_back(tok.eos_id());
    RLFT_CHECK(int64_t(s.size()) <= max_len, "make_sequence_batch: row ", i, " has ", s.size(),
               " tokens, more than the context ", max_len);
    T = std::max<int64_t>(T, int64_t(s.size()));
    seqs.push_back(std::move(s));
  }
  const int64_t B = int64_t(seqs.size());
  std::vector<int64_t> tokens(size_t(B * T), tok.pad_id());
  std::vector<float> am(size_t(B * T), 0.0f), rm(size_t(B * T), 0.0f);
  SequenceBatch out;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[size_t(b)];
    for (size_t t = 0; t < s.size(); ++t) {
      tokens[size_t(b * T) + t] = s[t];
      am[size_t(b * T) + t] = 1.0f;
      if (int64_t(t) >= starts[size_t(b)]) rm[size_t(b * T) + t] = 1.0f;
    }
    out.response_lengths.push_back(int64_t(s.size()) - starts[size_t(b)]);
  }
  out.tokens = Tensor::from_vector(tokens, {B, T}).to(device);
  out.attention_mask = Tensor::from_vector(am, {B, T}).to(device);
  out.response_mask = Tensor::from_vector(rm, {B, T}).to(device);
  return out;
}

Tensor response_log_prob_sums(models::GPT& model, const SequenceBatch& batch) {
  const Tensor lp = models::sequence_log_probs(model, batch.tokens, batch.attention_mask);
  return sum(mul(lp, batch.response_mask.to(lp.dtype())), {1});
}

int64_t copy_matching_parameters(models::GPT& dst, const models::GPT& src) {
  NoGradGuard ng;
  const auto theirs = src.named_parameters();
  int64_t n = 0;
  for (auto& [name, p] : dst.named_parameters())
    for (const auto& [sname, sp] : theirs)
      if (sname == name && sp.shape() == p.shape()) {
        p.copy_(sp);
        ++n;
        break;
      }
  return n;
}

models::GPTConfig with_heads(models::GPTConfig base, bool value_head, bool reward_head) {
  base.value_head = value_head;
  base.reward_head = reward_head;
  return base;
}

TaskConfig task_config_of(const LoadedModel& lm) {
  if (lm.run_config.is_null()) return TaskConfig{};
  return sft_config_from_json(lm.run_config, lm.path + ": metadata run_config").task;
}

PolicyEval evaluate_policy(models::GPT& policy, models::GPT& ref, const models::Tokenizer& tok,
                           const std::vector<std::string>& prompts, double temperature,
                           Generator& gen) {
  NoGradGuard ng;
  const bool was_training = policy.is_training();
  policy.eval();
  ref.eval();
  models::SamplingConfig sc;
  sc.temperature = temperature;
  sc.max_new_tokens = policy.config().block_size;
  sc = clamp_to_context(sc, policy, tok, prompts);
  sc.eos_id = tok.eos_id();
  sc.pad_id = tok.pad_id();
  PolicyEval out;
  for (size_t start = 0; start < prompts.size(); start += 64) {
    const std::vector<std::string> chunk(
        prompts.begin() + long(start),
        prompts.begin() + long(std::min(prompts.size(), start + 64)));
    const PromptBatch pb = make_prompt_batch(tok, chunk);
    const models::Generation g = models::generate(policy, pb.tokens, pb.mask, sc, gen);
    // Both at τ (the generation's log-probs are log softmax(logits/τ)): KL(π^τ ‖ π_ref^τ).
    const Tensor ref_lp = models::sequence_log_probs(ref, g.tokens, g.attention_mask, temperature);
    const int64_t B = g.tokens.size(0), T = g.tokens.size(1);
    const std::vector<double> lp = g.log_probs.to_vector(), rlp = ref_lp.to_vector(),
                              rm = g.response_mask.to_vector();
    const std::vector<int64_t> ids = g.tokens.to_int_vector();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> resp;
      for (int64_t t = 0; t < T; ++t) {
        const size_t i = size_t(b * T + t);
        if (rm[i] == 0) continue;
        out.kl += lp[i] - rlp[i];
        resp.push_back(ids[i]);
      }
      out.response_length += double(resp.size());
      out.ground_truth += ground_truth_probability(chunk[size_t(b)], tok.decode(resp));
    }
  }
  const double n = double(prompts.size());
  out.kl /= n, out.ground_truth /= n, out.response_length /= n;
  policy.train(was_training);
  return out;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  if (n < 2) return 0;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= double(n), mb /= double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

}  // namespace rlft::llm
