"""Every data set the kit uses has a card with every required field, and the notebooks that use it show it."""
from __future__ import annotations

import nbformat
import pytest

from medseg_core.data.cards import CARD_FIELDS, DATASET_CARDS, dataset_card, list_dataset_cards
from medseg_core.notebooks import list_notebooks

REQUIRED = {"what_it_is", "who_labelled_it", "licence", "size", "known_label_issues", "what_a_score_can_mean"}


def _notebook_code() -> dict[str, str]:
    return {path.stem: "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
            for path in list_notebooks()}


def test_the_kits_data_sets_have_cards():
    assert set(list_dataset_cards()) == {"synthetic_xca", "synthetic_oct", "oct_zenodo", "xca_real_masks"}
    assert REQUIRED <= set(CARD_FIELDS)


@pytest.mark.parametrize("name", list(DATASET_CARDS))
def test_card_fills_every_required_field(name):
    card = DATASET_CARDS[name]
    for field in REQUIRED:
        text = card.size_text() if field == "size" else getattr(card, field)
        assert isinstance(text, str) and len(text.split()) >= 5, (name, field)
    markdown = dataset_card(name)
    for heading in ("What it is", "Who labelled it", "Licence", "Size", "Known label issues",
                    "What a score on it can mean"):
        assert f"*{heading}.*" in markdown, (name, heading)


def test_licences_and_the_single_patient_are_said():
    assert "CC BY 4.0" in DATASET_CARDS["oct_zenodo"].licence and "MIT" in DATASET_CARDS["xca_real_masks"].licence
    assert "one patient" in DATASET_CARDS["oct_zenodo"].what_a_score_can_mean
    assert dataset_card("oct_zenodo_sample") == dataset_card("oct_zenodo_pullback") == dataset_card("oct_zenodo")


def test_synthetic_sizes_follow_the_profiles():
    from medseg_core.config import get_profile

    cpu = get_profile("cpu").xca
    assert f"`cpu`: {cpu.num_train_videos} / {cpu.num_val_videos} / {cpu.num_test_videos} videos" in dataset_card(
        "synthetic_xca")


def test_unknown_card_lists_the_names():
    with pytest.raises(KeyError, match="valid names: synthetic_xca"):
        dataset_card("mosxav")


@pytest.mark.parametrize("name", list(DATASET_CARDS))
def test_a_notebook_that_uses_the_data_shows_its_card(name):
    shown_in = [stem for stem, code in _notebook_code().items() if f'dataset_card("{name}")' in code]
    assert shown_in, f"no notebook shows dataset_card({name!r})"
