# Seed runs/<name>/checkpoints/latest.pt with the shipped weights (warm start): fresh Adam and
# cosine schedule at iteration 0, so `synapse-bmz train` "resumes" from the current package.
import sys, torch
from synapse_bmz.training.config import load_train_config
from synapse_bmz.training.loop import build_model
cfg_path, weights, out = sys.argv[1:4]
cfg = load_train_config(cfg_path)
model = build_model(cfg)
model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
opt = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "iteration": 0, "best_dice": -1.0, "best_iteration": 0, "elapsed_s": 0.0}, out)
print("seeded", out)
