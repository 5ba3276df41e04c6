"""``evstream pretrain``: MAE-style self-supervised pre-training of a Spikformer on unlabelled events."""

from __future__ import annotations

from pathlib import Path

HELP = "MAE-style pre-training of a Spikformer (75% of the stem's tokens masked, light ANN decoder discarded)"


def add_arguments(p):
    from evstream.paths import data_root

    data = data_root()
    p.add_argument("--dataset", default="nmnist", choices=["nmnist", "ncars", "cifar10dvs", "asl"],
                   help="layout of --root (its labels are not used)")
    p.add_argument("--root", default=None, help="a dataset folder whose recordings are used unlabelled")
    p.add_argument("--labels", default=None, help="file list of the N-MNIST small layout (labels ignored)")
    p.add_argument("--emulated", type=int, default=0, help="this many emulated MNIST saccade samples")
    p.add_argument("--emulated-root", default=str(data / "mnist_images"))
    p.add_argument("--recordings", nargs="*", default=[], help="recordings in any readable format, cut into windows")
    p.add_argument("--window-ms", type=float, default=300.0, help="window length for --recordings")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--num-classes", type=int, default=10, help="head size of the saved model (for fine-tuning)")
    p.add_argument("--out", default="spikformer-pretrained.pt")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=1, help="warm-up epochs")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--timesteps", type=int, default=1, help="encoder timesteps during pre-training (paper: 1)")
    p.add_argument("--decoder-dim", type=int, default=64)
    p.add_argument("--decoder-depth", type=int, default=2)
    p.add_argument("--decoder-heads", type=int, default=4)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=0, help="use only this many samples (quick runs)")
    p.add_argument("--cache", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    from evstream.pretrain import pretrain

    if args.root and args.labels is None and args.dataset == "nmnist" and (Path(args.root) / "labels.txt").exists():
        args.labels = str(Path(args.root) / "labels.txt")
    pretrain(args)
    return 0
