// rlft lm …: toy language models. Filled in by the GPT/SFT issue.
#include "cli/commands.h"
#include "engine/error.h"

namespace rlft::cli {
int run_lm(int, char**, int) { throw Error("rlft lm: the language-model commands are not implemented yet"); }
}  // namespace rlft::cli
