// Models (MLP, policies, GPT) are added by the RL issues.
namespace rlft::models {}
