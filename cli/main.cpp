// The rlft command: dispatches on its first word to a subcommand (cli/commands.h). Any
// rlft::Error becomes one line on stderr and exit status 2.
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
#include "engine/error.h"

namespace {

const char* kUsage =
    "usage: rlft <command> [options]   (rlft <command> --help lists its options)\n"
    "\n"
    "commands:\n"
    "  demo                       fit an MLP to sin(x) and print the loss (engine tour)\n"
    "  train ppo|reinforce        train on a classic-control environment (CartPole, Pendulum, LunarLander)\n"
    "  eval --run runs/<name>     play episodes with a trained policy and report the return\n"
    "  plot runs/<name>           draw the run's learning curve (return.svg)\n"
    "  lm pretrain|sft|sample|eval  toy language models (GPT on the engine)\n"
    "  lm prefs|rm|dpo|rrhf|ppo   RLHF: preference data, reward model, DPO, RRHF, PPO-RLHF\n"
    "  lm grpo|dr-grpo|dapo|gspo|gspo-token|dcpo|rloo  group-relative RL on verifiable rewards\n"
    "  experiment frontier        DPO vs PPO-RLHF reward-KL frontier on reviews (DPO paper, Fig. 2)\n"
    "  experiment verifiable      GRPO family x 3 seeds on arith from one SFT checkpoint\n";

// The message on one line whatever it quotes (a prompt, a JSONL field): control characters
// are written as \n, \r, \t or \xNN, so an error is always exactly one line on stderr.
std::string one_line(const char* what) {
  std::string out;
  for (const char* p = what; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      if (argc > 2)
        throw rlft::Error(rlft::str("rlft ", argv[1], ": unexpected argument '", argv[2],
                                    "' (a command's options: rlft <command> --help)"));
      std::fputs(kUsage, stdout);
      return 0;
    }
    const std::string cmd = argv[1];
    // Classic-control networks are tiny: an OpenMP fork/join costs more than it saves, so
    // these commands run on one thread unless OMP_NUM_THREADS says otherwise.
    if ((cmd == "train" || cmd == "eval") && std::getenv("OMP_NUM_THREADS") == nullptr) omp_set_num_threads(1);
    if (cmd == "demo") return rlft::cli::run_demo(argc, argv, 2);
    if (cmd == "train") return rlft::cli::run_train(argc, argv, 2);
    if (cmd == "eval") return rlft::cli::run_policy_eval(argc, argv, 2);
    if (cmd == "plot") return rlft::cli::run_curve_plot(argc, argv, 2);
    if (cmd == "lm" && argc > 2) {
      // RLHF (cli/cmd_rlhf.cpp) and group-relative RL (cli/cmd_group_rl.cpp) subcommands;
      // pretrain/sft/sample/eval go to cli/cmd_lm.cpp.
      const std::string sub = argv[2];
      for (const char* s : {"prefs", "rm", "dpo", "rrhf", "ppo"})
        if (sub == s) return rlft::cli::run_rlhf(sub, argc, argv, 3);
      for (const char* s : {"grpo", "dr-grpo", "dapo", "gspo", "gspo-token", "dcpo", "rloo"})
        if (sub == s) return rlft::cli::run_group_rl(sub, argc, argv, 3);
    }
    if (cmd == "lm") return rlft::cli::run_lm(argc, argv, 2);
    if (cmd == "experiment" && argc > 2) {
      const std::string sub = argv[2];
      if (sub == "frontier") return rlft::cli::run_experiment_frontier(argc, argv, 3);
      if (sub == "verifiable") return rlft::cli::run_experiment_verifiable(argc, argv, 3);
    }
    if (cmd == "experiment") {
      if (argc > 2 && (std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h")) {
        std::fputs(
            "usage: rlft experiment frontier|verifiable [options]   (rlft experiment <name> --help "
            "lists its "
            "options)\n",
            stdout);
        return 0;
      }
      if (argc > 2)
        throw rlft::Error(rlft::str("rlft experiment: unknown experiment '", argv[2],
                                    "' (expected frontier or verifiable; see rlft --help)"));
      throw rlft::Error("usage: rlft experiment frontier|verifiable [options] (see rlft --help)");
    }
    throw rlft::Error(rlft::str("unknown command '", cmd, "' (see rlft --help)"));
  } catch (const rlft::Error& e) {
    std::fprintf(stderr, "rlft: error: %s%s\n", one_line(e.what()).c_str(),
                 rlft::cli::recorded_note(e.what()).c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    // Nearly always a size asked for on the command line or read from a file: bad input, not
    // a bug, so one error line and status 2 like any other.
    std::fputs(
        "rlft: error: out of memory: an option or a file asks for more than this machine has "
        "(a count, size or length too large?)\n",
        stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlft: internal error: %s\n", one_line(e.what()).c_str());
    return 1;
  }
}
