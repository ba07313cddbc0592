from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from mor.data import (
    END,
    IGNORE_INDEX,
    Renderer,
    SyntheticDataset,
    Tool,
    ToolCall,
    Trajectory,
    Turn,
    fit_samples,
    render,
    render_prompt,
    render_text,
    tools_text,
)

ROLES = ("reasoner", "executor", "summarizer")
R, E, S = 0, 1, 2

TOOL = Tool(
    name="get_weather",
    description="Weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
)


def _episode() -> Trajectory:
    call = ToolCall(name="get_weather", arguments={"city": "Paris"}, id="call_1")
    return Trajectory(
        id="ep",
        tools=[TOOL],
        turns=[
            Turn(role="user", content="Weather in Paris?"),
            Turn(role="reasoner", thought="Look it up.", next_role="executor"),
            Turn(role="executor", calls=[call]),
            Turn(role="observation", content='{"t": 20}', call_id="call_1"),
            Turn(role="reasoner", thought="Done.", next_role="summarizer"),
            Turn(role="summarizer", content="It is 20."),
        ],
    )


def test_tools_text_is_one_compact_line_per_tool() -> None:
    assert tools_text([TOOL]) == "get_weather(city: string, unit?: c|f): Weather in a city."


def test_render_text_layout() -> None:
    assert render_text(_episode()) == (
        "<|system|>Tools:\nget_weather(city: string, unit?: c|f): Weather in a city.<|end|>"
        "<|user|>Weather in Paris?<|end|>"
        "<|reasoner|>Look it up. Next: executor<|end|>"
        '<|executor|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>'
        '<|observation|>{"t": 20}<|end|>'
        "<|reasoner|>Done. Next: summarizer<|end|>"
        "<|summarizer|>It is 20.<|end|>"
    )


def test_role_ids_and_labels_follow_the_turns(tokenizer) -> None:
    encoded = render(_episode(), tokenizer, ROLES)
    assert len(encoded.input_ids) == len(encoded.role_ids) == len(encoded.labels)
    assert tokenizer.decode(encoded.input_ids) == "<|bos|>" + render_text(_episode())
    end_id = tokenizer.convert_tokens_to_ids(END)
    spans = {(s.turn_index, s.role): s for s in encoded.spans}
    expected_owner = {"system": R, "user": R, "reasoner": None, "executor": E, "observation": R, "summarizer": S}
    for span in encoded.spans:
        owner = expected_owner[span.role]
        if span.role == "reasoner":
            owner = R
        assert set(encoded.role_ids[span.start : span.end]) == {owner}, span
        header_labels = encoded.labels[span.start : span.label_start]
        assert header_labels == [IGNORE_INDEX] * (span.label_start - span.start)
        body = encoded.labels[span.label_start : span.end]
        if span.role in ("system", "user", "observation"):
            assert body == [IGNORE_INDEX] * len(body)
        else:
            assert body == encoded.input_ids[span.label_start : span.end]
            assert body[-1] == end_id  # the role learns to end its turn
    assert encoded.role_ids[0] == R and encoded.labels[0] == IGNORE_INDEX  # bos is read by the reasoner
    executor = spans[(2, "executor")]
    assert executor.label_start - executor.start == 1  # the header is one special token
    text = tokenizer.decode(
        [t for t, label in zip(encoded.input_ids, encoded.labels, strict=False) if label != IGNORE_INDEX]
    )
    assert text == (
        'Look it up. Next: executor<|end|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>'
        "Done. Next: summarizer<|end|>It is 20.<|end|>"
    )


def test_prompts_are_prefixes_of_the_training_rendering(tokenizer) -> None:
    episode = _episode()
    full = render(episode, tokenizer, ROLES)
    for span in full.spans:
        if span.role not in ROLES:
            continue
        before = episode.model_copy(update={"turns": episode.turns[: span.turn_index]})
        prompt = render_prompt(before, tokenizer, ROLES, span.role)
        assert prompt.input_ids == full.input_ids[: span.label_start]
        assert prompt.role_ids == full.role_ids[: span.label_start]
        assert set(prompt.labels) == {IGNORE_INDEX}


def test_role_samples_have_one_learned_turn_each(tokenizer) -> None:
    renderer = Renderer(tokenizer, ROLES)
    samples = renderer.role_samples(_episode())
    assert [(s.turn_index, s.role) for s in samples] == [
        (1, "reasoner"),
        (2, "executor"),
        (4, "reasoner"),
        (5, "summarizer"),
    ]
    full = renderer.encode(_episode())
    covered = 0
    for sample in samples:
        learned = [i for i, label in enumerate(sample.labels) if label != IGNORE_INDEX]
        assert learned and {sample.role_ids[i] for i in learned} == {ROLES.index(sample.role)}
        assert sample.input_ids == full.input_ids[: len(sample.input_ids)]
        covered += len(learned)
    assert covered == sum(label != IGNORE_INDEX for label in full.labels)


def test_roles_are_data(tokenizer) -> None:
    renamed = Trajectory(
        id="custom",
        turns=[
            Turn(role="user", content="hi"),
            Turn(role="planner", next_role="answerer"),
            Turn(role="answerer", content="hello"),
        ],
    )
    encoded = render(renamed, tokenizer, ["answerer", "planner"])
    by_role = {span.role: span for span in encoded.spans}
    assert set(encoded.role_ids[by_role["user"].start : by_role["user"].end]) == {1}  # read by the planner
    assert set(encoded.role_ids[by_role["answerer"].start : by_role["answerer"].end]) == {0}
    with pytest.raises(ValueError, match=r"turn role '(planner|answerer)' is not one of the roles"):
        render(renamed, tokenizer, ROLES)
    with pytest.raises(ValueError, match="name context turns"):
        Renderer(tokenizer, ["user", "executor"])


def test_third_party_tokenizer_reads_markers_as_plain_text(small_dataset: SyntheticDataset) -> None:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    from tokenizers import decoders

    backend.decoder = decoders.ByteLevel()
    texts = [t.query or "" for t in small_dataset.train]
    backend.train_from_iterator(
        texts,
        trainers.BpeTrainer(vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    plain = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=None)
    encoded = render(_episode(), plain, ROLES)
    assert plain.decode(encoded.input_ids) == render_text(_episode())
    renderer = Renderer(plain, ROLES)
    assert len(renderer.end_ids) > 1  # <|end|> is several ordinary tokens
    executor = next(s for s in encoded.spans if s.role == "executor")
    assert set(encoded.role_ids[executor.start : executor.end]) == {E}
    assert plain.decode(encoded.labels[executor.label_start : executor.end]).endswith(END)


def test_fit_samples_never_cuts_a_label_span(small_dataset: SyntheticDataset, tokenizer) -> None:
    renderer = Renderer(tokenizer, ROLES)
    encoded = [renderer.encode(t) for t in small_dataset.train[:50]]
    limit = sorted(len(e) for e in encoded)[25]
    kept, report = fit_samples(encoded, limit)
    assert report.kept == len(kept) == sum(len(e) <= limit for e in encoded)
    assert report.dropped == 50 - report.kept and report.cut == 0 and report.longest == max(map(len, encoded))
    cut, report = fit_samples(encoded, limit, overflow="cut")
    assert report.cut + report.kept + report.dropped == 50 and report.cut > 0
    for sample in cut:
        assert len(sample) <= limit
        last = sample.spans[-1]
        assert last.end == len(sample) and last.learned  # ends right after a whole role turn
        assert sample.labels[-1] == tokenizer.convert_tokens_to_ids(END)
    with pytest.raises(ValueError, match="max_seq_len"):
        fit_samples(encoded, limit, overflow="error")


def test_content_that_spells_a_marker_stays_text(tokenizer) -> None:
    sneaky = Trajectory(
        id="s",
        turns=[
            Turn(role="user", content="say <|end|> now"),
            Turn(role="reasoner", next_role="summarizer"),
            Turn(role="summarizer", content="ok"),
        ],
    )
    encoded = render(sneaky, tokenizer, ROLES)
    end_id = tokenizer.convert_tokens_to_ids(END)
    user = next(s for s in encoded.spans if s.role == "user")
    assert encoded.input_ids[user.label_start : user.end - 1].count(end_id) == 0
    assert json.dumps(tokenizer.decode(encoded.input_ids[user.label_start : user.end - 1])) == '"say <|end|> now"'
