"""The end-of-run summary of a live pipeline: what `evstream run --summary-json` and `evstream gui
--summary-json` write (drops, per-stage latency p50/p99, the first decision's time since the process started,
energy against the ANN, what the noise filters removed, and, with labels, the stream score of
:func:`evstream.streams.score_decisions`)."""

from __future__ import annotations


def live_summary(pipe, stats: dict, source, model, decisions=None, segments=None) -> dict:
    """``stats``: ``pipe.stats()`` at the end; ``decisions``: the decision records' dicts, scored against the
    labelled ``segments`` when both are given."""
    lat = stats["latency"]
    summary = {"source": source, "model": model, "mode": pipe.lm.mode if pipe.lm else None,
               "slices": stats["slices_in"], "dropped_slices": stats["dropped_slices"],
               "queue_slices": stats["queue_slices"], "steps": stats["steps"],
               "decisions": stats["decisions"], "ann_energy_uJ_per_inference": stats["ann_uJ"],
               "snn_energy_uJ_total": pipe.energy.total_uJ, "step": stats["step"], "degrade": stats["degrade"],
               "first_decision_s": stats["first_decision_s"],  # the process's age then: imports, start-up included
               "latency_ms": {k: {"p50": round(v["p50_ms"], 3), "p99": round(v["p99_ms"], 3)}
                              for k, v in lat.items()}}
    if pipe.reader.filters:
        summary["filters"] = pipe.reader.filters.counts()  # events in, removed by each filter
    if segments is not None and decisions is not None:
        from evstream.streams import score_decisions

        rep = score_decisions(decisions, segments, duration_us=max(pipe.duration_us, segments[-1].t_end),
                              ann_energy_uJ=stats["ann_uJ"])
        summary["stream"] = rep
        summary["labelled_decisions"] = rep["scored"]
        summary["accuracy"] = rep["accuracy"]
    return summary
