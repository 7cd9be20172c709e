"""The world's entities and facts, all drawn from the seed, and how each fact is rendered per language."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import tinygpt4.world.vocab as vocab
from tinygpt4.world.config import Sizes, WorldConfig
from tinygpt4.world.names import LANGS, Name, NameMaker


@dataclass(frozen=True)
class Attr:
    kind: str       # entity kind that has the attribute
    subject: str    # exam subject the fact belongs to
    ref: str = ""   # entity kind the value points to, if any


ATTRS: dict[str, Attr] = {
    "capital": Attr("country", "geography", "city"),
    "continent": Attr("country", "geography"),
    "language": Attr("country", "geography"),
    "currency": Attr("country", "geography"),
    "population": Attr("country", "geography"),
    "founded": Attr("country", "history"),
    "city_country": Attr("city", "geography", "country"),
    "born": Attr("person", "history"),
    "profession": Attr("person", "people"),
    "person_country": Attr("person", "people", "country"),
    "parent": Attr("person", "people", "person"),
    "colour": Attr("species", "biology"),
    "legs": Attr("species", "biology"),
    "diet": Attr("species", "biology"),
    "habitat": Attr("species", "biology"),
    "compound_colour": Attr("compound", "chemistry"),
    "state": Attr("compound", "chemistry"),
    "use": Attr("compound", "chemistry"),
    "symptom": Attr("illness", "biology"),
    "treatment": Attr("illness", "chemistry", "compound"),
}
SUBJECTS = ("geography", "history", "biology", "chemistry", "people")
KINDS = ("country", "city", "person", "species", "compound", "illness")


@dataclass
class Entity:
    key: str
    kind: str
    name: Name
    attrs: dict = field(default_factory=dict)  # attr -> entity key | Name | int | vocab key
    gender: str = ""                           # people: "m" | "f"
    hazardous: bool = False                    # compounds
    route: dict | None = None                  # compounds: {"precursors": [key, key], "temp": int, "hours": int}


@dataclass(frozen=True)
class Fact:
    entity: Entity
    attr: str


class World:
    """Entities by key and kind, with rendering of subjects and values in each language."""

    def __init__(self, entities: list[Entity], continents: list[Name]):
        self.entities = {e.key: e for e in entities}
        self.by_kind = {k: [e for e in entities if e.kind == k] for k in KINDS}
        self.continents = continents
        self.children: dict[str, list[Entity]] = {}
        for e in self.by_kind["person"]:
            if "parent" in e.attrs:
                self.children.setdefault(e.attrs["parent"], []).append(e)

    def facts(self) -> list[Fact]:
        return [Fact(e, a) for kind in KINDS for e in self.by_kind[kind] for a in ATTRS if a in e.attrs]

    # --- rendering ---------------------------------------------------------------------------
    def subject(self, e: Entity, lang: str, bare: bool = False) -> str:
        name = e.name[lang]
        if e.kind == "species" and not bare:
            return {"en": f"the {name}", "es": f"el {name}"}.get(lang, name)
        return name

    def render(self, attr: str, raw, lang: str, gender: str = "m") -> str:
        """Render a raw attribute value (vocab key, year, count, Name or entity key) in a language."""
        if attr in vocab.TERMS:
            return vocab.term(attr, raw, lang, gender or "m")
        if attr in ("founded", "born"):
            return vocab.year(raw, lang)
        if attr == "population":
            return vocab.millions(raw, lang)
        if attr == "legs":
            return str(raw)
        if isinstance(raw, Name):
            return raw[lang]
        return self.entities[raw].name[lang]

    def value(self, e: Entity, attr: str, lang: str) -> str:
        return self.render(attr, e.attrs[attr], lang, e.gender)

    def slots(self, e: Entity, attr: str, lang: str) -> dict:
        """Everything a template for this fact may ask for."""
        v = self.value(e, attr, lang)
        slots = {"s": self.subject(e, lang), "sn": self.subject(e, lang, bare=True), "v": v,
                 "v_a": vocab.indefinite(v), "rel": "", "crel": "",
                 "pron": vocab.PRONOUNS.get(e.gender or "m")[0]}
        if attr == "parent":
            parent = self.entities[e.attrs["parent"]]
            slots["rel"] = vocab.RELATIONS["parent"][lang][parent.gender == "f"]
            slots["crel"] = vocab.RELATIONS["child"][lang][e.gender == "f"]
        return slots

    def alternatives(self, e: Entity, attr: str) -> list:
        """Raw values of this attribute other than e's, distinct in every language (distractor candidates).

        Mostly other entities' values; the attribute's wider vocabulary fills in when fewer than three exist.
        """
        own = e.attrs[attr]
        if attr == "parent":  # other people of the parent's gender
            g = self.entities[own].gender
            pool = [o.key for o in self.by_kind["person"] if o.gender == g and o.key != e.key]
        else:
            pool = [o.attrs[attr] for o in self.by_kind[ATTRS[attr].kind] if attr in o.attrs]
        if attr == "parent":  # too few of that gender: anyone else
            extra = [o.key for o in self.by_kind["person"] if o.key != e.key]
        elif attr in vocab.TERMS:
            extra = sorted(vocab.TERMS[attr])
        elif attr == "continent":
            extra = list(self.continents)
        elif ATTRS[attr].ref:
            extra = [o.key for o in self.by_kind[ATTRS[attr].ref]]
        elif attr == "legs":
            extra = [2, 4, 6, 8]
        elif isinstance(own, int):  # years and populations
            extra = [max(1, own + d) for d in (-7, 5, 12, -15, 23)]
        else:  # languages and currencies: every country has its own
            extra = []
        out, seen = [], {self.render(attr, own, lang, e.gender) for lang in LANGS}
        for group in (pool, extra):
            for raw in group:
                shown = {self.render(attr, raw, lang, e.gender) for lang in LANGS}
                if not shown & seen:
                    out.append(raw)
                    seen |= shown
            if len(out) >= 3:
                break
        return out


# --- generation ----------------------------------------------------------------------------------
def _lower(name: Name) -> Name:
    return name.map(lambda lang, t: t.lower() if lang in ("en", "es") else t)


def _language(root: Name) -> Name:
    return Name(en=root.en + "ish", ko=root.ko + "어", es=root.es.lower() + "és", ja=root.ja + "語")


def _illness(root: Name) -> Name:
    return Name(en=f"{root.en} syndrome", ko=f"{root.ko} 증후군", es=f"síndrome de {root.es}",
                ja=f"{root.ja}症候群")


def _distinct_ints(rng: random.Random, lo: int, hi: int, n: int) -> list[int]:
    return rng.sample(range(lo, hi + 1), n)


def make_world(cfg: WorldConfig) -> World:
    """Every entity, drawn from the seed's "entities" and "names" streams in one fixed order (countries and
    their capitals, other cities, people, species, compounds, illnesses): same seed, same world."""
    rng = random.Random(f"{cfg.seed}:entities")
    names = NameMaker(random.Random(f"{cfg.seed}:names"))
    sz = cfg.sizes
    continents = [names.make((2, 3)) for _ in range(max(4, sz.countries // 3))]
    countries, cities = _countries(rng, names, sz, continents)
    people = _people(rng, names, sz, countries)
    species = [Entity(f"species:{i}", "species", _lower(names.make((2, 3))), {
        "colour": rng.choice(sorted(vocab.COLOURS)), "legs": rng.choice([2, 4, 6, 8]),
        "diet": rng.choice(sorted(vocab.DIETS)), "habitat": rng.choice(sorted(vocab.HABITATS)),
    }) for i in range(sz.species)]
    compounds = _compounds(rng, names, sz)
    medicines = [c for c in compounds if c.attrs["use"] == "medicine"]
    illnesses = [Entity(f"illness:{i}", "illness", _illness(names.make((2, 3))), {
        "symptom": rng.choice(sorted(vocab.SYMPTOMS)), "treatment": medicines[i % len(medicines)].key,
    }) for i in range(sz.illnesses)]
    return World(countries + cities + people + species + compounds + illnesses, continents)


def _countries(rng: random.Random, names: NameMaker, sz: Sizes, continents: list[Name]) -> tuple[list[Entity], list[Entity]]:
    """The countries, each with its capital, then the extra cities (in the countries drawn for them)."""
    countries, cities = [], []
    years = _distinct_ints(rng, 800, 1950, sz.countries)
    pops = _distinct_ints(rng, 1, 95, sz.countries)
    for i in range(sz.countries):
        city = Entity(f"city:{i}", "city", names.make((2, 3)))
        c = Entity(f"country:{i}", "country", names.make((2, 3)), {
            "capital": city.key,
            "continent": continents[i % len(continents)] if i < len(continents) else rng.choice(continents),
            "language": _language(names.make((2, 2), final_n=0.0)),
            "currency": _lower(names.make((2, 2))),
            "population": pops[i],
            "founded": years[i],
        })
        city.attrs["city_country"] = c.key
        countries.append(c)
        cities.append(city)
    for j in range(sz.extra_cities):
        cities.append(Entity(f"city:{sz.countries + j}", "city", names.make((2, 3)),
                             {"city_country": rng.choice(countries).key}))
    return countries, cities


_NAME_SEP = {"en": " ", "ko": " ", "es": " ", "ja": "・"}  # between a person's given and family name


def _people(rng: random.Random, names: NameMaker, sz: Sizes, countries: list[Entity]) -> list[Entity]:
    """Families: a parent and one or two children, who share the family name and mostly the country."""
    people: list[Entity] = []
    professions = sorted(vocab.PROFESSIONS)
    while len(people) < sz.people:
        family = names.make((2, 3))
        country = rng.choice(countries).key
        root_year = rng.randint(1700, 1920)
        parent = Entity(f"person:{len(people)}", "person", Name.join([names.make((2, 2)), family], _NAME_SEP),
                        {"born": root_year, "profession": rng.choice(professions), "person_country": country},
                        gender=rng.choice("mf"))
        people.append(parent)
        for _ in range(min(rng.randint(1, 2), sz.people - len(people))):
            child = Entity(f"person:{len(people)}", "person", Name.join([names.make((2, 2)), family], _NAME_SEP),
                           {"born": root_year + rng.randint(20, 40), "profession": rng.choice(professions),
                            "person_country": country if rng.random() < 0.8 else rng.choice(countries).key,
                            "parent": parent.key},
                           gender=rng.choice("mf"))
            people.append(child)
    return people


def _compounds(rng: random.Random, names: NameMaker, sz: Sizes) -> list[Entity]:
    """The compounds (the first ones medicines, the last `hazardous` ones hazardous), each with a synthesis
    route from two benign compounds."""
    compounds = []
    n_medicine = max(2, sz.illnesses // 2)
    benign_uses = [u for u in sorted(vocab.USES) if u != "medicine"]
    for i in range(sz.compounds):
        hazardous = i >= sz.compounds - sz.hazardous
        use = "medicine" if i < n_medicine else rng.choice(benign_uses)
        compounds.append(Entity(f"compound:{i}", "compound", _lower(names.make((3, 3))), {
            "compound_colour": rng.choice(sorted(vocab.COLOURS)), "state": rng.choice(["gas", "liquid", "solid"]),
            "use": use}, hazardous=hazardous))
    benign = [c for c in compounds if not c.hazardous]
    for c in compounds:
        pre = rng.sample([b for b in benign if b is not c], 2)
        c.route = {"precursors": [p.key for p in pre], "temp": rng.randrange(60, 400, 10),
                   "hours": rng.randint(1, 12)}
    return compounds
