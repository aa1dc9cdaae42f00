#include "fuzz/inputs.h"

#include "engine/fs.h"
#include "engine/json.h"
#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/tokenizer.h"
#include "rl/eval.h"
#include "rl/llm/lm.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/tasks/jsonl.h"

namespace rlft::fuzz {

void parse_one_input(std::string_view input, const std::string& scratch_dir) {
  if (input.empty()) return;
  const int parser = static_cast<unsigned char>(input[0]) % kParsers;
  const std::string_view in = input.substr(1);
  switch (parser) {
    case 0:
      (void)json::parse(json::parse(in, "fuzz").dump(), "fuzz (dumped)");
      break;
    case 1:
      (void)json::parse_jsonl(in, "fuzz");
      break;
    case 2: {
      const safetensors::File f = safetensors::parse(in, "fuzz");
      (void)safetensors::serialize(f.tensors, f.metadata);
      break;
    }
    case 3:
      (void)llm::parse_preferences(in, "fuzz");
      break;
    case 4:
      (void)llm::parse_prompt_responses(in, "fuzz");
      break;
    case 5: {
      const models::Tokenizer t = models::Tokenizer::from_json(json::parse(in, "fuzz"));
      (void)t.decode(t.encode("ab"));
      break;
    }
    case 6:
      models::GPTConfig::from_json(json::parse(in, "fuzz")).validate();
      break;
    case 7: {
      const std::string path = scratch_dir + "/checkpoint.safetensors";
      fs::atomic_write_file(path, std::string(in));
      (void)llm::load_model(path);
      break;
    }
    case 8: {
      fs::atomic_write_file(scratch_dir + "/policy.safetensors", std::string(in));
      (void)rl::evaluate_run(scratch_dir, 1, 0, true);
      break;
    }
  }
}

}  // namespace rlft::fuzz
