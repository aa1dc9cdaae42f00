// Small {"prompt", "response"} JSONL data for the jsonl task's tests (tests/rl, tests/cli), and
// the task config and checkpoint edits those tests share.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/checkpoint.h"
#include "engine/json.h"
#include "rl/llm/tasks/task.h"

namespace rlft::testing::jsonl {

// One JSONL line {"prompt": …, "response": …} with its newline (JSON escapes applied).
inline std::string line(const std::string& prompt, const std::string& response) {
  json::Value v = json::Value::object();
  v.set("prompt", prompt);
  v.set("response", response);
  return v.dump() + "\n";
}

// "rev ab=" → "ba" for the 49 two-letter words over a–g (41 train, 4 validation, 4 test
// prompts).
inline std::string reversals() {
  std::string text;
  for (char x = 'a'; x <= 'g'; ++x)
    for (char y = 'a'; y <= 'g'; ++y)
      text += std::string(R"({"prompt":"rev )") + x + y + R"(=","response":")" + y + x + "\"}\n";
  return text;
}

// Writes `text` to `p` as it is (binary: no newline translation).
inline void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// The jsonl task on the file at `path`.
inline llm::TaskConfig jsonl_config(const std::string& path, uint64_t data_seed = 1234) {
  llm::TaskConfig c;
  c.task = "jsonl";
  c.data = path;
  c.data_seed = data_seed;
  return c;
}

// Rewrites the SFT checkpoint `ckpt` as a run from before fingerprints wrote it: its run_config
// without "data_fingerprint".
inline void forget_fingerprint(const std::string& ckpt) {
  Metadata meta;
  const NamedTensors tensors = load_tensors(ckpt, &meta);
  const json::Value old = json::parse(meta.at("run_config"));
  json::Value without = json::Value::object();
  for (const auto& [k, v] : old.as_object())
    if (k != "data_fingerprint") without.set(k, v);
  meta["run_config"] = without.dump();
  save_tensors(ckpt, tensors, meta);
}

}  // namespace rlft::testing::jsonl
