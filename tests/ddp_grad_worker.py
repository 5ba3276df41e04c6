"""Run by tests/test_distributed.py (alone or under torchrun): one training step of a small MST on a fixed
batch, each process on its share; rank 0 saves the gradients and BatchNorm statistics."""

import sys
import warnings

import torch

from evstream import distributed as dist
from tiny import tiny_model

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
dist.init()
model = tiny_model("mst", seed=0)
x, y = torch.rand(8, 4, 16, 16), torch.arange(8) % 5
net = dist.wrap(model)
model.train()
loss = torch.nn.functional.cross_entropy(net(dist.shard(x)), dist.shard(y))
loss.backward()
if dist.is_main():
    torch.save({"grad": {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
                "buffers": dict(model.named_buffers())}, sys.argv[1])
dist.finish()
