// rlft lm pretrain|sft|sample|eval: toy language models (models/gpt.h, rl/llm/sft.h).
//
//   rlft lm sft --task arith --model micro --steps 3000 --name arith-micro
//   rlft lm sample --run runs/arith-micro --prompt "37+45=" --n 4
//   rlft lm eval --run runs/arith-micro            (test split: greedy and sampled)
//   rlft lm sft --preset arith-rl-init             (the RL issues' SFT start, docs/group_rl.md)
//   rlft lm sft --task arith --batch 64 --grad-accum 4   (4 micro-batches of 16, one step)
//   rlft lm sft --task jsonl --data my.jsonl       (your own {"prompt","response"} lines)
#include <cmath>
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/fs.h"
#include "models/generate.h"
#include "rl/llm/lm.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/arith.h"
#include "rl/llm/tasks/jsonl.h"
#include "rl/llm/tasks/task.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

const char* kLmUsage =
    "usage: rlft lm <subcommand> [options]   (each lists its options with --help)\n"
    "\n"
    "  pretrain   train a GPT on a task's text (loss on every token)\n"
    "  sft        supervised fine-tuning (loss on the response tokens only)\n"
    "  sample     sample completions of a prompt from a trained run\n"
    "  eval       measure a run on a task's test split (greedy and sampled)\n"
    "  prefs rm dpo rrhf ppo\n"
    "             RLHF: preference pairs, reward model, DPO, RRHF, PPO-RLHF (docs/rlhf.md)\n"
    "  grpo dr-grpo dapo gspo gspo-token dcpo rloo\n"
    "             group-relative RL on verifiable rewards (docs/group_rl.md)\n";

// Every subcommand of `rlft lm` (cli/main.cpp sends the RLHF and group RL ones elsewhere).
const char* kLmSubcommands =
    "pretrain, sft, sample, eval, prefs, rm, dpo, rrhf, ppo, grpo, dr-grpo, dapo, gspo, "
    "gspo-token, dcpo or rloo";

// Sampling options as given on the command line, checked with the flags' names (generate()
// would name its own fields instead).
void check_sampling(const models::SamplingConfig& sc) {
  RLFT_CHECK(std::isfinite(sc.temperature) && sc.temperature > 0,
             "--temperature must be a positive number, got ", sc.temperature);
  RLFT_CHECK(sc.top_k >= 0, "--top-k must be >= 0 (0: all tokens), got ", sc.top_k);
  RLFT_CHECK(sc.top_p > 0 && sc.top_p <= 1, "--top-p must be in (0, 1] (1: all), got ", sc.top_p);
}

// "a op b=" with operands of digits: what arith can judge.
bool well_formed_arith(const std::string& p) {
  try {
    llm::ArithTask::answer(p);
    return true;
  } catch (const Error&) {
    return false;
  }
}

int run_train(int argc, char** argv, int first, const std::string& mode) {
  // A preset fills the config before the flags are bound, so it becomes their default and any
  // other flag on the command line overrides it whatever its position.
  const std::string preset =
      mode == "sft" ? Args::peek_once(argc, argv, first, "--preset").value_or("") : std::string();
  llm::SFTConfig c = preset.empty() ? llm::SFTConfig{} : llm::sft_preset(preset);
  c.mode = mode;
  std::string preset_flag = preset;
  Args a("rlft lm " + mode,
         mode == "sft"
             ? "Supervised fine-tuning of a GPT: next-token cross-entropy on the response tokens."
             : "Pretraining of a GPT: next-token cross-entropy on every token of the task's text.");
  if (mode == "sft")
    a.add("--preset", &preset_flag,
          "named settings, overridden by other flags: arith-rl-init (the RL issues' start)");
  a.add("--task", &c.task.task,
        "task: arith, reviews, text (a UTF-8 file) or jsonl (a file of {\"prompt\", "
        "\"response\"} lines, judged by exact match)");
  a.add("--data-seed", &c.task.data_seed, "seed of the task's data and split");
  a.add("--ops", &c.task.ops, "arith: operators, any of + - *");
  a.add("--digits", &c.task.digits, "arith: operand digits (1 to 3)");
  a.add("--train-size", &c.task.train_size,
        "arith, reviews, jsonl: at most this many train examples");
  a.add("--eval-size", &c.task.eval_size,
        "arith, reviews, jsonl: examples in each of validation and test (jsonl: prompts, at most "
        "a tenth of them; text splits its file 90/5/5 by position)");
  a.add("--data", &c.task.data, "text: a UTF-8 file; jsonl: a JSONL file of prompts and responses");
  a.add("--chunk", &c.task.chunk, "text: characters per example");
  a.add("--tokenizer", &c.tokenizer, "char (from the task's alphabet) or byte");
  a.add("--model", &c.model, "nano, micro or mini");
  a.add("--n-layer", &c.n_layer, "blocks (0: the model's)");
  a.add("--n-head", &c.n_head, "attention heads (0: the model's)");
  a.add("--n-embd", &c.n_embd, "width C (0: the model's)");
  a.add("--block-size", &c.block_size, "context length (0: the model's)");
  a.add("--dropout", &c.dropout, "dropout probability");
  a.add("--tie-weights", &c.tie_weights, "tie the LM head to the token embedding");
  a.add("--init-from", &c.init_from, "start from this run's (or checkpoint's) weights");
  a.add("--steps", &c.steps, "optimizer steps");
  a.add("--batch", &c.batch, "sequences per step");
  a.add("--grad-accum", &c.grad_accum,
        "micro-batches per step (--batch / K sequences each; gradients summed, one step)");
  a.add("--lr", &c.lr, "peak learning rate");
  a.add("--min-lr-ratio", &c.min_lr_ratio, "cosine floor as a fraction of --lr");
  a.add("--warmup", &c.warmup, "linear warmup steps");
  a.add("--weight-decay", &c.weight_decay, "AdamW weight decay (matrices and embeddings only)");
  a.add("--beta1", &c.beta1, "AdamW beta1");
  a.add("--beta2", &c.beta2, "AdamW beta2");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--log-every", &c.log_every, "progress line and metrics every N steps");
  a.add("--eval-every", &c.eval_every, "validation every N steps");
  a.add("--eval-examples", &c.eval_examples, "validation examples for loss and accuracy");
  a.add("--eval-generate", &c.eval_generate,
        "validation prompts sampled greedily for the task's metrics (0: off)");
  a.add("--checkpoint-every", &c.checkpoint_every,
        "training checkpoint every N steps (0: only at --stop-after and the end)");
  a.add("--out-dir", &c.out_dir, "parent directory of runs");
  a.add("--name", &c.name, "run name (default <task>-<mode>-<model>)");
  a.add("--seed", &c.seed, "seed of initialisation, batches and dropout");
  a.add("--device", &c.device, "cpu, or cuda[:N]: model, batches and update on the GPU");
  a.add("--resume", &c.resume, resume_help("--steps, --stop-at-exact-match, --grad-accum", true));
  a.add("--stop-after", &c.stop_after, "stop after N steps of this invocation (0: run to --steps)");
  a.add("--stop-at-exact-match", &c.stop_at_exact_match,
        "stop at the first validation whose greedy exact match reaches this (0: off)");
  a.add("--quiet", &c.quiet, "no progress lines");
  if (!a.parse(argc, argv, first)) return 0;
  if (c.resume) {
    if (c.name.empty()) c.name = llm::default_sft_run_name(c);
    take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  }
  const llm::SFTResult r = llm::train_sft(c);
  if (!r.validated) return print_done_without("validation", r.step, r.run_dir);
  const int64_t ran = r.step - r.start_step;
  std::printf("done: %lld step%s in %.1f s", (long long)ran, ran == 1 ? "" : "s", r.seconds);
  if (r.start_step > 0) std::printf(" (resumed: the run is at step %lld)", (long long)r.step);
  std::printf("; validation loss %.4f, token accuracy %.4f", r.val_loss, r.val_accuracy);
  for (const auto& [k, v] : r.val_metrics) std::printf(", %s %.4f", k.c_str(), v);
  std::printf("\nrun: %s\n", r.run_dir.c_str());
  return 0;
}

int run_sample(int argc, char** argv, int first) {
  std::string run, prompt, device = "cpu";
  int64_t n = 4;
  models::SamplingConfig sc;
  sc.temperature = 0.8;
  sc.top_k = 40;
  sc.top_p = 0.95;
  uint64_t seed = 0;
  Args a("rlft lm sample", "Sample completions of a prompt from a trained run (BOS is prepended).");
  a.add("--run", &run, "run directory or checkpoint file");
  a.add("--prompt", &prompt, "prompt text (may be empty)");
  a.add("--n", &n, "number of samples");
  a.add("--temperature", &sc.temperature, "softmax temperature");
  a.add("--top-k", &sc.top_k, "keep the k most likely tokens (0: all)");
  a.add("--top-p", &sc.top_p, "nucleus mass (1: all)");
  a.add("--greedy", &sc.greedy, "argmax decoding");
  a.add("--max-new-tokens", &sc.max_new_tokens, "tokens per sample at most (cut to the context)");
  a.add("--seed", &seed, "sampling seed");
  a.add("--device", &device, "cpu, or cuda[:N]: the model and its sampling on the GPU");
  if (!a.parse(argc, argv, first)) return 0;
  const Device dev = rl::resolve_device(device);
  RLFT_CHECK(!run.empty(), "rlft lm sample: --run is required");
  rl::check_count("rlft lm sample: ", "--n", n);
  check_sampling(sc);
  RLFT_CHECK(sc.max_new_tokens > 0, "--max-new-tokens must be positive, got ", sc.max_new_tokens);
  const llm::LoadedModel lm = llm::load_policy(run, dev);
  const std::vector<std::string> prompts(size_t(n), prompt);
  const int64_t asked = sc.max_new_tokens;
  sc = llm::clamp_to_context(sc, *lm.model, lm.tokenizer, prompts);
  if (sc.max_new_tokens < asked && a.given("--max-new-tokens"))
    std::fprintf(stderr, "note: --max-new-tokens cut to %lld (the model's context is %lld)\n",
                 (long long)sc.max_new_tokens, (long long)lm.model->config().block_size);
  Generator gen(seed);
  const std::vector<std::string> responses =
      llm::sample_responses(*lm.model, lm.tokenizer, prompts, sc, gen);
  // Judge the samples when the run's task can: arith and reviews from code, jsonl when the
  // prompt is one of its file's (the file as the run recorded it; otherwise a note, and the
  // samples unjudged).
  std::unique_ptr<llm::Task> task;
  if (!lm.run_config.is_null()) {
    const llm::SFTConfig rc =
        llm::sft_config_from_json(lm.run_config, lm.path + ": metadata run_config");
    if (rc.task.task == "reviews" || (rc.task.task == "arith" && well_formed_arith(prompt)))
      task = llm::make_task(rc.task);
    if (rc.task.task == "jsonl") {
      try {
        auto jsonl = std::make_unique<llm::JsonlTask>(rc.task);
        if (jsonl->has_prompt(prompt)) task = std::move(jsonl);
      } catch (const Error& e) {
        std::fprintf(stderr, "note: samples not scored: %s\n", e.what());
      }
    }
  }
  for (size_t i = 0; i < responses.size(); ++i) {
    std::printf("[%zu] %s%s", i, prompt.c_str(), responses[i].c_str());
    if (task)
      for (const auto& [k, v] : task->sample_metrics({prompt}, {responses[i]}))
        std::printf("   (%s %.3g)", k.c_str(), v);
    std::printf("\n");
  }
  return 0;
}

int run_eval(int argc, char** argv, int first) {
  std::string run, task_name, data, split_name = "test", device = "cpu";
  int64_t n = 0, show = 5, per_prompt = 1;
  models::SamplingConfig sampled;
  sampled.max_new_tokens = 0;
  uint64_t seed = 0;
  Args a("rlft lm eval",
         "Measure a run on a task split: loss and token accuracy, and the task's sample metrics "
         "(arith and jsonl exact match; reviews grammaticality and sentiment) of greedy and of "
         "sampled responses.");
  a.add("--run", &run, "run directory or checkpoint file");
  a.add("--task", &task_name, "task (default: the run's, with its data options)");
  a.add("--data", &data,
        "--task text or jsonl: the data file (default: the run's; another path is evaluated "
        "as it is, without the run's fingerprint check)");
  a.add("--split", &split_name, "train, validation or test");
  a.add("--n", &n, "at most this many examples and prompts (0: all)");
  a.add("--temperature", &sampled.temperature, "sampled decoding: temperature");
  a.add("--top-k", &sampled.top_k, "sampled decoding: top-k (0: all)");
  a.add("--top-p", &sampled.top_p, "sampled decoding: nucleus mass (1: all)");
  a.add("--max-new-tokens", &sampled.max_new_tokens,
        "tokens per response at most (0: 1.5x the longest reference)");
  a.add("--samples-per-prompt", &per_prompt, "sampled decoding: responses per prompt");
  a.add("--seed", &seed, "sampling seed");
  a.add("--show", &show, "print this many greedy and sampled examples");
  a.add("--device", &device, "cpu, or cuda[:N]: the model, its loss and its sampling on the GPU");
  if (!a.parse(argc, argv, first)) return 0;
  const Device dev = rl::resolve_device(device);
  RLFT_CHECK(!run.empty(), "rlft lm eval: --run is required");
  RLFT_CHECK(n >= 0, "--n must be >= 0, got ", n);
  rl::check_count("rlft lm eval: ", "--samples-per-prompt", per_prompt);
  RLFT_CHECK(show >= 0, "--show must be >= 0, got ", show);
  check_sampling(sampled);
  RLFT_CHECK(sampled.max_new_tokens >= 0,
             "--max-new-tokens must be >= 0 (0: 1.5x the longest reference), got ",
             sampled.max_new_tokens);
  const llm::Split split = llm::parse_split(split_name);
  const llm::LoadedModel lm = llm::load_policy(run, dev);
  const llm::SFTConfig rc =
      lm.run_config.is_null()
          ? llm::SFTConfig{}
          : llm::sft_config_from_json(lm.run_config, lm.path + ": metadata run_config");
  llm::TaskConfig tc = rc.task;
  if (!task_name.empty()) tc.task = task_name;
  if (!data.empty()) {
    RLFT_CHECK(tc.task == "text" || tc.task == "jsonl", "rlft lm eval: --data is for --task text ",
               "or jsonl; the task here is ", tc.task);
    // The run's file where it was: its recorded fingerprint still applies (a changed file is
    // named); any other file (moved, or other data) is evaluated as it is.
    if (data != tc.data || tc.task != rc.task.task) tc.data_fingerprint.clear();
    tc.data = data;
  }
  const std::unique_ptr<llm::Task> task = llm::make_task(tc);
  const std::vector<llm::Example>& examples = task->examples(split);
  const size_t limit = n > 0 ? size_t(n) : examples.size();
  // Another task than the run's: its text must be in the run's vocabulary, and when it is not
  // the error says which two tasks met, not only which character was missing.
  if (tc.task != rc.task.task) {
    for (size_t i = 0; i < std::min(limit, examples.size()); ++i) {
      try {
        lm.tokenizer.encode(examples[i].prompt + examples[i].response);
      } catch (const Error& e) {
        throw Error(str(run, ": a run of task '", rc.task.task, "' cannot be evaluated on --task ",
                        tc.task, ": its tokenizer does not cover that task's text (", e.what(),
                        ")"));
      }
    }
  }
  const rl::Stopwatch clock;

  json::Value report = json::Value::object();
  report.set("checkpoint", lm.path);
  report.set("step", lm.step);
  report.set("task", task->name());
  report.set("split", llm::split_name(split));
  const llm::LossStats ls =
      llm::evaluate_loss(*lm.model, lm.tokenizer, examples, limit, rc.mode == "sft");
  report.set("loss", ls.loss);
  report.set("token_accuracy", ls.accuracy);
  std::printf("%s on %s/%s (%zu examples, %s targets): loss %.4f nats/token, token accuracy %.4f\n",
              lm.path.c_str(), task->name().c_str(), llm::split_name(split),
              std::min(limit, examples.size()), rc.mode == "sft" ? "response" : "all", ls.loss,
              ls.accuracy);
  if (!task->sample_metrics({}, {}).empty()) {
    std::vector<std::string> prompts = task->prompts(split);
    if (prompts.size() > limit) prompts.resize(limit);
    models::SamplingConfig greedy;
    greedy.greedy = true;
    greedy.max_new_tokens = sampled.max_new_tokens > 0
                                ? sampled.max_new_tokens
                                : llm::response_budget(lm.tokenizer, examples, limit);
    greedy = llm::clamp_to_context(greedy, *lm.model, lm.tokenizer, prompts);
    sampled.max_new_tokens = greedy.max_new_tokens;
    std::vector<std::string> repeated;
    for (const std::string& p : prompts)
      for (int64_t k = 0; k < per_prompt; ++k) repeated.push_back(p);
    for (const bool is_greedy : {true, false}) {
      const models::SamplingConfig& sc = is_greedy ? greedy : sampled;
      const std::vector<std::string>& ps = is_greedy ? prompts : repeated;
      Generator gen(seed);
      const std::vector<std::string> responses =
          llm::sample_responses(*lm.model, lm.tokenizer, ps, sc, gen);
      if (is_greedy)
        std::printf("greedy on %zu prompts:", ps.size());
      else
        std::printf(
            "sampled (temperature %g, top-k %lld, top-p %g) on %zu prompts × %lld:", sc.temperature,
            (long long)sc.top_k, sc.top_p, prompts.size(), (long long)per_prompt);
      const llm::SampleMetrics m = task->sample_metrics(ps, responses);
      const std::string key = is_greedy ? "greedy_" : "sampled_";
      for (const auto& [k, v] : m) {
        std::printf("  %s %.4f", k.c_str(), v);
        report.set(key + k, v);
      }
      report.set(key + "samples", int64_t(ps.size()));
      std::printf("\n");
      for (int64_t i = 0; i < show && size_t(i) < ps.size(); ++i) {
        const size_t j = is_greedy ? size_t(i) : size_t(i) * size_t(per_prompt);  // one per prompt
        if (j >= ps.size()) break;
        std::printf("    %s%s  ", ps[j].c_str(), responses[j].c_str());
        for (const auto& [k, v] : task->sample_metrics({ps[j]}, {responses[j]}))
          std::printf(" (%s %.3g)", k.c_str(), v);
        std::printf("\n");
      }
    }
    report.set("sampled_temperature", sampled.temperature);
  }
  report.set("seconds", clock.seconds());
  if (fs::exists(run + "/checkpoint.safetensors")) {
    const std::string out = run + "/eval_" + llm::split_name(split) + ".json";
    fs::atomic_write_file(out, report.dump(2) + "\n");
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}

}  // namespace

int run_lm(int argc, char** argv, int first) {
  if (argc <= first || std::string(argv[first]) == "--help" || std::string(argv[first]) == "-h") {
    std::fputs(kLmUsage, stdout);
    return 0;
  }
  const std::string sub = argv[first];
  if (sub == "pretrain" || sub == "sft") return run_train(argc, argv, first + 1, sub);
  if (sub == "sample") return run_sample(argc, argv, first + 1);
  if (sub == "eval") return run_eval(argc, argv, first + 1);
  throw Error(str("rlft lm: unknown subcommand '", sub, "' (expected ", kLmSubcommands, ")"));
}

}  // namespace rlft::cli
