// rlft experiment frontier — placeholder while it is being written.
#include "cli/commands.h"
#include "engine/error.h"

namespace rlft::cli {

int run_experiment_frontier(int, char**, int) { throw Error("rlft experiment frontier: not written yet"); }

}  // namespace rlft::cli
