"""The live path, one room per concern (see docs/architecture.md):

    config.py    LiveConfig: the frozen settings (built once from the CLI; changed with dataclasses.replace)
    model.py     load_model -> LoadedModel: a checkpoint ready to stream (runner, representation, ANN energy)
    reader.py    Reader: the reader thread (pacing, slicing, commands as dataclasses); Pacer
    queue.py     SliceQueue: whole slices and markers between the threads, oldest dropped when full
    stepper.py   ModelStepper: the model thread (window, steps, monitors, records)
    policy.py    DecisionPolicy: when to commit to a decision (pure, unit-tested)
    records.py   StepRecord, DecisionRecord, ... : what the GUI and `evstream run` consume
    view.py      EventView: the events as an image for the GUI
    recorder.py  Recorder: a session to AEDAT4 + CSV
    pipeline.py  Pipeline: wires them and exposes the control API
"""

from evstream.live.config import LIVE_SETTINGS, VIEWS, LiveConfig
from evstream.live.model import LIVE_MODES, LoadedModel, ann_energy_uJ, check_fit, live_mode, load_model
from evstream.live.pipeline import Pipeline
from evstream.live.policy import Decision, DecisionPolicy
from evstream.live.recorder import Recorder
from evstream.live.records import (DecisionRecord, EndRecord, ErrorRecord, ModelRecord, Record, ResetRecord,
                                   StatusRecord, StepRecord, decision_json)
from evstream.live.view import EventView

__all__ = ["LIVE_MODES", "LIVE_SETTINGS", "VIEWS", "Decision", "DecisionPolicy", "DecisionRecord", "EndRecord",
           "ErrorRecord", "EventView", "LiveConfig", "LoadedModel", "ModelRecord", "Pipeline", "Record",
           "Recorder", "ResetRecord", "StatusRecord", "StepRecord", "ann_energy_uJ", "check_fit", "decision_json",
           "live_mode", "load_model"]
