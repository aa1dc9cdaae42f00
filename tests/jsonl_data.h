// Small {"prompt", "response"} JSONL data for the jsonl task's tests (tests/rl, tests/cli).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/json.h"

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

}  // namespace rlft::testing::jsonl
