"""Every option of the `ddream` commands, declared once (the --config callback that turns a TOML file
into their defaults is cli_settings.load_config; `edit` and `complete` declare their own few in
cli_edit). Fixed choices are Literal types, so Typer checks them and completion offers them; figures
in the help come from the settings. No torch here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ddream import cli_settings as cs
from ddream.config import DistillConfig
from ddream.presets import get_profile

_DIAL = DistillConfig().cfg_range


def _schedule(profile: str) -> str:
    """'20+2 AE, 10 DiT, 10 distill epochs': a profile's epochs, as its settings have them."""
    p = get_profile(profile)
    return (f"{p.ae_train.epochs}+{p.ae_train.finetune_epochs} AE, {p.dit_train.epochs} DiT, "
            f"{p.distill.epochs} distill epochs")  # fmt: skip


DEFAULT_STATE = Path("ddream-state")

Profile = Literal["reference", "fast", "quick"]
Preset = Literal["default", "digitdreamer"]
Dataset = Literal["mnist", "fashion", "kmnist", "emnist-digits", "qmnist"]
Solver = Literal["euler", "heun"]
Model = Literal["auto", "student", "teacher"]
Between = Literal["classes", "seeds"]
Dtype = Literal["auto", "fp32", "bf16"]
DEVICES = ["auto", "cpu", "cuda", "mps"]


# ---- options every command shares -----------------------------------------------------------------
StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="DDREAM_STATE_DIR",
        help="Experiment folder holding state.json and artifacts (reading commands also take a "
        "folder `ddream export` wrote).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.",
        autocompletion=lambda: DEVICES,
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", min=0, max=2**63 - 1, help="Seed for every random draw; same seed, same result."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        is_eager=True,
        callback=cs.load_config,
        help="TOML file: option values as top-level keys (the long options), and any setting in "
        "tables [ae] [ae_train] [dit] [dit_train] [sample] [distill] (see `ddream config`); "
        "flags given here override it.",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with MNIST in torchvision's layout (MNIST/raw/*-ubyte); default: "
        "download into the state dir.",
    ),
]
DatasetOpt = Annotated[
    Dataset,
    typer.Option("--dataset", help="torchvision's MNIST or one of its MNIST-like sets."),
]
PresetOpt = Annotated[
    Preset,
    typer.Option(
        "--preset",
        help="default (ddream's recipe) or digitdreamer (the reference design's, for comparison).",
    ),
]
ProfileOpt = Annotated[
    Profile,
    typer.Option(
        "--profile",
        help=f"reference (the full schedule: {_schedule('reference')}), fast (the same models, "
        f"{_schedule('fast')}: a first look in minutes) or quick (a tiny model on a slice of the "
        "data, seconds: a smoke test).",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Start this stage afresh, dropping its record and resume checkpoint."
    ),
]
CkptOpt = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every",
        min=1,
        help="Steps between resume checkpoints (also at every epoch end).",
    ),
]

# ---- training --------------------------------------------------------------------------------------
AEEpochsOpt = Annotated[
    int | None, typer.Option("--epochs", min=0, help="Augmented epochs (reference: 20).")
]
PipelineAEEpochsOpt = Annotated[
    int | None, typer.Option("--ae-epochs", min=0, help="Augmented AE epochs (reference: 20).")
]
FinetuneOpt = Annotated[
    int | None,
    typer.Option(
        "--finetune-epochs",
        min=0,
        help="Fine-tune AE epochs on the original digits (reference: 2).",
    ),
]
LatentOpt = Annotated[
    int | None,
    typer.Option(
        "--latent-channels", min=1, help="Channels of the 2x2 latent (must divide the last width)."
    ),
]
GanWeightOpt = Annotated[
    float | None, typer.Option(min=0.0, help="Weight of the adversarial term (0 = off).")
]
GanStartOpt = Annotated[int | None, typer.Option(min=0, help="Step at which the GAN term starts.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1, help="Examples per step.")]
LrOpt = Annotated[float | None, typer.Option("--lr", min=1e-9, help="Peak learning rate.")]
DiTEpochsOpt = Annotated[
    int | None,
    typer.Option("--epochs", min=1, help="Epochs over the training latents (reference: 10)."),
]
PipelineDiTEpochsOpt = Annotated[
    int | None, typer.Option("--dit-epochs", min=1, help="DiT epochs (reference: 10).")
]
WidthOpt = Annotated[int | None, typer.Option(min=8, help="Transformer width.")]
DepthOpt = Annotated[int | None, typer.Option(min=1, help="Number of DiT blocks.")]
PatchOpt = Annotated[
    int | None, typer.Option(min=1, help="Patch size over the 2x2 latent (1: 4 tokens, 2: one).")
]
EmaOpt = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="EMA decay of the weights used for sampling."),
]
UniformOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of training t drawn uniformly instead of logit-normal (more weight near "
        "t = 1, where sampling starts).",
    ),
]
DistillEpochsOpt = Annotated[
    int | None,
    typer.Option("--epochs", min=1, help="Epochs over the teacher's pairs (reference: 15)."),
]
PipelineDistillEpochsOpt = Annotated[
    int | None, typer.Option("--distill-epochs", min=1, help="Distillation epochs (reference: 15).")
]
PairsOpt = Annotated[
    int | None, typer.Option(min=64, help="(noise, class) -> teacher latent pairs to learn from.")
]
TeacherStepsOpt = Annotated[
    int | None, typer.Option(min=1, max=200, help="Heun steps of the teacher for the pairs.")
]

# ---- sampling ----------------------------------------------------------------------------------------
ModelOpt = Annotated[
    Model,
    typer.Option(
        "--model",
        help="auto (the distilled student when `ddream distill` has run, else the teacher), "
        "student (one network pass a digit, guidance an input) or teacher (the DiT's "
        "guided ODE: --steps, --solver, --cfg).",
    ),
]
DtypeOpt = Annotated[
    Dtype,
    typer.Option(
        "--dtype",
        help="What the DiT and the decoder compute in: auto (bf16 on a GPU or a CPU with bf16 "
        "hardware, AVX512-BF16 or AMX; fp32 elsewhere), fp32 "
        "(the same pixels on every CPU) or bf16.",
    ),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=1000,
        help="ODE steps of the teacher (default: its own, 2 Heun steps for ddream's); the student "
        "draws in one.",
    ),
]
CfgOpt = Annotated[
    float | None,
    typer.Option(
        "--cfg",
        help="Classifier-free guidance scale, 1 = none: the dial between varied digits (low) and "
        "clean, alike ones (high). The student takes it in one pass within the range it learned "
        f"(the default model's: {_DIAL[0]:g} to {_DIAL[1]:g}; a scale outside it is refused and "
        "names it); default: the "
        "model's own.",
    ),
]
IntervalOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(
        "--cfg-interval",
        help="Teacher only: guide only for t in [LO, HI] (t=1 is noise), the conditional velocity "
        "alone elsewhere (default: the model's).",
    ),
]
SolverOpt = Annotated[
    Solver | None,
    typer.Option(
        help="The ODE solver (default: the model's own: euler for the student, which takes no "
        "other; heun for ddream's teacher)."
    ),
]
CountOpt = Annotated[
    int | None,
    typer.Option(
        "--n", "-n", min=1, max=100_000, help="How many digits (default 100; 10 a morph frame)."
    ),
]
EvalCountOpt = Annotated[
    int,
    typer.Option("--n", "-n", min=10, max=100_000, help="Generated digits, balanced over classes."),
]
ClassesOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--class",
        "-c",
        min=0,
        max=9,
        help="Class to draw (repeatable); default: a row of each of 0-9.",
    ),
]
GridOpt = Annotated[
    Path | None,
    typer.Option(
        "--grid", help="PNG grid to write (default samples.png when no other output is named)."
    ),
]
GifOpt = Annotated[
    Path | None,
    typer.Option(
        "--gif",
        help="GIF of the sampling trajectory: the teacher's ODE steps, or for the student the "
        "straight path from the noise to its digit that its one step jumps along.",
    ),
]
NpzOpt = Annotated[
    Path | None, typer.Option("--npz", help=".npz with images (uint8 Nx28x28) and labels.")
]
ScaleOpt = Annotated[int | None, typer.Option(min=1, max=16, help="Pixel zoom of the pictures.")]
LabelsOpt = Annotated[
    bool | None,
    typer.Option(
        "--labels/--no-labels",
        help="Label each grid row with its class (default: on; not for morphs).",
    ),
]
InterpolateOpt = Annotated[
    tuple[int, int] | None,
    typer.Option(
        "--interpolate",
        min=0,
        help="Morph from A to B (two classes, or two seeds with --between seeds) into --gif.",
    ),
]
BetweenOpt = Annotated[Between, typer.Option(help="What --interpolate morphs between.")]
FramesOpt = Annotated[int, typer.Option(min=2, max=200, help="Frames of an --interpolate morph.")]

# ---- reconstruct, serve -------------------------------------------------------------------------------
ImagesArg = Annotated[list[Path] | None, typer.Argument(help="PNG/JPEG/BMP/GIF files of digits.")]
TestOpt = Annotated[
    int | None,
    typer.Option(
        "--test", min=1, max=10_000, help="Instead: N test digits over their reconstructions."
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output PNG (default NAME.recon.png beside the input; reconstructions.png with --test).",
    ),
]
InvertOpt = Annotated[
    bool | None,
    typer.Option(
        "--invert/--no-invert",
        help="Force (or forbid) inverting dark-on-light input; default: detect.",
    ),
]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the page.")]
HostOpt = Annotated[
    str,
    typer.Option(
        "--host", help="Address to bind; 0.0.0.0 makes the page reachable from the network."
    ),
]
ExportOutArg = Annotated[
    Path, typer.Argument(help="The model folder to write (new or empty; --force replaces it).")
]
_ONNX = "Also write generator/encoder/decoder.onnx, checked against torch (the export extra)."
OnnxOpt = Annotated[bool, typer.Option("--onnx", help=_ONNX)]
_REPLACE = "Replace OUT when it is not empty (once the new one is done)."
ReplaceOpt = Annotated[bool, typer.Option("--force", help=_REPLACE)]
_TEST_DIGITS = "MNIST folder with the test digits the card's reconstruction figure shows."
ExportDataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help=_TEST_DIGITS)]
PlotOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder for curves.png and the GIFs (made if its parent exists; default STATE_DIR/plots).",
    ),
]
TensorboardOpt = Annotated[
    Path | None,
    typer.Option(
        "--tensorboard",
        metavar="DIR",
        help="Also write TensorBoard event files (scalars, snapshots) into DIR/<stage> (the tensorboard extra; or [log] tensorboard).",
    ),
]
