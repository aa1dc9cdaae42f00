// jsonl: the user's prompt/response file, split by prompt, with an exact-match verifier
// (see jsonl.h).
#include "rl/llm/tasks/jsonl.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <tuple>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "models/tokenizer.h"

namespace rlft::llm {

namespace {

std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return "";
  return std::string(s.substr(a, s.find_last_not_of(ws) - a + 1));
}

// A prompt as it reads in an error: JSON-quoted, so newlines and quotes stay on one line.
std::string quoted(const std::string& s) {
  try {
    return json::Value(s).dump();
  } catch (const Error&) {  // not UTF-8
    return "\"" + s + "\"";
  }
}

}  // namespace

std::vector<PromptResponse> parse_prompt_responses(std::string_view text,
                                                   const std::string& source) {
  std::vector<PromptResponse> out;
  json::for_each_jsonl_line(text, [&](std::string_view line, size_t line_no) {
    const std::string where = str(source, ":", line_no, ": ");
    try {
      models::utf8_decode(line);
    } catch (const Error& e) {
      throw Error(str(where, "invalid UTF-8 (", e.what(), ")"));
    }
    const json::Value v = json::parse_jsonl_line(line, source, line_no);
    RLFT_CHECK(v.is_object(), where,
               "expected an object with \"prompt\" and \"response\" (or \"completion\"), got ",
               v.type_name());
    const json::Value* prompt = v.find("prompt");
    RLFT_CHECK(prompt != nullptr, where, "missing \"prompt\"");
    RLFT_CHECK(prompt->is_string(), where, "\"prompt\" must be a string, got ",
               prompt->type_name());
    const json::Value* response = v.find("response");
    const json::Value* completion = v.find("completion");
    RLFT_CHECK(response == nullptr || completion == nullptr, where,
               "both \"response\" and \"completion\" (give one: they are the same field)");
    RLFT_CHECK(response != nullptr || completion != nullptr, where,
               "missing \"response\" (or \"completion\")");
    const char* key = response != nullptr ? "response" : "completion";
    const json::Value& r = response != nullptr ? *response : *completion;
    RLFT_CHECK(r.is_string(), where, "\"", key, "\" must be a string, got ", r.type_name());
    RLFT_CHECK(!r.as_string().empty(), where, "\"", key, "\" is empty");
    RLFT_CHECK(!trim(r.as_string()).empty(), where, "\"", key, "\" is only whitespace");
    out.push_back({prompt->as_string(), r.as_string(), int64_t(line_no)});
  });
  RLFT_CHECK(!out.empty(), source,
             ": no examples (expected JSON lines like {\"prompt\": \"…\", \"response\": \"…\"})");
  return out;
}

std::string data_fingerprint(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64: offset basis, then ×prime per byte
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

JsonlTask::JsonlTask(const TaskConfig& cfg) : source_(cfg.data) {
  RLFT_CHECK(!cfg.data.empty(), "jsonl: --data FILE.jsonl is required for --task jsonl");
  RLFT_CHECK(cfg.train_size > 0 && cfg.eval_size > 0,
             "jsonl: --train-size and --eval-size must be positive, got ", cfg.train_size, " and ",
             cfg.eval_size);
  std::string text;
  try {
    text = fs::read_file(cfg.data);
  } catch (const Error& e) {
    throw Error(str("jsonl: --data: ", e.what()));
  }
  fingerprint_ = llm::data_fingerprint(text);
  RLFT_CHECK(cfg.data_fingerprint.empty() || cfg.data_fingerprint == fingerprint_, cfg.data,
             ": changed since the run was trained: fingerprint ", fingerprint_, ", recorded ",
             cfg.data_fingerprint);
  const std::vector<PromptResponse> lines = parse_prompt_responses(text, cfg.data);

  // Distinct prompts in hash order; a prompt's examples in file order.
  std::map<std::string, std::vector<const PromptResponse*>> by_prompt;
  std::set<char32_t> chars;
  for (const PromptResponse& l : lines) {
    by_prompt[l.prompt].push_back(&l);
    references_[l.prompt].push_back(trim(l.response));
    for (char32_t c : models::utf8_decode(l.prompt + l.response)) chars.insert(c);
  }
  for (char32_t c : chars) alphabet_ += models::utf8_encode(c);
  std::vector<std::pair<double, const std::string*>> order;
  for (const auto& [p, _] : by_prompt) order.push_back({hash_unit(cfg.data_seed, p), &p});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, *a.second) < std::tie(b.first, *b.second);
  });
  const int64_t P = int64_t(order.size());
  RLFT_CHECK(P >= 3, cfg.data, ": ", lines.size(), " examples with ", P, " distinct prompt",
             P == 1 ? "" : "s",
             "; the jsonl task needs at least 3 (one each for train, validation and test)");
  const int64_t k = std::min(cfg.eval_size, std::max<int64_t>(1, P / 10));
  for (int64_t i = 0; i < P; ++i) {
    const int s = i < k ? int(Split::test) : i < 2 * k ? int(Split::validation) : int(Split::train);
    for (const PromptResponse* l : by_prompt.at(*order[size_t(i)].second)) {
      if (s == int(Split::train) && int64_t(splits_[s].size()) >= cfg.train_size) break;
      splits_[s].push_back({l->prompt, l->response, true});
    }
  }
}

double JsonlTask::score(const std::string& prompt, const std::string& response) const {
  const auto it = references_.find(prompt);
  RLFT_CHECK(it != references_.end(), "jsonl: prompt ", quoted(prompt), " is not in ", source_);
  const std::string r = trim(strip_eos(response));
  return std::find(it->second.begin(), it->second.end(), r) != it->second.end() ? 1.0 : 0.0;
}

SampleMetrics JsonlTask::sample_metrics(const std::vector<std::string>& prompts,
                                        const std::vector<std::string>& responses) const {
  RLFT_CHECK(prompts.size() == responses.size(), "jsonl: ", prompts.size(), " prompts but ",
             responses.size(), " responses");
  double hits = 0;
  for (size_t i = 0; i < prompts.size(); ++i) hits += score(prompts[i], responses[i]);
  return {{"exact_match", prompts.empty() ? 0.0 : hits / double(prompts.size())}};
}

}  // namespace rlft::llm
