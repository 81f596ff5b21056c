"""`ddream serve`: the Gradio page over `ddream.demo`'s handlers, one tab each: Generate, Draw, Morph,
Training, Model. Gradio is an optional extra (`pip install 'ddream[serve]'`); every handler's refusal becomes a
message on the page (gr.Error), never a traceback, and the server keeps serving."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from ddream.demo import MAX_COUNT, MAX_FRAMES, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, Demo
from ddream.errors import BadInput, DDreamError, Interrupted

INSTALL_HINT = "ddream serve needs Gradio: pip install 'ddream[serve]' (in a checkout: pip install -e '.[serve]')"
MAX_UPLOAD = "10mb"
# Gradio copies every picture it serves into its own cache (/tmp/gradio): every hour, delete those
# older than an hour, so a page left running does not fill the disk (all go when it restarts)
CACHE_PRUNE = (3600, 3600)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# What a drawing may be: the browser's pad sends WebP or PNG of 280x280; a script may send anything,
# so the header is read first and nothing else is decoded (no layers, no background).
SKETCH_FORMATS = ("PNG", "WEBP", "JPEG", "BMP", "GIF")
SKETCH_PIXELS = 4_000_000
SKETCH_SIZE = (280, 280)  # the pads' canvas: the Draw tab's and the Edit tab's two


def import_gradio():
    """Gradio, quietly and offline (no analytics), or one line on how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise BadInput(INSTALL_HINT) from None
    if int(gradio.__version__.split(".")[0]) < 6:
        raise BadInput(
            f"ddream serve needs Gradio 6 or newer (found {gradio.__version__}); "
            + INSTALL_HINT.split(": ", 1)[1].replace("pip install", "pip install -U", 1)
        )
    return gradio


def on_page(fn: Callable, gr) -> Callable:
    """A handler whose refusals (and any surprise) are shown on the page as one line."""

    @wraps(fn)
    def handler(*args: Any) -> Any:
        try:
            return fn(*args)
        except DDreamError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # the page shows a line; the server log keeps the details
            print(f"ddream serve: {fn.__name__} failed: {type(e).__name__}: {e}", file=sys.stderr)
            raise gr.Error(  # no server paths or internals on the page
                f"something went wrong ({type(e).__name__}); the server's log says more"
            ) from None

    return handler


def composite_only(sketch, gr):
    """Make a gr.Sketchpad read the composite alone: its background and its one layer are never
    decoded (more layers are refused), and the composite's size and format are read from its header
    before it is decoded. (Set on the instance: a subclass of a Gradio
    component would make Gradio write a .pyi file beside this module.)"""
    from io import BytesIO

    from PIL import Image

    convert = sketch.convert_and_format_image

    def preprocess(payload):
        if payload is None:
            return None
        data = payload
        if payload.id is not None:  # sent in parts beforehand
            data = sketch.blob_storage.pop(payload.id, None)
            if data is None:
                return None
        if len(data.layers or []) > 1:  # the pad draws on one layer; more come from a script
            raise gr.Error(
                "send the drawing as one composite picture, with at most one layer",
                print_exception=False,
            )
        return {"background": None, "layers": [], "composite": checked(data.composite)}

    def checked(file):
        if file is None:
            return None
        source = BytesIO(file) if isinstance(file, (bytes, bytearray)) else file.path
        try:
            with Image.open(source, formats=SKETCH_FORMATS) as im:  # the header alone
                w, h = im.size
        except Exception:
            raise gr.Error(
                "the drawing is not a picture (PNG or WebP)", print_exception=False
            ) from None
        if w * h > SKETCH_PIXELS:
            raise gr.Error(
                f"the drawing is {w}x{h} pixels; at most {SKETCH_PIXELS:,}", print_exception=False
            )
        return convert(file, flatten_on_white=True)

    sketch.preprocess = preprocess
    return sketch


def controls_for(demo: Demo, model: str) -> tuple[dict, dict]:
    """The steps and guidance sliders' ranges, values and labels for one of the loaded models: the
    student draws in one step and takes the guidance range it learned (or its one baked-in scale);
    the teacher takes any number of steps and any scale up to the page's limit (0: its own)."""
    sampler = demo.samplers[model]
    own = sampler.defaults["cfg"]
    if sampler.kind != "student":
        steps = {"minimum": 0, "maximum": MAX_STEPS, "value": 0, "interactive": True,
                 "label": f"steps (0: the model's own, {sampler.defaults['steps']})"}  # fmt: skip
        return steps, {"minimum": 0, "maximum": MAX_GUIDANCE, "value": 0,
                       "label": f"guidance (0: the model's own, {own:g})"}  # fmt: skip
    steps = {"minimum": 0, "maximum": 1, "value": 1, "interactive": False,  # Gradio: min < max
             "label": "steps (the student draws in one)"}  # fmt: skip
    if "cfg_range" not in sampler.defaults:  # from before the dial: one scale, baked in
        return steps, {"minimum": 0, "maximum": own, "value": own, "interactive": False,
                       "label": f"guidance ({own:g}, baked into the student)"}  # fmt: skip
    lo, hi = sampler.defaults["cfg_range"]
    return steps, {"minimum": lo, "maximum": hi, "value": own,
                   "label": f"guidance (the student takes {lo:g} to {hi:g})"}  # fmt: skip


def build(demo: Demo):
    """The page as a gr.Blocks, every event named for gradio_client (/generate, /draw, ...)."""
    gr = import_gradio()
    models = list(demo.samplers)
    digits = [str(i) for i in range(10)]
    with gr.Blocks(title="ddream", analytics_enabled=False, delete_cache=CACHE_PRUNE) as page:
        gr.Markdown(
            "# ddream\nA rectified-flow latent diffusion model for MNIST digits, trained by "
            "`ddream all`."
        )
        # Gradio checks a request against a component's own range: the server's take what any model
        # takes (gradio_client calls name the model), starting at the default model's own values;
        # each page narrows them to the picked model's own as it loads and as the model changes
        wide = controls_for(demo, "teacher" if "teacher" in demo.samplers else demo.default_model)
        own = controls_for(demo, demo.default_model)
        steps_at, guidance_at = ({**w, "value": o["value"], "label": o["label"]}
                                 for w, o in zip(wide, own, strict=True))  # fmt: skip
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    classes = gr.CheckboxGroup(digits, value=digits, label="classes")
                    count = gr.Slider(1, MAX_COUNT, value=40, step=1, label="count")
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
                    model = gr.Radio(models, value=demo.default_model, label="model")
                    steps = gr.Slider(step=1, elem_id="steps-slider", **steps_at)
                    guidance = gr.Slider(step=0.05, elem_id="guidance-slider", **guidance_at)
                    with gr.Row():
                        go = gr.Button("Generate", variant="primary", elem_id="generate-button")
                        surprise = gr.Button("Surprise me", elem_id="surprise-button")
                with gr.Column(scale=2):
                    grid_out = gr.Image(
                        label="digits, a class a row", format="png", elem_id="generate-grid"
                    )
                    caption = gr.Markdown(elem_id="generate-caption")
                    anim = gr.Image(
                        label="how they formed", type="filepath", height=420, elem_id="generate-gif"
                    )
                    dial_out = gr.Image(
                        label="the guidance dial: the same noise, a row per scale",
                        format="png",
                        elem_id="generate-dial",
                    )
                    dial_caption = gr.Markdown(elem_id="dial-caption")
        inputs = [classes, count, seed, model, steps, guidance]
        outputs = [grid_out, anim, caption]
        narrow = lambda name: tuple(gr.Slider(**c) for c in controls_for(demo, name))  # noqa: E731
        model.change(narrow, model, [steps, guidance], api_name=False)
        draw_dial = on_page(demo.dial, gr), [classes, seed, model], [dial_out, dial_caption]
        go.click(on_page(demo.generate, gr), inputs, outputs, api_name="generate").then(
            *draw_dial, api_name="dial"
        )
        surprise.click(lambda: random.randint(0, 99_999), None, seed, api_name="surprise").then(
            on_page(demo.generate, gr), inputs, outputs, api_name=False
        ).then(*draw_dial, api_name=False)
        # the page opens on its model's own ranges, then with digits already drawn, not on empty
        # boxes (in turn: the digits are asked for with the values the ranges set)
        page.load(narrow, model, [steps, guidance], api_name=False).then(
            on_page(demo.generate, gr), inputs, outputs, api_name=False
        ).then(*draw_dial, api_name=False)

        with gr.Tab("Draw"):
            with gr.Row():
                with gr.Column(scale=1):
                    sketch = gr.Sketchpad(
                        label="draw a digit",
                        type="numpy",
                        image_mode="RGBA",
                        canvas_size=SKETCH_SIZE,
                        brush=gr.Brush(default_size=20, colors=["#000000"], color_mode="fixed"),
                        layers=False,
                        elem_id="sketch",
                    )
                    composite_only(sketch, gr)
                    upload = gr.File(
                        label="...or upload an image",
                        file_types=["image"],
                        type="filepath",
                        height=120,
                    )
                    meant = gr.Dropdown(digits, value="3", label="the digit you meant")
                    draw_go = gr.Button("Reconstruct", variant="primary", elem_id="draw-button")
                with gr.Column(scale=2):
                    with gr.Row():
                        framed = gr.Image(label="MNIST-framed", format="png", elem_id="draw-framed")
                        recon = gr.Image(label="reconstruction", format="png", elem_id="draw-recon")
                    draw_text = gr.Markdown(elem_id="draw-caption")
                    drawn = gr.Image(label="the model's own", format="png", elem_id="draw-model")
        draw_go.click(
            on_page(demo.draw, gr),
            [sketch, upload, meant],
            [framed, recon, draw_text, drawn],
            api_name="draw",
        )

        from ddream.page_edit import edit_tab

        edit_tab(demo, gr)  # after Draw: draw (or upload) a digit, then edit or complete it

        with gr.Tab("Morph"):
            with gr.Row():
                with gr.Column(scale=1):
                    between = gr.Radio(["classes", "seeds"], value="classes", label="between")
                    start = gr.Number(3, precision=0, minimum=0, label="from (class or seed)")
                    end = gr.Number(8, precision=0, minimum=0, label="to (class or seed)")
                    digit = gr.Dropdown(digits, value="5", label="class (when between seeds)")
                    mseed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
                    mmodel = gr.Radio(models, value=demo.default_model, label="model")
                    frames = gr.Slider(2, MAX_FRAMES, value=16, step=1, label="frames")
                    animate = gr.Button("Animate", variant="primary", elem_id="morph-button")
                with gr.Column(scale=2):
                    position = gr.Slider(0, 1, value=0.5, step=0.05, label="from ... to")
                    frame = gr.Image(
                        label="the morph at this point", format="png", elem_id="morph-frame"
                    )
                    morph_anim = gr.Image(
                        label="the whole morph", type="filepath", elem_id="morph-gif"
                    )
        spec = [between, start, end, digit, mseed, mmodel]
        position.release(on_page(demo.morph_at, gr), [*spec, position], frame, api_name="morph_at")
        animate.click(
            on_page(demo.morph_gif, gr), [*spec, frames], morph_anim, api_name="morph"
        ).then(on_page(demo.morph_at, gr), [*spec, position], frame, api_name=False)

        with gr.Tab("Training") as training_tab:
            learned_caption = gr.Markdown(elem_id="training-caption")
            curves = gr.Image(
                label="curves: loss and held-out figures by epoch (wall time on top)",
                type="filepath",
                elem_id="training-curves",
            )
            with gr.Row():
                learned = [
                    gr.Image(
                        label=f"how the {name} learned", type="filepath", elem_id=f"training-{key}"
                    )
                    for key, name in (("ae", "autoencoder"), ("dit", "DiT"), ("distill", "student"))
                ]
            redraw = gr.Button("Refresh")
        training_outputs = [curves, *learned, learned_caption]
        training_tab.select(on_page(demo.training, gr), None, training_outputs, api_name="training")
        redraw.click(on_page(demo.training, gr), None, training_outputs, api_name=False)

        with gr.Tab("Model"):
            card = gr.Markdown(demo.model_card(), elem_id="model-card")
            refresh = gr.Button("Refresh")
        refresh.click(on_page(demo.model_card, gr), None, card, api_name="model")
    return page


def run_page(demo: Demo, host: str, port: int, quiet: bool = False) -> None:
    """`ddream serve`'s process: Pillow refuses images over userimage's limit before decoding them,
    Gradio keeps its copies in the page's own temporary folder (pruned with the page's files, see
    demo.prune), and SIGTERM stops the page like Ctrl-C, so that the caller removes that folder."""
    import signal

    from PIL import Image

    from ddream.userimage import MAX_PIXELS

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # Pillow refuses at twice its limit
    os.environ["GRADIO_TEMP_DIR"] = str(demo.workdir / "gradio")

    stopped = []

    def stop(signum, frame):
        stopped.append(signum)
        raise KeyboardInterrupt  # Gradio closes its server on it

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        serve(demo, host, port, block=True, quiet=quiet)
    except KeyboardInterrupt:  # a SIGTERM while Gradio was still starting arrives here
        if not stopped:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped:
        raise Interrupted("the page stopped (SIGTERM)", signal.SIGTERM)


def serve(demo: Demo, host: str, port: int, *, block: bool = True, quiet: bool = False):
    """Launch the page on host:port (localhost unless asked); returns the Blocks when not blocking."""
    gr = import_gradio()
    page = build(demo)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"])
    try:
        page.queue(default_concurrency_limit=4).launch(
            server_name=host,
            server_port=port,
            show_error=True,
            quiet=quiet,
            prevent_thread_lock=not block,
            max_file_size=MAX_UPLOAD,
            allowed_paths=[str(demo.workdir)],
            footer_links=[],
            ssr_mode=False,
            mcp_server=False,
            theme=theme,
        )
    except OSError:
        raise BadInput(
            f"cannot serve on {host}:{port}: the port is taken; choose another --port"
        ) from None
    return page
