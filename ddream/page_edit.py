"""The Edit tab of `ddream serve`'s page: draw (or upload) a digit, then redraw it as another class, or
brush the part to keep and see completions with their class probabilities. Its handlers are in
demo_edit.py; `page.build` calls `edit_tab` inside its Blocks."""

from __future__ import annotations

from ddream.demo_edit import KEEP_CHOICES, EditTab
from ddream.editor import EDIT_STRENGTH
from ddream.page import SKETCH_SIZE, composite_only, on_page


def edit_tab(demo, gr) -> None:
    tab = EditTab(demo)
    digits = [str(i) for i in range(10)]
    pad = dict(type="numpy", image_mode="RGBA", canvas_size=SKETCH_SIZE, layers=False)
    with gr.Tab("Edit"):
        with gr.Row():
            with gr.Column(scale=1):
                sketch = gr.Sketchpad(
                    label="draw a digit",
                    brush=gr.Brush(default_size=20, colors=["#000000"], color_mode="fixed"),
                    elem_id="edit-sketch",
                    **pad,
                )
                composite_only(sketch, gr)
                upload = gr.File(
                    label="...or upload an image", file_types=["image"], type="filepath", height=120
                )
                seed = gr.Number(0, precision=0, minimum=0, label="seed")
            with gr.Column(scale=1):
                gr.Markdown("**Change its class**, keeping your hand")
                to = gr.Dropdown(digits, value="8", label="turn it into")
                strength = gr.Slider(
                    0, 1, value=EDIT_STRENGTH, step=0.05,
                    label="strength (more: more clearly the new class, less like yours)",
                )  # fmt: skip
                edit_go = gr.Button("Edit", variant="primary", elem_id="edit-button")
                edited = gr.Image(label="yours, and the edit", format="png", elem_id="edit-out")
                edit_text = gr.Markdown(elem_id="edit-caption")
            with gr.Column(scale=1):
                gr.Markdown("**Complete it** from the part you keep")
                keep = gr.Radio(list(KEEP_CHOICES), value="top", label="keep")
                brushed = gr.Sketchpad(
                    label="brush the part to keep (for 'brushed'; the same canvas as your drawing)",
                    brush=gr.Brush(default_size=40, colors=["#000000"], color_mode="fixed"),
                    elem_id="keep-sketch",
                    **pad,
                )
                composite_only(brushed, gr)
                count = gr.Slider(1, 16, value=8, step=1, label="completions")
                complete_go = gr.Button("Complete", variant="primary", elem_id="complete-button")
        completed = gr.Image(
            label="yours, what was kept, the completions", format="png", elem_id="complete-out"
        )
        complete_text = gr.Markdown(elem_id="complete-caption")
    edit_go.click(
        on_page(tab.edit, gr), [sketch, upload, to, strength, seed], [edited, edit_text],
        api_name="edit",
    )  # fmt: skip
    complete_go.click(
        on_page(tab.complete, gr), [sketch, upload, keep, brushed, count, seed],
        [completed, complete_text], api_name="complete",
    )  # fmt: skip
