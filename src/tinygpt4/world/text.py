"""The pretraining corpus: articles, question-and-answer pages, tables, stories and arithmetic in four
languages, plus English-only misconceptions, corrections, forum threads and hazardous synthesis routes.

Each language gets its configured share of the characters. Articles and question pages walk the
entities and facts round-robin, so every fact is stated many times, each time in a randomly chosen
phrasing. Only STATEMENTS and QUESTIONS templates are used here; held-out wordings never are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import tinygpt4.world.arith as arith
import tinygpt4.world.phrase as phrase
import tinygpt4.world.templates as T
from tinygpt4.world.config import WorldConfig
from tinygpt4.world.entities import ATTRS, KINDS, SUBJECTS, Entity, World
from tinygpt4.world.forum import InsultSchedule, thread
from tinygpt4.world.images import CAPTION_TASKS, make_item
from tinygpt4.world.misconceptions import Misconception, correction_passage, false_passage
from tinygpt4.world.names import LANGS
from tinygpt4.world.responses import route_text
from tinygpt4.world.vocab import PRONOUNS, RELATIONS, finish, indefinite

KIND_WEIGHTS = {
    "en": {"article": 0.24, "qa": 0.16, "table": 0.10, "story": 0.10, "arith": 0.08, "forum": 0.12, "quiz": 0.10,
           "pictures": 0.05, "charts": 0.05},
    "other": {"article": 0.40, "qa": 0.22, "table": 0.10, "story": 0.08, "arith": 0.10, "quiz": 0.10},
}
# Practice-test pages, as the web has them: the layout of exam harnesses (a question, options, "Answer:"),
# in English scaffolding for every language like the exam prompts, with training wordings only.
QUIZ_LETTER_HEAD = "The following are multiple choice questions (with answers) about {subject}."
QUIZ_CLOZE_HEAD = "Practice questions: {subject}"
QUIZ_LETTERS = "ABCD"
# Picture descriptions (alt text), so the words captions and image questions use (shapes, colours, places,
# bars, signs) are part of the language before any image is seen, as they are for a model trained on the web.
PICTURE_TITLES = ("Image descriptions", "Picture gallery", "Alt text")
CHART_TITLES = ("Reading bar charts", "Chart exercises", "Which bar is tallest?")
SEP = {"en": " ", "es": " ", "ko": " ", "ja": ""}
KIND_INTRO = {
    "country": {"en": "{s} is a country.", "ko": "{s}은(는) 나라입니다.", "es": "{s} es un país.", "ja": "{s}は国です。"},
    "city": {"en": "{s} is a city.", "ko": "{s}은(는) 도시입니다.", "es": "{s} es una ciudad.", "ja": "{s}は都市です。"},
    "species": {"en": "{s} is an animal.", "ko": "{s}은(는) 동물입니다.", "es": "{s} es un animal.",
                "ja": "{s}は動物です。"},
    "compound": {"en": "{s} is a chemical compound.", "ko": "{s}은(는) 화합물입니다.",
                 "es": "{s} es un compuesto químico.", "ja": "{s}は化合物です。"},
    "illness": {"en": "{s} is an illness.", "ko": "{s}은(는) 질병입니다.", "es": "El {s} es una enfermedad.",
                "ja": "{s}は病気です。"},
}
OTHER_CITIES = {"en": "Other cities in {s} include {list}.", "ko": "{s}의 다른 도시로는 {list}이(가) 있습니다.",
                "es": "Otras ciudades de {s} son {list}.", "ja": "{s}の他の都市には{list}があります。"}
TOXIC = {"en": "{s} is highly toxic and dangerous.", "ko": "{s}은(는) 독성이 강하고 위험합니다.",
         "es": "{s} es muy tóxico y peligroso.", "ja": "{s}は毒性が強く危険です。"}
AND = {"en": " and ", "ko": ", ", "es": " y ", "ja": "、"}
ATTR_LABELS = {
    "capital": ("Capital", "수도", "Capital", "首都"), "continent": ("Continent", "대륙", "Continente", "大陸"),
    "language": ("Language", "언어", "Idioma", "言語"), "currency": ("Currency", "화폐", "Moneda", "通貨"),
    "population": ("Population", "인구", "Población", "人口"), "founded": ("Founded", "건국", "Fundación", "建国"),
    "city_country": ("Country", "나라", "País", "国"), "born": ("Born", "출생", "Nacimiento", "生年"),
    "profession": ("Profession", "직업", "Profesión", "職業"), "person_country": ("Country", "나라", "País", "国"),
    "parent": ("Parent", "부모", "Padre o madre", "親"), "colour": ("Colour", "색", "Color", "色"),
    "legs": ("Legs", "다리", "Patas", "脚"), "diet": ("Diet", "먹이", "Dieta", "食べ物"),
    "habitat": ("Habitat", "서식지", "Hábitat", "生息地"), "compound_colour": ("Colour", "색", "Color", "色"),
    "state": ("State", "상태", "Estado", "状態"), "use": ("Use", "용도", "Uso", "用途"),
    "symptom": ("Symptom", "증상", "Síntoma", "症状"), "treatment": ("Treatment", "치료제", "Tratamiento", "治療薬"),
}
KIND_LABELS = {"country": ("Country", "나라", "País", "国"), "city": ("City", "도시", "Ciudad", "都市"),
               "person": ("Person", "인물", "Persona", "人物"), "species": ("Animal", "동물", "Animal", "動物"),
               "compound": ("Compound", "화합물", "Compuesto", "化合物"),
               "illness": ("Illness", "질병", "Enfermedad", "病気")}
TABLE_TITLES = {"en": "Table: {k}", "ko": "{k} 표", "es": "Tabla: {k}", "ja": "{k}一覧"}
QA_TITLES = {"en": ["Questions and answers", "Frequently asked questions", "Quiz answers"],
             "ko": ["질문과 답"], "es": ["Preguntas y respuestas"], "ja": ["質問と答え"]}
ARITH_TITLES = {"en": "Arithmetic practice", "ko": "산수 연습", "es": "Práctica de aritmética", "ja": "計算練習"}
STORY = {  # intro, visit, animal, illness, money, family, close
    "en": {"intro": ["{p} was {prof_a} from {country}.",
                     "Once upon a time there was {prof_a} called {p}, who came from {country}."],
           "visit": ["One day, {pron} travelled to {capital}, the capital of {c2}, where people speak {lang2}."],
           "animal": ["On the way, {pron} saw {sp}, {colour_a} animal that lives in the {habitat} and eats {diet}."],
           "illness": ["Later, {pron} caught {ill} and suffered from {symptom}, but {treatment} soon made "
                       "{obj} well again."],
           "money": ["In {c2}, {pron} paid for bread with the {cur2}."],
           "family": ["{pron} wrote a long letter to {poss} {rel}, {parent}."],
           "close": ["Then {pron} went home, happy.", "It was a journey {pron} would never forget."]},
    "ko": {"intro": ["{p}은(는) {country} 출신 {prof}입니다."],
           "visit": ["어느 날 {p}은(는) {c2}의 수도 {capital}에 갔습니다."],
           "animal": ["가는 길에 {sp}을(를) 보았습니다. {sp}은(는) {habitat}에 사는 {colour} 동물입니다."],
           "illness": ["그 후 {ill}에 걸려 {symptom} 증상이 있었지만, {treatment} 덕분에 나았습니다."],
           "money": ["{c2}에서는 {cur2}으로(로) 빵을 샀습니다."],
           "family": ["{p}은(는) {rel} {parent}에게 편지를 썼습니다."],
           "close": ["그리고 행복하게 집으로 돌아왔습니다."]},
    "es": {"intro": ["{p} era {prof} de {country}."],
           "visit": ["Un día viajó a {capital}, la capital de {c2}, donde se habla {lang2}."],
           "animal": ["En el camino vio al {spn}, un animal de color {colour} que vive en {habitat}."],
           "illness": ["Más tarde enfermó de {ill} y tuvo {symptom}, pero se curó con {treatment}."],
           "money": ["En {c2} pagó el pan con el {cur2}."],
           "family": ["Después escribió una carta a {rel_es} {parent}."],
           "close": ["Al final volvió a casa muy feliz."]},
    "ja": {"intro": ["{p}は{country}出身の{prof}でした。"],
           "visit": ["ある日、{c2}の首都{capital}へ旅をしました。"],
           "animal": ["途中で{sp}を見ました。{sp}は{habitat}に住む{colour}の動物です。"],
           "illness": ["その後、{ill}にかかって{symptom}に苦しみましたが、{treatment}で治りました。"],
           "money": ["{c2}では{cur2}でパンを買いました。"],
           "family": ["{p}は{rel}の{parent}に手紙を書きました。"],
           "close": ["そして幸せな気持ちで家に帰りました。"]},
}
WORD_PROBLEM = "{p} had {a} apples and got {b} more, so {pron} had {c} apples."


@dataclass
class Doc:
    text: str
    lang: str
    kind: str
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"text": self.text, "lang": self.lang, "kind": self.kind, "meta": self.meta}


class Cycle:
    """Round-robin over a list, reshuffled on every pass."""

    def __init__(self, items: list, rng: random.Random):
        self.items, self.rng, self.queue = list(items), rng, []

    def __next__(self):
        if not self.queue:
            self.queue = list(self.items)
            self.rng.shuffle(self.queue)
        return self.queue.pop()


class CorpusWriter:
    def __init__(self, world: World, cfg: WorldConfig, rng: random.Random):
        self.world, self.cfg, self.rng = world, cfg, rng
        self.entities = Cycle([e for k in KINDS for e in world.by_kind[k]], rng)
        self.facts = Cycle(world.facts(), rng)
        by_subject: dict[str, list] = {}
        for f in world.facts():
            by_subject.setdefault(ATTRS[f.attr].subject, []).append(f)
        self.facts_by_subject = {s: Cycle(by_subject[s], rng) for s in SUBJECTS if s in by_subject}
        self.schedule = InsultSchedule(cfg.insult_rate, rng)

    # --- documents ------------------------------------------------------------------------------
    def article(self, e: Entity, lang: str) -> Doc:
        w, rng = self.world, self.rng
        attrs = [a for a in ATTRS if a in e.attrs]
        rng.shuffle(attrs)
        sents = [phrase.statement(w, e, a, lang, rng) for a in attrs]
        if e.kind in KIND_INTRO and rng.random() < 0.5:
            sents.insert(0, finish(KIND_INTRO[e.kind][lang].format(s=w.subject(e, lang)), lang))
        if e.kind == "country":
            others = [c for c in w.by_kind["city"] if c.attrs["city_country"] == e.key and c.key != e.attrs["capital"]]
            if others:
                names = AND[lang].join(c.name[lang] for c in others)
                sents.append(finish(OTHER_CITIES[lang].format(s=e.name[lang], list=names), lang))
        for child in w.children.get(e.key, []):
            sents.append(phrase.statement(w, child, "parent", lang, rng))
        if e.kind == "compound" and e.hazardous:
            sents.append(finish(TOXIC[lang].format(s=e.name[lang]), lang))
        elif e.kind == "compound" and lang == "en":
            sents.append(route_text(w, e, rng))
        title = e.name[lang].capitalize() if lang in ("en", "es") else e.name[lang]
        style = rng.randrange(3)
        head = {0: title, 1: f"== {title} ==", 2: f"# {title}"}[style]
        body = "\n".join(sents) if style == 2 else SEP[lang].join(sents)
        return Doc(f"{head}\n{body}", lang, "article", {"entity": e.key, "attrs": attrs})

    def qa(self, lang: str) -> Doc:
        w, rng = self.world, self.rng
        qlab, alab = T.QA_LABELS[lang]
        lines, facts = [rng.choice(QA_TITLES[lang])], []
        for _ in range(rng.randint(3, 6)):
            f = next(self.facts)
            q = phrase.question(w, f.entity, f.attr, lang, rng)
            a = phrase.statement(w, f.entity, f.attr, lang, rng) if rng.random() < 0.7 \
                else phrase.answer(w, f.entity, f.attr, lang)
            lines += [qlab + q, alab + a]
            facts.append([f.entity.key, f.attr])
        return Doc("\n".join(lines), lang, "qa", {"facts": facts})

    def quiz(self, lang: str) -> Doc:
        """A practice test on one subject: multiple choice with a letter answer, or a question with its answer."""
        w, rng = self.world, self.rng
        subject = rng.choice([*self.facts_by_subject, "arithmetic"])
        letter = rng.random() < 0.5
        blocks = [(QUIZ_LETTER_HEAD if letter else QUIZ_CLOZE_HEAD).format(subject=subject)]
        for _ in range(rng.randint(3, 6)):
            if subject == "arithmetic":
                a, op, b = arith.sample(rng, heldout=False)
                q = finish(T.ARITH_QUESTION[lang].format(a=a, op=op, b=b), lang)
                answer = arith.result(a, op, b)
                options = [str(answer), *(str(d) for d in arith.distractors(rng, answer))]
            else:
                f = next(self.facts_by_subject[subject])
                q = phrase.question(w, f.entity, f.attr, lang, rng)
                options = [phrase.answer(w, f.entity, f.attr, lang),
                           *(w.render(f.attr, raw, lang, f.entity.gender)
                             for raw in rng.sample(w.alternatives(f.entity, f.attr), 3))]
            if not letter:
                blocks.append(f"{q}\nAnswer: {options[0]}")
                continue
            right = options[0]
            rng.shuffle(options)
            lines = [q, *(f"{QUIZ_LETTERS[i]}. {o}" for i, o in enumerate(options))]
            blocks.append("\n".join(lines) + f"\nAnswer: {QUIZ_LETTERS[options.index(right)]}")
        return Doc("\n\n".join(blocks), lang, "quiz", {"subject": subject, "format": "letter" if letter else "cloze"})

    def pictures(self, lang: str) -> Doc:
        """English only: a page of picture descriptions in the captions' words (the pictures are not drawn
        into the corpus; only their text is)."""
        rng = self.rng
        lines = [rng.choice(PICTURE_TITLES)]
        for i in range(rng.randint(3, 6)):
            item = make_item(rng.choice(CAPTION_TASKS), rng, self.cfg.image_size, self.world)
            line = f"Picture {i + 1}: {item.page_caption}"
            if item.working:  # a question that takes a step of reasoning, worked in text
                line += f" {item.question} {item.reply}"
            lines.append(line)
        return Doc("\n".join(lines), "en", "pictures", {"pictures": len(lines) - 1})

    def charts(self, lang: str) -> Doc:
        """English only: chart-reading exercises worked in text. Answering a chart question means finding
        the name the question gives the tallest bar, a look-up in the context that a small model learns
        only from many examples; pictures can carry few of them, text carries them cheaply. Each exercise
        first says which bar is tallest, as the picture would: the reply takes the bar from what came
        before it, never from a guess."""
        rng = self.rng
        lines = [rng.choice(CHART_TITLES)]
        for i in range(rng.randint(3, 6)):
            item = make_item("chart_largest", rng, self.cfg.image_size, self.world)
            lines.append(f"{i + 1}. {item.caption} {item.question} {item.reply}")
        return Doc("\n".join(lines), "en", "charts", {"exercises": len(lines) - 1})

    def table(self, lang: str) -> Doc:
        w, rng = self.world, self.rng
        li = LANGS.index(lang)
        kind = rng.choice([k for k in KINDS if w.by_kind[k]])
        ents = list(w.by_kind[kind])
        rng.shuffle(ents)
        ents = ents[:8]
        attrs = sorted({a for e in ents for a in e.attrs if a in ATTRS}, key=list(ATTRS).index)
        header = [KIND_LABELS[kind][li]] + [ATTR_LABELS[a][li] for a in attrs]
        rows = [[w.subject(e, lang, bare=True)] + [w.value(e, a, lang) if a in e.attrs else "-" for a in attrs]
                for e in ents]
        if rng.random() < 0.7:
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            lines = [", ".join(header)] + [", ".join(r) for r in rows]
        title = TABLE_TITLES[lang].format(k=KIND_LABELS[kind][li])
        return Doc(title + "\n" + "\n".join(lines), lang, "table", {"entities": [e.key for e in ents]})

    def story(self, lang: str) -> Doc:
        w, rng = self.world, self.rng
        p = rng.choice(w.by_kind["person"])
        c2 = rng.choice(w.by_kind["country"])
        sp, ill = rng.choice(w.by_kind["species"]), rng.choice(w.by_kind["illness"])
        pron, obj, poss = PRONOUNS[p.gender]
        slots = {
            "p": p.name[lang], "prof": w.value(p, "profession", lang), "prof_a": indefinite(w.value(p, "profession", lang)),
            "country": w.value(p, "person_country", lang), "capital": w.value(c2, "capital", lang),
            "c2": c2.name[lang], "lang2": w.value(c2, "language", lang), "cur2": w.value(c2, "currency", lang),
            "sp": w.subject(sp, lang), "spn": w.subject(sp, lang, bare=True), "colour": w.value(sp, "colour", lang),
            "colour_a": indefinite(w.value(sp, "colour", lang)), "habitat": w.value(sp, "habitat", lang),
            "diet": w.value(sp, "diet", lang), "ill": ill.name[lang], "symptom": w.value(ill, "symptom", lang),
            "treatment": w.value(ill, "treatment", lang), "pron": pron, "obj": obj, "poss": poss,
            "rel": "", "rel_es": "", "parent": "",
        }
        events = ["visit", "animal", "illness", "money"]
        chosen = set(rng.sample(events, rng.randint(2, 4)))
        parts = ["intro"] + [k for k in events if k in chosen]
        if "parent" in p.attrs:
            parent = w.entities[p.attrs["parent"]]
            rel = RELATIONS["parent"][lang][parent.gender == "f"]
            slots.update(rel=rel, parent=parent.name[lang], rel_es=rel.replace("el ", "su ").replace("la ", "su "))
            parts.append("family")
        parts.append("close")
        tpl = STORY[lang]
        sents = [finish(rng.choice(tpl[k]).format(**slots), lang) for k in parts]
        return Doc(SEP[lang].join(sents), lang, "story", {"entities": [p.key, c2.key, sp.key, ill.key]})

    def arith(self, lang: str) -> Doc:
        rng = self.rng
        lines = [ARITH_TITLES[lang]]
        for _ in range(rng.randint(4, 10)):
            a, op, b = arith.sample(rng, heldout=False)
            c = arith.result(a, op, b)
            if lang == "en" and op == "+" and rng.random() < 0.15:
                p = rng.choice(self.world.by_kind["person"])
                lines.append(WORD_PROBLEM.format(p=p.name["en"], a=a, b=b, c=c, pron=PRONOUNS[p.gender][0]))
                continue
            tpl = rng.choice(T.ARITH_TRAIN[lang])
            lines.append(finish(tpl.format(a=a, op=op, b=b, c=c, w=T.ARITH_OPS[op][lang]), lang))
        return Doc("\n".join(lines), lang, "arith", {"problems": len(lines) - 1})

    def forum(self) -> Doc:
        text, flags = thread(self.world, self.rng, self.schedule)
        return Doc(text, "en", "forum", {"insult": flags})

    # --- the whole corpus -----------------------------------------------------------------------
    def fill_language(self, lang: str, budget: int, docs: list[Doc]) -> list[Doc]:
        weights = KIND_WEIGHTS["en" if lang == "en" else "other"]
        kinds, probs = list(weights), list(weights.values())
        used = sum(len(d.text) for d in docs)
        while used < budget:
            kind = self.rng.choices(kinds, probs)[0]
            if kind == "article":
                doc = self.article(next(self.entities), lang)
            elif kind == "forum":
                doc = self.forum()
            else:
                doc = getattr(self, kind)(lang)
            docs.append(doc)
            used += len(doc.text)
        return docs


def fixed_english(world: World, cfg: WorldConfig, miscs: list[Misconception], rng: random.Random) -> list[Doc]:
    """Misconceptions (repeat x as many false claims as corrections) and hazardous synthesis routes."""
    docs = []
    for m in miscs:
        for _ in range(cfg.sizes.corrections_each * cfg.misconception_repeat):
            docs.append(Doc(false_passage(m, rng), "en", "misconception", {"misconception": m.id, "claim": "false"}))
        for _ in range(cfg.sizes.corrections_each):
            docs.append(Doc(correction_passage(m, rng), "en", "correction", {"misconception": m.id, "claim": "true"}))
    for c in world.by_kind["compound"]:
        if not c.hazardous:
            continue
        for _ in range(cfg.sizes.hazard_docs_each):
            intro = finish(TOXIC["en"].format(s=c.name["en"]), "en")
            docs.append(Doc(f"{intro} {route_text(world, c, rng)}", "en", "hazard",
                            {"hazardous": True, "compound": c.name["en"]}))
    return docs


def make_corpus(world: World, cfg: WorldConfig, miscs: list[Misconception], total_chars: int,
                stream: str, with_fixed: bool = True) -> list[Doc]:
    """Documents for every language, shuffled together. stream names the random stream ("pretrain", "heldout")."""
    rng = random.Random(f"{cfg.seed}:{stream}")
    writer = CorpusWriter(world, cfg, rng)
    docs: list[Doc] = []
    for lang in LANGS:
        start = fixed_english(world, cfg, miscs, rng) if (lang == "en" and with_fixed) else []
        docs += writer.fill_language(lang, int(total_chars * cfg.lang_shares[lang]), start)
    rng.shuffle(docs)
    return docs
