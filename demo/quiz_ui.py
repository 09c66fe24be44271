"""The teaching tab: browse the library, and the quiz (trainee vs. the case vs. the model).

`next_question`, `submit_answer` and `browse_rows` are plain functions of a small
`QuizState`, unit-tested without a browser; `build_teaching_tab` only wires them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import gradio as gr

from demo import callbacks as cb
from demo import similar
from demo.render import picture_file
from demo.teaching import QuizScore, Tally, TeachingCase, TeachingLibrary, score_differential

NO_LIBRARY = (
    "The teaching library is not available: start with `--library DIR` (or set "
    "`RADASSIST_DATA`) pointing at a data folder that holds `medpix/`."
)


@dataclass(frozen=True)
class QuizState:
    order: tuple[str, ...] = ()
    position: int = -1  # index into `order` of the case on screen
    answered: bool = False
    tally: Tally = field(default_factory=Tally)
    last: QuizScore | None = None

    @property
    def case_id(self) -> str | None:
        return self.order[self.position] if 0 <= self.position < len(self.order) else None


def case_montage(case: TeachingCase, height: int = 360, limit: int = 4):
    """Up to `limit` images of a case side by side at one height, aspect ratios kept (a
    gallery crops single images to its frame; a quiz must show the whole image)."""
    import numpy as np
    from PIL import Image

    tiles = []
    for item in case.images[:limit]:
        try:
            with Image.open(item.path) as im:
                im = im.convert("RGB")
                width = max(1, round(im.width * height / im.height))
                tiles.append(np.asarray(im.resize((width, height), Image.BILINEAR)))
        except OSError:
            continue
    if not tiles:
        return None
    gap = np.full((height, 8, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    return np.concatenate(row, axis=1)


def question_markdown(case: TeachingCase, number: int, total: int) -> str:
    who = ", ".join(x for x in (f"{case.age} y" if case.age else "", case.sex) if x)
    parts = [f"### Case {number} of {total}  ({', '.join(case.modalities)}, {case.region})"]
    if who:
        parts.append(f"**Patient:** {who}")
    parts.append(f"**History:** {case.history or '—'}")
    if case.exam:
        parts.append(f"**Exam:** {case.exam[:600]}")
    parts.append("Type your differential, most likely first (one per line or separated by ';').")
    return "\n\n".join(parts)


def next_question(quiz: QuizState, library: TeachingLibrary | None):
    """Advance to the next validation case (wrapping around); returns (state, montage, md)."""
    if library is None:
        return quiz, None, NO_LIBRARY
    order = quiz.order or tuple(library.quiz_order())
    if not order:
        return quiz, None, "The library has no validation cases to quiz on."
    position = (quiz.position + 1) % len(order)
    quiz = replace(quiz, order=order, position=position, answered=False, last=None)
    case = library.get(quiz.case_id)
    return quiz, case_montage(case), question_markdown(case, position + 1, len(order))


def reveal_markdown(case: TeachingCase) -> str:
    ddx = "\n".join(f"- {d}" for d in case.differential) or "—"
    return (
        f"### Diagnosis: {case.diagnosis}\n\n**Findings:** {case.findings or '—'}\n\n"
        f"**Human differential:**\n{ddx}"
    )


def score_markdown(score: QuizScore, case: TeachingCase) -> str:
    if score.rank is None:
        verdict = "✗ The diagnosis is not in your differential"
    elif score.rank == 1:
        verdict = "✓ hit@1 — your first item is the diagnosis"
    else:
        verdict = f"✓ hit@5 — the diagnosis is item {score.rank} of your list" if score.hit5 \
            else f"– the diagnosis is item {score.rank} (beyond the top 5)"
    return f"**{verdict}** (true diagnosis: {case.diagnosis})"


def submit_answer(quiz: QuizState, library: TeachingLibrary | None, answer: str):
    """Score the typed differential once per case; returns (state, reveal md, score md,
    tally md). An empty answer is not scored."""
    if library is None or quiz.case_id is None:
        return quiz, "", "Press **Next case** to start.", quiz.tally.text()
    case = library.get(quiz.case_id)
    if not (answer or "").strip():
        return quiz, "", "Type at least one diagnosis first.", quiz.tally.text()
    if quiz.answered:  # re-submitting the same case does not count twice
        return quiz, reveal_markdown(case), score_markdown(quiz.last, case), quiz.tally.text()
    score = score_differential(answer, case)
    quiz = replace(quiz, answered=True, tally=quiz.tally.add(score), last=score)
    return quiz, reveal_markdown(case), score_markdown(score, case), quiz.tally.text()


@lru_cache(maxsize=64)
def _case_note_state(case_id: str, library_dir: str) -> cb.ViewerState:
    """The model's analysis of a teaching case's images (cached per case)."""
    from demo.teaching import load_library

    library = load_library(library_dir)
    case = library.get(case_id) if library else None
    state = cb.load_files([str(i.path) for i in case.images] if case else [])
    age = "".join(ch for ch in (case.age if case else "") if ch.isdigit())
    context = cb.context_from_inputs(age or None, case.sex if case else None,
                                     case.history if case else "")
    return cb.analyse(state, context)


def model_note(quiz: QuizState, library_dir: str, lang: str = "en") -> str:
    if quiz.case_id is None or not library_dir:
        return ""
    state = _case_note_state(quiz.case_id, library_dir)
    return cb.note_markdown(state, lang) or "The model produced no note for this case."


def _note_with_progress(quiz: QuizState, library_dir: str, progress=gr.Progress()) -> str:  # noqa: B008
    if not quiz.answered:
        return ""
    progress(0.2, desc="the model reads the case")
    return "#### The model's draft\n\n" + model_note(quiz, library_dir)


def browse_rows(library: TeachingLibrary | None, region: str, modality: str, text: str):
    if library is None:
        return []
    return [[c.case_id, c.region, ", ".join(c.modalities), c.diagnosis]
            for c in library.browse(region, modality, text)]


def _case_choices(rows: list[list[str]]) -> list[tuple[str, str]]:
    return [(f"{r[0]} · {r[3]}", r[0]) for r in rows]


def case_markdown(case: TeachingCase | None) -> str:
    if case is None:
        return ""
    return (f"### {case.case_id}: {case.title}\n\n**Region:** {case.region} · "
            f"**Modality:** {', '.join(case.modalities)}\n\n**History:** {case.history}\n\n"
            + reveal_markdown(case))


def build_teaching_tab(library: TeachingLibrary | None, library_dir: str) -> None:
    if library is None:
        gr.Markdown(NO_LIBRARY)
        return
    lib_dir = gr.State(library_dir)
    with gr.Tab("Quiz", id="quiz"):
        quiz = gr.State(QuizState())
        with gr.Row():
            with gr.Column(scale=3):
                q_images = gr.Image(label="Case images", type="numpy", interactive=False,
                                    height=360, buttons=["fullscreen"], elem_id="quiz-images")
                q_text = gr.Markdown("Press **Next case** to start.", elem_id="quiz-question")
            with gr.Column(scale=2):
                answer = gr.Textbox(label="Your differential (most likely first)", lines=4,
                                    elem_id="quiz-answer")
                with gr.Row():
                    submit = gr.Button("Submit and reveal", variant="primary",
                                       elem_id="quiz-submit")
                    next_btn = gr.Button("Next case", elem_id="quiz-next")
                score = gr.Markdown(elem_id="quiz-score")
                tally = gr.Markdown(Tally().text(), elem_id="quiz-tally")
        with gr.Row():
            reveal = gr.Markdown(elem_id="quiz-reveal", container=True)
            note = gr.Markdown(elem_id="quiz-model-note", container=True)
        with gr.Row():
            q_similar = gr.Button("Find similar cases", elem_id="quiz-similar")
        sim_gallery = gr.Gallery(
            object_fit="contain", label="Similar teaching cases", columns=4, height=180)
        sim_md = gr.Markdown()

        # one event, so clearing the previous answer can never race the trainee's typing
        def _next(q):
            q, montage, question = next_question(q, library)
            return q, picture_file(montage), question, "", "", "", ""

        next_btn.click(_next, [quiz],
                       [quiz, q_images, q_text, answer, score, reveal, note])
        submit.click(lambda q, a: submit_answer(q, library, a), [quiz, answer],
                     [quiz, reveal, score, tally]).then(
            _note_with_progress, [quiz, lib_dir], [note], concurrency_limit=1,
            concurrency_id="model")
        q_similar.click(
            lambda q, d: similar.on_find_similar(_case_note_state(q.case_id, d), d)
            if q.case_id else ([], "Press **Next case** first."),
            [quiz, lib_dir], [sim_gallery, sim_md], concurrency_limit=1,
            concurrency_id="model")

    with gr.Tab("Browse library", id="browse"):
        with gr.Row():
            region = gr.Dropdown(["any", *library.regions()], value="any", label="Region")
            modality = gr.Dropdown(["any", *library.modalities()], value="any",
                                   label="Modality")
            text = gr.Textbox(label="Diagnosis contains", elem_id="browse-text")
            go = gr.Button("Search", elem_id="browse-search")
        first_rows = browse_rows(library, "any", "any", "")
        table = gr.Dataframe(headers=["case", "region", "modality", "diagnosis"],
                             value=first_rows, interactive=False, max_height=300,
                             elem_id="browse-table")
        pick = gr.Dropdown(label="Open case", choices=_case_choices(first_rows),
                           elem_id="browse-case")
        with gr.Row():
            b_images = gr.Image(label="Images", type="numpy", interactive=False, height=300,
                                buttons=["fullscreen"], elem_id="browse-images")
            b_text = gr.Markdown(elem_id="browse-case-text")

        def _search(r, m, t):
            rows = browse_rows(library, r, m, t)
            return rows, gr.Dropdown(choices=_case_choices(rows), value=None)

        def _open(case_id):
            case = library.get(str(case_id)) if case_id else None
            return picture_file(case_montage(case, 300, 6) if case else None), \
                case_markdown(case)

        def _select(evt: gr.SelectData, rows):
            row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
            try:
                case_id = rows.iloc[row, 0] if hasattr(rows, "iloc") else rows[row][0]
            except (IndexError, KeyError, TypeError):
                return gr.Dropdown()
            return gr.Dropdown(value=str(case_id))

        go.click(_search, [region, modality, text], [table, pick])
        text.submit(_search, [region, modality, text], [table, pick])
        table.select(_select, [table], [pick])
        pick.change(_open, [pick], [b_images, b_text])
