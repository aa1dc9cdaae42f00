// rlft experiment verifiable — placeholder while it is being written.
#include "cli/commands.h"
#include "engine/error.h"

namespace rlft::cli {

int run_experiment_verifiable(int, char**, int) { throw Error("rlft experiment verifiable: not written yet"); }

}  // namespace rlft::cli
