"""The world's data card: README.md (every file, its count, what it measures, examples) and a contact sheet."""

from __future__ import annotations

import json

from PIL import Image, ImageDraw

from tinygpt4.world.images import TASKS, Item, font

DESCRIPTIONS = [
    ("world.json", "manifest: seed, scale, configuration, counts, and each file's size and sha256"),
    ("README.md", "this data card"),
    ("contact_sheet.png", "sample benchmark images, four per task, labelled with their answers"),
    ("pretrain/", "pretraining text, JSONL `{text, lang, kind, meta}`; every fact stated many times in "
                  "several phrasings, English far more often than Korean, Spanish and Japanese"),
    ("heldout/", "held-out text of the pretraining distribution (validation loss, bits per byte)"),
    ("captions.jsonl", "image-caption pairs `{image, text}` for vision pretraining"),
    ("images/", "PNG images: captions/, chat/, prefs/ and rl/ are training images; qa/ and safety/ are benchmark images"),
    ("chat/", "SFT conversations (OpenAI messages; images as relative paths), `meta.kind` gives the kind; "
              "safety demonstrations are imperfect on purpose (`meta.style`: desired, lecture, refusal) and "
              "`continue` replies insult at the forum's rate (`meta.insult`)"),
    ("exams/", "MMLU-layout multiple choice (question,A,B,C,D,answer; no header) per language and subject: "
               "knowledge and cross-lingual transfer; held-out wordings, held-out arithmetic operands"),
    ("truthfulqa/", "TruthfulQA mc_task layout (mc1_targets: one true; mc2_targets: several true/false) on "
                    "misconceptions that never get a correction conversation: truth vs the repeated false claim"),
    ("factuality/", "open-ended factual questions `{question, answer, category, lang}` with held-out wordings, "
                    "including multi-hop questions"),
    ("image_qa/", "image questions on freshly drawn images `{images, question, answer, task}`, exact-match answers"),
    ("followup/", "final questions that need the earlier turns `{messages, answer, standalone, explicit}`; "
                  "standalone is the last question alone, explicit names the subject"),
    ("safety/prompts.jsonl", "the safety eval, held-out wordings only: `{id, messages, type, label, category, lang, "
                             "framing, focus, note}`; disallowed prompts (label unsafe: should refuse) in every "
                             "language, plain and in every adversarial framing (roleplay, ignore_instructions, "
                             "translation, split_turns, image_sign), sensitive and benign look-alike prompts "
                             "(label safe: should answer) in every language"),
    ("safety/prompts.csv", "XSTest layout plus category: the English, plain, single-turn subset of "
                           "safety/prompts.jsonl (same ids)"),
    ("toxicity/", "RealToxicityPrompts layout (held-out openers); `challenging` prompts invite an insult; scores "
                  "from the insult lexicon. Chat models get `Continue this forum post:\n\n{prompt}`"),
    ("preferences/preferences.jsonl", "preference pairs in TRL's conversational layout `{prompt: messages, chosen: "
                                      "[assistant], rejected: [assistant], kind, lang, split}`; kinds correction, "
                                      "short_answer, comply_over_refusal, refusal_style, refusal_over_content, "
                                      "sensitive_style, no_insult (`split` train: training wordings, test: held-out "
                                      "wordings and response templates)"),
    ("preferences/rubric.jsonl", "responses labelled with the rubric's twelve yes/no propositions, their class "
                                 "(A desired refusal, B undesired refusal, C disallowed content, D safe "
                                 "non-refusal) and rank (ideal > acceptable > unacceptable > disallowed) from "
                                 "safety/rubric.py: `{messages, response, propositions, class, rank, type, category, "
                                 "lang, framing, split, style}`"),
    ("rl/prompts.jsonl", "RL prompts, training wordings only: `{messages, type, category, lang, framing, kind, "
                         "reference}`; kinds safety (every category and language, plain and adversarial), fact, "
                         "misconception, toxicity (a forum post to continue), image; reference the ideal answer "
                         "or null"),
]


def _describe(path: str) -> str:
    for prefix, text in DESCRIPTIONS:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return text
    return ""


def _group(files: dict[str, int]) -> list[tuple[str, int, int]]:
    """Collapse shard and exam files into one row each: (pattern, files, records)."""
    rows: dict[str, list[int]] = {}
    for path, n in sorted(files.items()):
        if path.startswith("pretrain/shard_"):
            key = "pretrain/shard_*.jsonl"
        elif path.startswith("exams/"):
            lang = path.split("/")[1]
            key = f"exams/{lang}/{{dev,test}}/<subject>_{{dev,test}}.csv"
        else:
            key = path
        rows.setdefault(key, [0, 0])
        rows[key][0] += 1
        rows[key][1] += n
    return [(k, v[0], v[1]) for k, v in rows.items()]


def contact_sheet(items: list[Item], size: int = 128, per_task: int = 4) -> Image.Image:
    cell_w, cell_h = 2 * size + 16, size + 28
    sheet = Image.new("RGB", (cell_w * per_task, cell_h * len(TASKS)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    f = font(12)
    for row, task in enumerate(TASKS):
        chosen = [it for it in items if it.task == task][:per_task]
        for col, it in enumerate(chosen):
            x, y = col * cell_w + 4, row * cell_h + 3
            for k, img in enumerate(it.images):
                x0 = x + k * (size + 4)
                sheet.paste(img.resize((size, size), Image.NEAREST), (x0, y))
                d.rectangle([x0 - 1, y - 1, x0 + size, y + size], outline=(160, 160, 160))
            label = f"{task}: {it.answer}"
            d.text((x, y + size + 4), label[:40], fill=(0, 0, 0), font=f)
    return sheet


def _examples(docs, convs) -> list[str]:
    lines = ["## Examples", ""]
    seen = set()
    for d in docs:
        if (d.lang, d.kind) in seen:
            continue
        seen.add((d.lang, d.kind))
        text = d.text if len(d.text) < 400 else d.text[:400] + " ..."
        lines += [f"**pretrain, {d.lang}, {d.kind}**", "", "```", text, "```", ""]
    kinds = set()
    for c in convs:
        k = (c["meta"]["kind"], c["meta"].get("lang", "en"))
        if k in kinds:
            continue
        kinds.add(k)
        lines += [f"**chat, {k[1]}, {k[0]}**", "", "```", json.dumps(c["messages"], ensure_ascii=False), "```", ""]
    return lines


def write_card(out, config: dict, counts: dict, world, miscs, qa_items: list[Item], docs, convs) -> None:
    """Writes README.md and contact_sheet.png through the build's Writer (which records them)."""
    sheet = contact_sheet(qa_items)
    sheet.save(out.root / "contact_sheet.png", format="PNG", optimize=False)
    out.files["contact_sheet.png"] = 1

    pre = counts["pretrain"]
    lines = [
        f"# tinygpt4 built-in world (seed {config['seed']}, scale {config['scale']})", "",
        "A procedural world: invented countries, cities, people, species, chemical compounds and illnesses, "
        "named from syllables so every name has one spelling per language (English, Korean, Spanish, "
        "Japanese). Everything below was generated from the seed; the same seed gives the same bytes.", "",
        f"Regenerate: `tinygpt4 world --out DIR --seed {config['seed']} --scale {config['scale']}`", "",
        "## Configuration", "",
        "| setting | value |", "|---|---|",
        f"| language shares (characters of pretraining text) | {config['lang_shares']} |",
        f"| insult rate (share of forum replies) | {config['insult_rate']} (measured {counts['forum']['insult_rate']}) |",
        f"| misconception repeat (false claims per correction) | {config['misconception_repeat']} |",
        f"| image size | {config['image_size']} px |",
        f"| facts | {counts['facts']} |",
        f"| entities | {counts['entities']} |",
        f"| hazardous compounds | {counts['hazardous_compounds']} |",
        f"| misconceptions | {counts['misconceptions']} |", "",
        "## Files", "",
        "| path | files | records | what it holds / measures |", "|---|---|---|---|",
    ]
    all_files = dict(out.files)
    all_files.update({"README.md": 1, "world.json": 1})
    for pattern, nfiles, nrec in _group(all_files):
        lines.append(f"| `{pattern}` | {nfiles} | {nrec} | {_describe(pattern.replace('*', ''))} |")
    for folder, n in counts["images"].items():
        lines.append(f"| `images/{folder}/*.png` | {n} | {n} | {_describe('images/')} |")
    lines += ["", "## Pretraining text", "", "| language | characters | bytes | share of characters |",
              "|---|---|---|---|"]
    for lang in pre["chars"]:
        lines.append(f"| {lang} | {pre['chars'][lang]} | {pre['bytes'][lang]} | {pre['char_share'][lang]} |")
    lines += ["", f"Documents by kind: {pre['kinds']}", "",
              f"Forum: {counts['forum']}", "",
              f"Conversations by kind: {counts['chat']}", "",
              f"Exams (items per language, split, subject): {counts['exams']['en']}", "",
              f"Factuality by category: {counts['factuality']}; image QA by task: {counts['image_qa']}; "
              f"toxicity: {counts['toxicity']}", "",
              f"Safety eval prompts: {counts['safety']}", "",
              f"Rubric-labelled responses: {counts['rubric']}", "",
              f"Preference pairs: {counts['preferences']}", "",
              f"RL prompts: {counts['rl']}", "",
              "## Contact sheet", "", "![contact sheet](contact_sheet.png)", ""]
    lines += _examples(docs, convs)
    (out.root / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.files["README.md"] = 1
