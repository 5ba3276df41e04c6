"""``evstream convert IN OUT``: any readable recording to AEDAT4 or ``.npz``, streaming."""

from __future__ import annotations

HELP = "convert any readable recording to .aedat4 or .npz (arrays t, x, y, p; scalars width, height)"


def add_arguments(p):
    p.add_argument("input", help="a recording in any readable format")
    p.add_argument("output", help="OUT.aedat4 or OUT.npz")


def run(args) -> int:
    from evstream.errors import EvstreamError
    from evstream.readers import open_reader
    from evstream.writers import open_writer

    with open_reader(args.input) as r, open_writer(args.output, r.sensor_size) as w:
        try:
            for chunk in r.chunks():
                w.write(chunk)
        except EvstreamError as exc:
            w.close()  # keep what was read before the damage
            raise EvstreamError(f"{exc}; the {w.count} events before it were written to {args.output}") from None
    print(f"{args.input} ({r.format}) -> {args.output}: {w.count} events, sensor {r.sensor_size[0]}x{r.sensor_size[1]}")
    return 0
