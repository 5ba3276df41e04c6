"""``evstream synth``: write a synthetic dataset in a real dataset's layout and file format."""

from __future__ import annotations

HELP = "write a synthetic N-MNIST / N-Cars / CIFAR10-DVS / ASL-DVS dataset (real layout and format) for tests and benchmarks"


def add_arguments(p):
    p.add_argument("dataset", choices=["nmnist", "ncars", "cifar10dvs", "asl"])
    p.add_argument("out", help="folder to write (an interrupted run resumes in the same folder)")
    p.add_argument("--fraction", type=float, default=0.01, help="fraction of the real dataset's file count "
                   "per split and class (at least one file each)")
    p.add_argument("--events", type=int, default=None, help="mean events per file (default: the dataset's typical)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, metavar="N", help="writing processes (default: all cores)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    from evstream.synth import SynthConfig, write_dataset

    s = write_dataset(SynthConfig(args.dataset, args.fraction, args.events, args.seed), args.out, args.workers,
                      args.progress)
    print(f"{s['dataset']}: {s['files']} files ({s['written']} written now), {s['bytes'] / 1e6:.1f} MB in {s['root']}"
          f" ({s['seconds']:.1f} s)")
    return 0
