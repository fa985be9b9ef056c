"""The Typer application and its command groups."""

from __future__ import annotations

import typer

from tacitly.cli.behavior import behavior_app
from tacitly.cli.collect import collect_app
from tacitly.cli.demo import demo_command
from tacitly.cli.followup import flr_app
from tacitly.cli.gaze import gaze_app
from tacitly.cli.models import models_command
from tacitly.cli.rewards import rm_app
from tacitly.cli.score import score_command
from tacitly.cli.synthetic import predict_command, train_command

app = typer.Typer(
    name="tacitly",
    help="Learn rewards from implicit human feedback and align language models with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
gaze_app.command("train")(train_command)
gaze_app.command("predict")(predict_command)
app.add_typer(gaze_app, name="gaze")
app.add_typer(rm_app, name="rm")
app.add_typer(flr_app, name="flr")
app.add_typer(behavior_app, name="behavior")
app.add_typer(collect_app, name="collect")
app.command("models", help="List the embedded backbones: installed, cached, sizes.")(models_command)
app.command("demo", help="Run the main job on the embedded defaults and print its table.")(
    demo_command
)
app.command("score", help="Score a JSON Lines file with any reward; resumable, optionally on Ray.")(
    score_command
)
