// Algorithms and environments are added by the RL issues.
namespace rlft::rl {}
