"""Drawing digits with a trained model: the student (one network pass, guidance an input) or the
teacher (the DiT's guided ODE), then un-standardise and decode. `ddream sample`, `eval`, `serve`, the
Python API and the benchmarks all draw through `Sampler`."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from ddream.artifacts import Latents, load_ae, load_dit, load_student
from ddream.checkpoint import BadArtifact
from ddream.config import SampleConfig, to_dict
from ddream.data import model_to_uint8
from ddream.errors import BadInput
from ddream.flow import cfg_mix, guidance_at, guided_velocity, sample_ode
from ddream.limits import MAX_DIGITS, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, number, whole
from ddream.models.dit import DiT
from ddream.models.fused_decoder import inference_decoder
from ddream.runtime import autocast, rows_per_call, sampling_dtype, seeded
from ddream.state import StateDir

MODELS = ("auto", "student", "teacher")


@dataclass(frozen=True)
class SampleRequest:
    """What to sample; steps, cfg and solver left None take the model's own defaults. `model`:
    auto (the distilled student when the distill stage is done, else the teacher), student or
    teacher (the DiT's guided ODE)."""

    n: int = 100
    classes: tuple[int, ...] = tuple(range(10))
    steps: int | None = None
    cfg: float | None = None
    solver: str | None = None
    seed: int = 0
    model: str = "auto"
    cfg_interval: tuple[float, float] | None = None
    dtype: str = "auto"  # auto (bf16 where the hardware has it), fp32 or bf16; see runtime.py


def class_rows(n: int, classes: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """Labels for n digits laid out class by class, and the grid's column count (one class a row)."""
    per_class = math.ceil(n / len(classes))
    labels = torch.tensor(classes).repeat_interleave(per_class)[:n]
    return labels, min(per_class, 20)


# How each entry point names a request's values in its one-line refusals (the page has its own, in
# demo.py): the sampler words no message for one door only.
CLI_NAMES = {"n": "--n", "classes": "--class", "seed": "--seed", "steps": "--steps", "cfg": "--cfg",
             "solver": "--solver", "cfg_interval": "--cfg-interval", "dtype": "--dtype",
             "teacher": "--model teacher"}  # fmt: skip
API_NAMES = {"n": "n", "classes": "classes", "seed": "seed", "steps": "steps", "cfg": "cfg",
             "solver": "solver", "cfg_interval": "cfg_interval", "dtype": "dtype",
             "teacher": 'model="teacher"'}  # fmt: skip


def checked_request(req: SampleRequest, num_classes: int, names: dict[str, str]) -> dict[str, Any]:
    """The request's values checked against ddream's one set of limits (limits.py), whatever door
    they came in by, each named as that door names it; returns them as plain ints and floats."""
    if not isinstance(req.classes, (tuple, list)) or not req.classes:
        raise BadInput(f"{names['classes']}: give at least one class")
    top = num_classes - 1
    steps, cfg = req.steps, req.cfg
    return {
        "n": whole(req.n, names["n"], 1, MAX_DIGITS),
        "classes": tuple(whole(c, names["classes"], 0, top) for c in req.classes),
        "seed": whole(req.seed, names["seed"], 0, MAX_SEED),
        "steps": None if steps is None else whole(steps, names["steps"], 1, MAX_STEPS),
        "cfg": None if cfg is None else number(cfg, names["cfg"], 0.0, MAX_GUIDANCE),
    }


class Sampler:
    """A velocity network + decoder, ready to turn (labels, seed) into digits. The teacher is the
    DiT, integrated with guidance; the student takes one Euler step, its guidance an input (or,
    from before the dial, baked into its weights)."""

    def __init__(
        self,
        dit: DiT,
        decoder: torch.nn.Module,
        stats: Latents,
        device: torch.device,
        kind: str = "teacher",
        defaults: dict[str, Any] | None = None,
        decoder_name: str = "autoencoder",
        dtype: str = "auto",
    ) -> None:
        self.dit, self.stats, self.device, self.kind = dit, stats, device, kind
        self.dtype = sampling_dtype(device, dtype)  # what the DiT and the decoder compute in
        self.decoder, self.decoder_name = inference_decoder(decoder, device), decoder_name
        self.defaults = {**to_dict(SampleConfig()), **(defaults or {})}
        self.shape = (dit.cfg.latent_channels, dit.cfg.latent_size, dit.cfg.latent_size)

    @classmethod
    def from_state(
        cls, state: StateDir, device: torch.device, model: str = "auto", dtype: str = "auto"
    ) -> Sampler:
        if model not in MODELS:
            raise BadInput(f"--model {model!r}: choose one of {', '.join(MODELS)}")
        distill = state.view("distill")
        if model == "student" or (model == "auto" and distill.status == "done"):
            return cls.student(state, device, dtype)
        if model == "auto" and distill.status in ("corrupt", "stale"):
            # not silently: the teacher is slower and draws other digits than the student would
            print(
                f"note: the one-step student is {distill.status} ({distill.detail}); drawing with "
                "the teacher. `ddream distill` (or `ddream all`) makes a fresh one.",
                file=sys.stderr,
            )
        dit, stats, _ = load_dit(state, device)
        ae, ae_sha = load_ae(state, device)
        if stats.ae_sha != ae_sha:
            raise BadArtifact(
                "the DiT was trained on latents of another autoencoder; rerun "
                "`ddream encode` and `ddream train-dit` (or `ddream all`)"
            )
        return cls(dit, ae.decoder, stats, device, "teacher", dit.sample_defaults, dtype=dtype)

    @classmethod
    def student(cls, state: StateDir, device: torch.device, dtype: str = "auto") -> Sampler:
        st = load_student(state, device)
        decoder, name = st.decoder, "distilled"
        if decoder is None:
            ae, _ = load_ae(state, device)
            decoder, name = ae.decoder, "autoencoder"
        defaults = {"steps": 1, "cfg": st.meta["cfg"], "solver": "euler"}
        if st.meta.get("cfg_range"):  # guidance is the student's input, within the range it learned
            defaults["cfg_range"] = tuple(st.meta["cfg_range"])
        return cls(st.model, decoder, st.stats, device, "student", defaults, name, dtype)

    def resolve(self, req: SampleRequest, names: dict[str, str] = CLI_NAMES) -> SampleRequest:
        """The request with unset steps/cfg/solver taken from the model; options that do not apply
        to the student are refused with one line."""
        req = dataclasses.replace(req, **checked_request(req, self.dit.cfg.num_classes, names))
        if req.dtype not in ("auto", self.dtype):
            raise BadInput(
                f"{names['dtype']} {req.dtype}: this sampler was loaded for {self.dtype}"
            )
        if self.kind == "student":
            baked, teacher = self.defaults["cfg"], names["teacher"]
            dial = self.defaults.get("cfg_range")
            if dial is not None and req.cfg is not None and not dial[0] <= req.cfg <= dial[1]:
                raise BadInput(
                    f"{names['cfg']} {req.cfg:g}: the student learned guidance {dial[0]:g} to "
                    f"{dial[1]:g}; use {teacher} for others"
                )
            if dial is None and req.cfg is not None and not math.isclose(req.cfg, baked):
                raise BadInput(
                    f"{names['cfg']} {req.cfg}: the student has guidance {baked} baked in; "
                    f"use {teacher} for other guidance"
                )
            if req.solver is not None and req.solver != "euler":
                raise BadInput(
                    f"{names['solver']} {req.solver}: the student takes straight Euler steps; "
                    f"use {teacher} for the ODE solvers"
                )
            if req.cfg_interval is not None:
                raise BadInput(
                    f"{names['cfg_interval']}: the student's guidance interval is fixed by its "
                    f"training; use {teacher} to limit guidance to an interval"
                )
            if req.steps is not None and req.steps != 1:  # trained at t = 1 only: 2 drew worse
                raise BadInput(
                    f"{names['steps']} {req.steps}: the student draws in one step; use {teacher} "
                    "for more"
                )
        return dataclasses.replace(
            req,
            steps=req.steps if req.steps is not None else self.defaults["steps"],
            cfg=req.cfg if req.cfg is not None else self.defaults["cfg"],
            solver=req.solver if req.solver is not None else self.defaults["solver"],
            model=self.kind,
            dtype=self.dtype,
            cfg_interval=None
            if self.kind == "student"
            else tuple(
                req.cfg_interval
                if req.cfg_interval is not None
                else self.defaults.get("cfg_interval", (0.0, 1.0))
            ),
        )

    def noise(self, n: int, seed: int) -> torch.Tensor:
        return torch.randn((n, *self.shape), generator=seeded(seed, "sample")).to(self.device)

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> uint8 (N, 28, 28)."""
        with autocast(self.device, self.dtype):
            x = self.decoder(self.stats.unstandardise(z.float()))
        return model_to_uint8(x)

    def _velocity(self, labels: torch.Tensor, req: SampleRequest):
        """v(x, t) for these labels: the student's one row a digit (guidance is in its weights), or
        the teacher's guided pair of rows. On a CPU the DiT runs ~1.5x faster on slices of 1,024
        rows, whose activations stay in cache; in bf16, ~1.1x faster again on 2,048 (BENCHMARKS.md)."""
        rows = rows_per_call("dit", self.device, self.dtype) or len(labels)
        # a student takes its guidance as an input (one pass), or has it in its weights
        cfg = 1.0 if self.kind == "student" and not self.dit.guidance_input else req.cfg
        cast = lambda: autocast(self.device, self.dtype)  # noqa: E731
        return guided_velocity(self.dit, labels, cfg, req.cfg_interval, rows, cast)

    @torch.inference_mode()
    def generate(
        self,
        labels: torch.Tensor,
        req: SampleRequest,
        noise: torch.Tensor | None = None,
        keep_trajectory: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Digits for these labels, and (if asked) the latent path that drew them: the ODE's
        steps for the teacher; for the student, its straight path from noise to digit."""
        req = self.resolve(req)
        labels = labels.to(self.device)
        z0 = self.noise(len(labels), req.seed) if noise is None else noise
        z, traj = sample_ode(
            self._velocity(labels, req), z0, req.steps, req.solver, keep_trajectory
        )
        if keep_trajectory and self.kind == "student":
            traj = straight_path(traj, STUDENT_GIF_FRAMES)
        return self.decode(z), traj

    @torch.inference_mode()
    def generate_mixed(
        self,
        labels_a: torch.Tensor,
        labels_b: torch.Tensor,
        w: float,
        req: SampleRequest,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """Digits whose velocity mixes two classes: (1-w) v_a + w v_b for the student; for the
        teacher the guided form v_null + cfg * ((1-w) v_a + w v_b - v_null)."""
        req = self.resolve(req)
        student = self.kind == "student"
        rows = [labels_a, labels_b] + ([] if student else [torch.full_like(labels_a, self.null)])
        y = torch.cat(rows)

        dial = torch.full_like(y, req.cfg, dtype=torch.float32) if self.dit.guidance_input else None

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            k = len(rows)
            with autocast(self.device, self.dtype):
                v = self.dit(torch.cat([x] * k), torch.cat([t] * k), y, dial).float()
            parts = v.chunk(k)
            mixed = (1 - w) * parts[0] + w * parts[1]
            if student:
                return mixed
            return cfg_mix(mixed, parts[2], guidance_at(float(t[0]), req.cfg, req.cfg_interval))

        z, _ = sample_ode(velocity, noise, req.steps, req.solver)
        return self.decode(z)

    @property
    def null(self) -> int:
        return self.dit.cfg.num_classes


STUDENT_GIF_FRAMES = 12


def gif_frames(sampler: Sampler, req: SampleRequest) -> int:
    """Frames of the trajectory GIF of a resolved request."""
    return STUDENT_GIF_FRAMES if sampler.kind == "student" else req.steps + 1


def straight_path(points: list[torch.Tensor], frames: int) -> list[torch.Tensor]:
    """`frames` latents evenly spaced along the piecewise-straight path through `points` (the
    student's Euler steps), so its GIF shows the line its step jumps along."""
    segments = len(points) - 1
    out = []
    for s in torch.linspace(0.0, float(segments), frames).tolist():
        i = min(int(s), segments - 1)
        w = s - i
        out.append((1 - w) * points[i] + w * points[i + 1])
    return out


def dial_scales(sampler: Sampler, count: int = 5) -> list[float]:
    """`count` guidance scales evenly over what the sampler takes: the student's learned range, or
    1 to 3 for the teacher; a student with its guidance baked in has that one scale alone."""
    if sampler.kind == "student" and "cfg_range" not in sampler.defaults:
        return [float(sampler.defaults["cfg"])]
    lo, hi = sampler.defaults.get("cfg_range", (1.0, 3.0))
    return [round(lo + (hi - lo) * i / (count - 1), 3) for i in range(count)]


def dial_images(sampler: Sampler, req: SampleRequest, scales: list[float]) -> list[torch.Tensor]:
    """The same noise and classes drawn at each guidance scale: what turning the dial does. Each
    entry holds req.n digits, uint8 (N, 28, 28)."""
    labels, _ = class_rows(req.n, req.classes)
    noise = sampler.noise(req.n, req.seed)
    return [
        sampler.generate(labels, dataclasses.replace(req, cfg=w), noise=noise)[0] for w in scales
    ]


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation of two noise batches, row by row (keeps the noise's norm)."""
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1))
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))[:, None]
    out = (torch.sin((1 - w) * omega) * fa + torch.sin(w * omega) * fb) / torch.sin(omega)
    return out.view_as(a)


def morph_images(
    sampler: Sampler,
    req: SampleRequest,
    start: int,
    end: int,
    between: str,
    weights: list[float],
) -> list[torch.Tensor]:
    """The digits at each weight w of a morph from `start` (w = 0) to `end` (w = 1): two classes
    (same noise, the conditional velocities mixed) or two seeds (same classes, the noise slerped).
    Each entry holds req.n digits, uint8 (N, 28, 28)."""
    req = sampler.resolve(req)
    device = sampler.device
    if between == "classes":
        labels_a = torch.full((req.n,), start, device=device)
        labels_b = torch.full((req.n,), end, device=device)
        noise = sampler.noise(req.n, req.seed)
        return [sampler.generate_mixed(labels_a, labels_b, w, req, noise) for w in weights]
    labels = torch.tensor([req.classes[i % len(req.classes)] for i in range(req.n)])
    a, b = sampler.noise(req.n, start), sampler.noise(req.n, end)
    return [sampler.generate(labels, req, noise=slerp(a, b, w))[0] for w in weights]
