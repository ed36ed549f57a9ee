from medarena.evaluate.extract import extract_choice, majority_vote

LETTERS = ("A", "B", "C", "D")
OPTIONS = ("Insulin glargine", "Metformin", "Sulfonylurea", "Pioglitazone")
YES_NO_MAYBE = ("yes", "no", "maybe")


def test_explicit_statement_with_parentheses():
    assert extract_choice("The answer is (B).", LETTERS) == 1


def test_explicit_statement_is_case_insensitive():
    assert extract_choice("answer: b", LETTERS) == 1


def test_statement_with_option_word_and_brackets():
    assert extract_choice("I would say the answer is option [C]", LETTERS) == 2


def test_leading_letter_with_period_and_option_text():
    assert extract_choice("B. Metformin", LETTERS, OPTIONS) == 1


def test_leading_letter_in_parentheses():
    assert extract_choice("(C)", LETTERS) == 2


def test_leading_letter_with_closing_parenthesis():
    assert extract_choice("D) because of the ST elevation", LETTERS) == 3


def test_last_explicit_statement_wins_in_chain_of_thought():
    text = (
        "Option A looks tempting at first, since it treats the pain. "
        "However B worsens preload and C is not indicated.\n"
        "Therefore, the answer is D."
    )
    assert extract_choice(text, LETTERS, OPTIONS) == 3


def test_later_statement_overrides_an_earlier_one():
    text = "At first glance the answer is A. On reflection the answer is D."
    assert extract_choice(text, LETTERS) == 3


def test_statement_beats_a_leading_letter():
    assert extract_choice("B looks right, but the answer is C", LETTERS) == 2


def test_unique_option_text_names_the_answer():
    text = "The patient is obese with new type 2 diabetes, so metformin is best."
    assert extract_choice(text, LETTERS, OPTIONS) == 1


def test_option_text_is_ignored_without_option_texts():
    text = "The patient is obese with new type 2 diabetes, so metformin is best."
    assert extract_choice(text, LETTERS) is None


def test_single_label_word_anywhere_is_the_last_resort():
    assert extract_choice("I think it is C", LETTERS) == 2


def test_letter_labels_are_matched_case_sensitively_as_words():
    # rule 4 only: "i" and "think" are not the label "I"/"D"; lowercase "c" is no label word
    assert extract_choice("I think it is c", LETTERS) is None


def test_yes_no_maybe_leading_answers():
    assert extract_choice("Yes, because the trial met its primary endpoint.", YES_NO_MAYBE) == 0
    assert extract_choice("no.", YES_NO_MAYBE, YES_NO_MAYBE) == 1


def test_yes_no_maybe_statement():
    assert extract_choice("The answer is maybe", YES_NO_MAYBE, YES_NO_MAYBE) == 2


def test_yes_no_maybe_statement_does_not_match_inside_a_word():
    # "no" inside "not" is no answer; the later explicit "yes" is
    text = "The answer is not obvious. Given the effect size, the answer is yes."
    assert extract_choice(text, YES_NO_MAYBE) == 0


def test_empty_text_is_a_failure():
    assert extract_choice("", LETTERS, OPTIONS) is None


def test_text_without_an_answer_is_a_failure():
    assert extract_choice("I am not sure", LETTERS, OPTIONS) is None


def test_two_option_texts_named_is_a_failure():
    text = "Both metformin and pioglitazone lower glucose in this setting."
    assert extract_choice(text, LETTERS, OPTIONS) is None


def test_two_labels_named_is_a_failure():
    assert extract_choice("It is either B or C", LETTERS) is None


def test_majority_vote_ignores_failures():
    assert majority_vote([1, 2, 1, None]) == 1


def test_majority_vote_tie_goes_to_the_earliest_sample():
    assert majority_vote([2, 1, 1, 2]) == 2
    assert majority_vote([None, 3, 0, 0, 3]) == 3


def test_majority_vote_all_failed_is_a_failure():
    assert majority_vote([None, None, None]) is None
    assert majority_vote([]) is None
