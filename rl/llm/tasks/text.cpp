// text: a UTF-8 file split by position into chunks (see text.h).
#include "rl/llm/tasks/text.h"

#include "engine/error.h"
#include "engine/fs.h"
#include "models/tokenizer.h"

namespace rlft::llm {

TextTask::TextTask(const TaskConfig& cfg) {
  RLFT_CHECK(!cfg.data.empty(), "text: --data FILE is required for --task text");
  RLFT_CHECK(cfg.chunk >= 2, "text: --chunk must be at least 2, got ", cfg.chunk);
  try {
    text_ = fs::read_file(cfg.data);
  } catch (const Error& e) {
    throw Error(str("text: --data: ", e.what()));
  }
  std::vector<char32_t> cps;
  try {
    cps = models::utf8_decode(text_);
  } catch (const Error& e) {
    throw Error(str(cfg.data, ": not UTF-8 text: ", e.what()));
  }
  const int64_t n = int64_t(cps.size());
  RLFT_CHECK(n >= 40, cfg.data, ": ", n, " characters; the text task needs at least 40");
  const int64_t a = n * 90 / 100, b = n * 95 / 100;
  ranges_[int(Split::train)] = {0, a};
  ranges_[int(Split::validation)] = {a, b};
  ranges_[int(Split::test)] = {b, n};
  auto encode = [&](int64_t from, int64_t to) {
    std::string s;
    for (int64_t i = from; i < to; ++i) s += models::utf8_encode(cps[size_t(i)]);
    return s;
  };
  for (int s = 0; s < 3; ++s) {
    const auto [from, to] = ranges_[s];
    const int64_t stride = s == int(Split::train) ? std::max<int64_t>(cfg.chunk / 2, 1) : cfg.chunk;
    if (to - from <= cfg.chunk) {
      splits_[s].push_back({"", encode(from, to), false});
      continue;
    }
    for (int64_t at = from; at + cfg.chunk <= to; at += stride)
      splits_[s].push_back({"", encode(at, at + cfg.chunk), false});
  }
}

}  // namespace rlft::llm
