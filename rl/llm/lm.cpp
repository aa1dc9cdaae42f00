// Shared LM plumbing: batches, the run checkpoint format, sampling on prompts (see lm.h).
#include "rl/llm/lm.h"

#include <algorithm>

#include "engine/fs.h"
#include "rl/llm/tasks/jsonl.h"

namespace rlft::llm {

std::vector<int64_t> encode_example(const models::Tokenizer& tok, const Example& e,
                                    int64_t* prompt_tokens) {
  std::vector<int64_t> ids = {tok.bos_id()};
  const std::vector<int64_t> p = tok.encode(e.prompt), r = tok.encode(e.response);
  ids.insert(ids.end(), p.begin(), p.end());
  if (prompt_tokens) *prompt_tokens = int64_t(ids.size());
  ids.insert(ids.end(), r.begin(), r.end());
  if (e.eos) ids.push_back(tok.eos_id());
  return ids;
}

LMBatch make_lm_batch(const models::Tokenizer& tok, const std::vector<const Example*>& examples,
                      int64_t max_len, bool response_only) {
  RLFT_CHECK(!examples.empty(), "make_lm_batch: no examples");
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> prompt_lens;
  int64_t T = 1;
  for (const Example* e : examples) {
    int64_t pl = 0;
    std::vector<int64_t> s = encode_example(tok, *e, &pl);
    if (int64_t(s.size()) > max_len + 1) s.resize(size_t(max_len + 1));
    T = std::max<int64_t>(T, int64_t(s.size()) - 1);
    seqs.push_back(std::move(s));
    prompt_lens.push_back(pl);
  }
  const int64_t B = int64_t(seqs.size());
  std::vector<int64_t> inputs(size_t(B * T), tok.pad_id()), targets(size_t(B * T), kIgnoreIndex);
  LMBatch out;
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int64_t>& s = seqs[size_t(b)];
    for (int64_t t = 0; t + 1 < int64_t(s.size()); ++t) {
      inputs[size_t(b * T + t)] = s[size_t(t)];
      // Target t is token t+1; under response_only it counts once t+1 is past the prompt.
      if (!response_only || t + 1 >= prompt_lens[size_t(b)]) {
        targets[size_t(b * T + t)] = s[size_t(t + 1)];
        ++out.tokens;
      }
    }
  }
  out.inputs = Tensor::from_vector(inputs, {B, T});
  out.targets = Tensor::from_vector(targets, {B * T});
  return out;
}

PromptBatch make_prompt_batch(const models::Tokenizer& tok,
                              const std::vector<std::string>& prompts) {
  RLFT_CHECK(!prompts.empty(), "make_prompt_batch: no prompts");
  std::vector<std::vector<int64_t>> seqs;
  int64_t T = 0;
  for (const std::string& p : prompts) {
    std::vector<int64_t> s = {tok.bos_id()};
    const std::vector<int64_t> ids = tok.encode(p);
    s.insert(s.end(), ids.begin(), ids.end());
    T = std::max<int64_t>(T, int64_t(s.size()));
    seqs.push_back(std::move(s));
  }
  const int64_t B = int64_t(seqs.size());
  std::vector<int64_t> tokens(size_t(B * T), tok.pad_id());
  std::vector<float> mask(size_t(B * T), 0.0f);
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int64_t>& s = seqs[size_t(b)];
    const int64_t off = T - int64_t(s.size());
    for (size_t t = 0; t < s.size(); ++t) {
      tokens[size_t(b * T + off) + t] = s[t];
      mask[size_t(b * T + off) + t] = 1.0f;
    }
  }
  return {Tensor::from_vector(tokens, {B, T}), Tensor::from_vector(mask, {B, T})};
}

std::string checkpoint_path(const std::string& path) {
  if (path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0) return path;
  return path + "/checkpoint.safetensors";
}

Metadata checkpoint_metadata(const models::GPTConfig& cfg, const models::Tokenizer& tok,
                             const json::Value& run_config, int64_t step) {
  Metadata m;
  m["format"] = kCheckpointFormat;
  m["model_config"] = cfg.to_json().dump();
  m["tokenizer"] = tok.to_json().dump();
  if (!run_config.is_null()) m["run_config"] = run_config.dump();
  m["step"] = std::to_string(step);
  return m;
}

LoadedModel load_model(const std::string& path, Device device) {
  LoadedModel out;
  out.path = checkpoint_path(path);
  RLFT_CHECK(fs::exists(out.path), out.path,
             ": no checkpoint there (expected a run directory or a .safetensors file)");
  Metadata meta;
  const NamedTensors stored = load_tensors(out.path, &meta);  // metadata: how to build the model
  for (const char* key : {"model_config", "tokenizer"})
    RLFT_CHECK(meta.count(key), out.path, ": metadata has no \"", key,
               "\" (not an rlft GPT checkpoint)");
  // The config and tokenizer are checked before anything is built from them; an error names
  // the file (a corrupt or hand-edited checkpoint, not the command line, is at fault).
  auto parse_part = [&](const char* key, auto from_json) {
    const json::Value v = json::parse(meta[key], out.path + ":" + key);
    try {
      return from_json(v);
    } catch (const Error& e) {
      throw Error(str(out.path, ": metadata ", key, ": ", e.what()));
    }
  };
  const models::GPTConfig cfg = parse_part(
      "model_config", [](const json::Value& v) { return models::GPTConfig::from_json(v); });
  out.tokenizer =
      parse_part("tokenizer", [](const json::Value& v) { return models::Tokenizer::from_json(v); });
  RLFT_CHECK(out.tokenizer.vocab_size() == cfg.vocab_size, out.path, ": tokenizer has ",
             out.tokenizer.vocab_size(), " tokens but the model ", cfg.vocab_size);
  if (meta.count("run_config"))
    out.run_config = json::parse(meta["run_config"], out.path + ":run_config");
  if (meta.count("step")) out.step = metadata_int(meta, "step", out.path);
  // The weights the file holds must be as many as the config's model has before that model is
  // built: a corrupt or hand-edited model_config of a small file could otherwise take minutes
  // and gigabytes to build before load_checkpoint names the first wrong shape.
  const double stored_weights = stored_weight_count(stored);
  RLFT_CHECK(stored_weights == cfg.parameter_count(), out.path, ": its tensors hold ",
             int64_t(stored_weights), " weights but its model_config (", describe_model(cfg),
             ") has ", int64_t(cfg.parameter_count()), " (a corrupt or hand-edited checkpoint)");
  Generator gen(0);
  out.model = std::make_shared<models::GPT>(cfg, gen);
  out.model->to(device);  // load_checkpoint copies each tensor onto its parameter's device
  load_checkpoint_tensors(stored, out.path, *out.model);  // the file is read once
  out.model->eval();
  return out;
}

LoadedModel load_policy(const std::string& path, Device device) {
  LoadedModel out = load_model(path, device);
  const models::GPTConfig& c = out.model->config();
  RLFT_CHECK(!c.reward_head, out.path,
             ": a reward model (its checkpoint has a reward head), not a policy: give an SFT (or "
             "pretrain, DPO, RL) run");
  RLFT_CHECK(!c.value_head, out.path,
             ": a critic (its checkpoint has a value head), not a policy: give an SFT (or "
             "pretrain, DPO, RL) run");
  return out;
}

LoadedModel load_reward_model(const std::string& path, Device device) {
  LoadedModel out = load_model(path, device);
  RLFT_CHECK(out.model->config().reward_head, out.path,
             ": not a reward model (its checkpoint has no reward head; `rlft lm rm` trains one)");
  return out;
}

std::string describe_model(const models::GPTConfig& c) {
  return str("n_layer ", c.n_layer, ", n_head ", c.n_head, ", n_embd ", c.n_embd, ", block_size ",
             c.block_size, ", vocab_size ", c.vocab_size, ", tie_weights ",
             c.tie_weights ? "true" : "false", c.reward_head ? ", reward head" : "",
             c.value_head ? ", value head" : "");
}

void check_checkpoint_model(const Metadata& meta, const std::string& ckpt,
                            const models::GPTConfig& cfg, const models::Tokenizer& tok,
                            const std::string& source) {
  // Each part as its loader reads it (defaults filled), field by field against the run's.
  const auto compare = [&](const char* key, const json::Value& expected, auto normalize) {
    const auto it = meta.find(key);
    RLFT_CHECK(it != meta.end(), ckpt, ": no '", key,
               "' in the checkpoint's metadata (not an rlft GPT training checkpoint)");
    json::Value recorded;
    try {
      recorded = normalize(json::parse(it->second, ckpt + ":" + key));
    } catch (const Error& e) {
      throw Error(str(ckpt, ": metadata ", key, ": ", e.what()));
    }
    const auto field = [&](const std::string& name, const json::Value* was, const json::Value* is) {
      RLFT_CHECK(was != nullptr && is != nullptr && *was == *is, ckpt, ": ", key, " field '", name,
                 "' is ", was ? was->brief() : std::string("(none)"), " but ", source, " has ",
                 is ? is->brief() : std::string("(none)"),
                 ": the checkpoint is not of the model this run trains");
    };
    for (const auto& [name, is] : expected.as_object()) field(name, recorded.find(name), &is);
    for (const auto& [name, was] : recorded.as_object())
      if (!expected.contains(name)) field(name, &was, nullptr);
  };
  compare("model_config", cfg.to_json(),
          [](const json::Value& v) { return models::GPTConfig::from_json(v).to_json(); });
  compare("tokenizer", tok.to_json(),
          [](const json::Value& v) { return models::Tokenizer::from_json(v).to_json(); });
}

Metadata load_training_checkpoint(const std::string& ckpt, models::GPT& model,
                                  optim::Optimizer& opt, const models::Tokenizer& tok,
                                  const std::string& source, const std::string& state_key,
                                  const std::string& not_ours) {
  Metadata meta;
  const NamedTensors stored = load_tensors(ckpt, &meta);
  RLFT_CHECK(state_key.empty() || meta.count(state_key), ckpt, ": ", not_ours);
  check_checkpoint_model(meta, ckpt, model.config(), tok, source);
  load_checkpoint_tensors(stored, ckpt, model, &opt);
  return meta;
}

RunInput run_input(const std::string& flag, const std::string& path) {
  return {flag, path, checkpoint_path(path)};
}

RunInput file_input(const std::string& flag, const std::string& path) { return {flag, path, path}; }

std::string input_fingerprint_key(const std::string& flag) {
  std::string key = flag.substr(std::min(flag.find_first_not_of('-'), flag.size()));
  std::replace(key.begin(), key.end(), '-', '_');
  return key + "_fingerprint";
}

json::Value recorded_config(const std::string& resumed_run) {
  const std::string path = resumed_run + "/config.json";
  if (resumed_run.empty() || !fs::exists(path)) return {};
  return json::parse(fs::read_file(path), path);
}

json::Value fingerprint_inputs(const std::vector<RunInput>& inputs, const json::Value& recorded) {
  json::Value out = json::Value::object();
  for (const RunInput& in : inputs) {
    std::string bytes;
    try {
      bytes = fs::read_file(in.file);
    } catch (const Error&) {
      continue;  // missing or unreadable: the loader's error names why
    }
    const std::string fingerprint = data_fingerprint(bytes);
    const std::string key = input_fingerprint_key(in.flag);
    if (recorded.is_object()) {
      const json::Value* was = recorded.find(key);
      if (was == nullptr) continue;  // recorded before fingerprints: not checked, not added
      // A relative path is a record from before recorded_input_path: it names a file of the
      // directory the command runs in, which may not be the one the run started in.
      RLFT_CHECK(was->is_string() && was->as_string() == fingerprint, in.flag, " ", in.path,
                 ": changed since this run started: fingerprint ", fingerprint, ", recorded ",
                 was->is_string() ? was->as_string() : was->dump(),
                 in.path.empty() || in.path.front() == '/'
                     ? ""
                     : " (the run recorded this path relative to the directory it was started "
                       "in: resume it from there)");
    }
    out.set(key, fingerprint);
  }
  return out;
}

std::string recorded_input_path(const std::string& path, const std::string& key,
                                const json::Value& recorded) {
  if (path.empty() || path.front() == '/') return path;
  const json::Value* was = recorded.is_object() ? recorded.find(key) : nullptr;
  if (was != nullptr && was->is_string() && was->as_string() == path) return path;
  return fs::absolute_path(path);
}

void record_fingerprints(json::Value& config, const json::Value& fingerprints) {
  for (const auto& [key, fingerprint] : fingerprints.as_object()) config.set(key, fingerprint);
}

LossStats evaluate_loss(models::GPT& model, const models::Tokenizer& tok,
                        const std::vector<Example>& examples, size_t max_examples,
                        bool response_only, int64_t batch) {
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const size_t n = std::min(examples.size(), max_examples);
  double loss_sum = 0, correct = 0;
  LossStats out;
  for (size_t start = 0; start < n; start += size_t(batch)) {
    std::vector<const Example*> chunk;
    for (size_t i = start; i < std::min(n, start + size_t(batch)); ++i)
      chunk.push_back(&examples[i]);
    const LMBatch b = make_lm_batch(tok, chunk, model.config().block_size, response_only);
    const Tensor targets = b.targets.to(model.device());
    const Tensor logits =
        model.lm_logits(model.forward(b.inputs.to(model.device()))).reshape({targets.size(0), -1});
    loss_sum += cross_entropy(logits, targets, kIgnoreIndex, "sum").item();
    const std::vector<int64_t> pred = argmax(logits, -1).to_int_vector(),
                               tgt = b.targets.to_int_vector();
    for (size_t i = 0; i < tgt.size(); ++i) {
      if (tgt[i] == kIgnoreIndex) continue;
      correct += pred[i] == tgt[i];
      ++out.tokens;
    }
  }
  model.train(was_training);
  if (out.tokens > 0) {
    out.loss = loss_sum / double(out.tokens);
    out.accuracy = correct / double(out.tokens);
  }
  return out;
}

int64_t response_budget(const models::Tokenizer& tok, const std::vector<Example>& examples,
                        size_t max_examples) {
  int64_t longest = 0;
  for (size_t i = 0; i < std::min(examples.size(), max_examples); ++i)
    longest = std::max<int64_t>(longest, int64_t(tok.encode(examples[i].response).size()) + 1);
  return longest + longest / 2 + 2;
}

models::SamplingConfig clamp_to_context(models::SamplingConfig sc, const models::GPT& model,
                                        const models::Tokenizer& tok,
                                        const std::vector<std::string>& prompts) {
  int64_t longest = 0;
  for (const std::string& p : prompts)
    longest = std::max<int64_t>(longest, 1 + int64_t(tok.encode(p).size()));
  const int64_t room = model.config().block_size - longest;
  RLFT_CHECK(room > 0, "a prompt of ", longest,
             " tokens (BOS included) leaves no room in the model's context of ",
             model.config().block_size);
  sc.max_new_tokens = std::min(sc.max_new_tokens, room);
  return sc;
}

std::vector<std::string> sample_responses(models::GPT& model, const models::Tokenizer& tok,
                                          const std::vector<std::string>& prompts,
                                          const models::SamplingConfig& sc, Generator& gen,
                                          int64_t batch_size) {
  std::vector<std::string> out;
  for (size_t start = 0; start < prompts.size(); start += size_t(batch_size)) {
    const std::vector<std::string> chunk(
        prompts.begin() + long(start),
        prompts.begin() + long(std::min(prompts.size(), start + size_t(batch_size))));
    const PromptBatch pb = make_prompt_batch(tok, chunk);
    models::SamplingConfig s = sc;
    s.eos_id = tok.eos_id();
    s.pad_id = tok.pad_id();
    const models::Generation g = models::generate(model, pb.tokens, pb.mask, s, gen);
    const int64_t B = g.tokens.size(0), T = g.tokens.size(1), Tp = g.prompt_length;
    const std::vector<int64_t> ids = g.tokens.to_int_vector();
    const std::vector<double> rm = g.response_mask.to_vector();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> resp;
      for (int64_t t = Tp; t < T; ++t)
        if (rm[size_t(b * T + t)] != 0) resp.push_back(ids[size_t(b * T + t)]);
      out.push_back(tok.decode(resp));
    }
  }
  return out;
}

}  // namespace rlft::llm
