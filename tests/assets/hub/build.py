"""Writes the hub fixtures in this folder: a few synthetic rows per benchmark repository, in the
file type and with the `datasets` features the repository ships (see README.md). Run it from
the repository root after changing a row: `python tests/assets/hub/build.py`."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, List, Sequence, Value

HERE = Path(__file__).resolve().parent
TEXT = Value("string")

# fzkuji/MedQA, config med_qa_en_source: bigbio/med_qa's source layout, five options A-E
MEDQA_5 = Features(
    {
        "meta_info": TEXT,
        "question": TEXT,
        "answer_idx": TEXT,
        "answer": TEXT,
        "options": List({"key": TEXT, "value": TEXT}),
    }
)
MEDQA_5_ROWS = [
    {
        "meta_info": "step1",
        "question": "A hiker returns with a target-shaped rash. Which organism is most likely?",
        "answer_idx": "C",
        "answer": "Borrelia burgdorferi",
        "options": [
            {"key": "A", "value": "Rickettsia rickettsii"},
            {"key": "B", "value": "Treponema pallidum"},
            {"key": "C", "value": "Borrelia burgdorferi"},
            {"key": "D", "value": "Leptospira interrogans"},
            {"key": "E", "value": "Bartonella henselae"},
        ],
    },
    {
        "meta_info": "step2&3",
        "question": "Which drug reverses the effect of warfarin fastest in a bleeding patient?",
        "answer_idx": "E",
        "answer": "Prothrombin complex concentrate",
        "options": [
            {"key": "A", "value": "Protamine sulfate"},
            {"key": "B", "value": "Oral vitamin K"},
            {"key": "C", "value": "Idarucizumab"},
            {"key": "D", "value": "Aminocaproic acid"},
            {"key": "E", "value": "Prothrombin complex concentrate"},
        ],
    },
    {
        "meta_info": "step1",
        "question": "Which vitamin deficiency causes a glossitis with a raised MCV and neuropathy?",
        "answer_idx": "A",
        "answer": "Cobalamin",
        "options": [
            {"key": "A", "value": "Cobalamin"},
            {"key": "B", "value": "Thiamine"},
            {"key": "C", "value": "Niacin"},
            {"key": "D", "value": "Vitamin C"},
            {"key": "E", "value": "Vitamin D"},
        ],
    },
]

# qiaojin/PubMedQA, config pqa_labeled (1,000 rows on the hub, all in `train`). The first three
# pubids are in benchmarks/splits/pubmedqa_test_ground_truth.json (with their real labels, so a
# label check would hold); the others are invented and in no list. The text is synthetic.
PUBMEDQA = Features(
    {
        "pubid": Value("int32"),
        "question": TEXT,
        "context": Sequence({"contexts": TEXT, "labels": TEXT, "meshes": TEXT}),
        "reasoning_required_pred": TEXT,
        "reasoning_free_pred": TEXT,
        "long_answer": TEXT,
        "final_decision": TEXT,
    }
)


def pubmedqa_row(pubid: int, question: str, decision: str) -> dict:
    return {
        "pubid": pubid,
        "question": question,
        "context": {
            "contexts": [f"Background of study {pubid}.", f"Results of study {pubid}."],
            "labels": ["BACKGROUND", "RESULTS"],
            "meshes": ["Humans"],
        },
        "reasoning_required_pred": decision,
        "reasoning_free_pred": decision,
        "long_answer": f"Study {pubid} concludes: {decision}.",
        "final_decision": decision,
    }


PUBMEDQA_ROWS = [
    pubmedqa_row(12377809, "Does the test cohort show an effect?", "yes"),
    pubmedqa_row(26163474, "Is the test marker associated with outcome?", "yes"),
    pubmedqa_row(18537964, "Does the screening test change survival?", "yes"),
    pubmedqa_row(90000001, "Does the pool study show an effect?", "no"),
    pubmedqa_row(90000002, "Is the pool marker useful?", "maybe"),
    pubmedqa_row(90000003, "Does the pool intervention help?", "no"),
]

# GBaker/MedQA-USMLE-4-options: JSON Lines (phrases_no_exclude_test.jsonl)
MEDQA_4_ROWS = [
    {
        "question": "A child has a barking cough and inspiratory stridor. What is the cause?",
        "answer": "Parainfluenza virus",
        "options": {
            "A": "Parainfluenza virus",
            "B": "Haemophilus influenzae",
            "C": "Respiratory syncytial virus",
            "D": "Bordetella pertussis",
        },
        "meta_info": "step2&3",
        "answer_idx": "A",
        "metamap_phrases": ["child", "barking cough", "inspiratory stridor"],
    },
    {
        "question": "Which electrolyte change produces peaked T waves?",
        "answer": "Hyperkalemia",
        "options": {
            "A": "Hypocalcemia",
            "B": "Hypokalemia",
            "C": "Hypermagnesemia",
            "D": "Hyperkalemia",
        },
        "meta_info": "step1",
        "answer_idx": "D",
        "metamap_phrases": ["electrolyte", "peaked T waves"],
    },
]

# openlifescienceai/medmcqa: parquet; `cop` is a class label over a-d
MEDMCQA = Features(
    {
        "id": TEXT,
        "question": TEXT,
        "opa": TEXT,
        "opb": TEXT,
        "opc": TEXT,
        "opd": TEXT,
        "cop": ClassLabel(names=["a", "b", "c", "d"]),
        "choice_type": TEXT,
        "exp": TEXT,
        "subject_name": TEXT,
        "topic_name": TEXT,
    }
)
MEDMCQA_ROWS = [
    {
        "id": "fx-medmcqa-1",
        "question": "Which nerve supplies the deltoid muscle?",
        "opa": "Radial nerve",
        "opb": "Axillary nerve",
        "opc": "Musculocutaneous nerve",
        "opd": "Suprascapular nerve",
        "cop": 1,
        "choice_type": "single",
        "exp": "The axillary nerve supplies the deltoid.",
        "subject_name": "Anatomy",
        "topic_name": "Upper limb",
    },
    {
        "id": "fx-medmcqa-2",
        "question": "The drug of choice for absence seizures is",
        "opa": "Phenytoin",
        "opb": "Carbamazepine",
        "opc": "Gabapentin",
        "opd": "Ethosuximide",
        "cop": 3,
        "choice_type": "single",
        "exp": "",
        "subject_name": "Pharmacology",
        "topic_name": "Antiepileptics",
    },
]

# cais/mmlu, config all: parquet; `answer` is a class label over A-D
MMLU = Features(
    {
        "question": TEXT,
        "subject": TEXT,
        "choices": Sequence(TEXT),
        "answer": ClassLabel(names=["A", "B", "C", "D"]),
    }
)
MMLU_ROWS = [
    {
        "question": "Which bone forms the point of the elbow?",
        "subject": "anatomy",
        "choices": ["Radius", "Ulna", "Humerus", "Scapula"],
        "answer": 1,
    },
    {
        "question": "Which planet has the shortest year?",
        "subject": "astronomy",
        "choices": ["Venus", "Earth", "Mercury", "Mars"],
        "answer": 2,
    },
    {
        "question": "Which virus family has a segmented negative-sense RNA genome?",
        "subject": "virology",
        "choices": ["Picornaviridae", "Orthomyxoviridae", "Herpesviridae", "Adenoviridae"],
        "answer": 1,
    },
]


def main() -> None:
    parquet = {
        "fzkuji_MedQA/med_qa_en_source.parquet": (MEDQA_5_ROWS, MEDQA_5),
        "qiaojin_PubMedQA/pqa_labeled.parquet": (PUBMEDQA_ROWS, PUBMEDQA),
        "openlifescienceai_medmcqa/default.parquet": (MEDMCQA_ROWS, MEDMCQA),
        "cais_mmlu/all.parquet": (MMLU_ROWS, MMLU),
    }
    for name, (rows, features) in parquet.items():
        (HERE / name).parent.mkdir(exist_ok=True)
        Dataset.from_list(rows, features=features).to_parquet(HERE / name)
    jsonl = HERE / "GBaker_MedQA-USMLE-4-options/phrases_no_exclude.jsonl"
    jsonl.parent.mkdir(exist_ok=True)
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in MEDQA_4_ROWS))


if __name__ == "__main__":
    main()
