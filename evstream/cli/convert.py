"""``evstream convert IN OUT``: any readable recording to AEDAT4 or ``.npz``, streaming.

OUT appears only when the conversion ends (a temporary file is renamed): Ctrl-C or SIGTERM leave an existing
OUT as it was. A damaged IN gives an OUT with every event before the damage, and exit status 2."""

from __future__ import annotations

HELP = "convert any readable recording to .aedat4 or .npz (arrays t, x, y, p; scalars width, height)"


def add_arguments(p):
    p.add_argument("input", help="a recording in any readable format")
    p.add_argument("output", help="OUT.aedat4 or OUT.npz (written to a temporary name, renamed when complete)")


def run(args) -> int:
    from evstream.errors import EvstreamError, FormatError
    from evstream.fileio import exit_on_sigterm, same_file
    from evstream.readers import open_reader
    from evstream.writers import open_writer

    if same_file(args.input, args.output):
        raise EvstreamError("is both input and output: choose another output name", where=args.output)
    with exit_on_sigterm(), open_reader(args.input) as r, open_writer(args.output, r.sensor_size) as w:
        try:
            for chunk in r.chunks():
                w.write(chunk)
        except FormatError as exc:  # the input is damaged: keep what was read before the damage
            w.close()
            raise EvstreamError(f"{exc}; the {w.count} events before it were written to {args.output}") from None
    print(f"{args.input} ({r.format}) -> {args.output}: {w.count} events, sensor {r.sensor_size[0]}x{r.sensor_size[1]}")
    return 0
