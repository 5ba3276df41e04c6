"""Print the markdown validation table of an `evstream eval` JSON (used for models/README.md).

    python scripts/eval_table.py models/mst-nmnist.eval.json
"""

import json
import sys


def main(path):
    r = json.load(open(path))
    print(f"Dataset `{r['dataset']}`, split `{r['split']}`, {r['samples']} samples. "
          f"ANN: accuracy {r['ann']['accuracy'] * 100:.1f} %, {r['ann']['energy_uJ']:.2f} µJ per sample.\n")
    print("| T | mask | SNN accuracy (mean ± std over seeds) | spikes / sample | energy / sample (µJ) | vs ANN energy |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in sorted(r["snn"], key=lambda x: (x["mask_ratio"], x["timesteps"])):
        print(f"| {row['timesteps']} | {row['mask_ratio']:g} | {row['accuracy_mean'] * 100:.1f} ± "
              f"{row['accuracy_std'] * 100:.1f} % | {row['spikes_per_sample']:,.0f} | {row['energy_uJ']:.2f} | "
              f"{row['energy_uJ'] / r['ann']['energy_uJ']:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
